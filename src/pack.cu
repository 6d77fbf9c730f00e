// Geometry, workspace layout and weight packing, shared by conv_transpose2d and forward.
#include <algorithm>
#include <initializer_list>
#include <numeric>

#include <cudaTypedefs.h>

#include "convt_dispatch.h"
#include "problem.h"

namespace ctfuse {
namespace {
size_t round_up(size_t v, size_t a) { return (v + a - 1) / a * a; }
}  // namespace

Status make_geometry(const ConvTranspose2dParams& p, ConvTGeometry* g) {
  int64_t H_out = 0, W_out = 0;
  CTFUSE_RETURN_IF_ERROR(conv_transpose2d_output_hw(p, &H_out, &W_out));
  const int64_t kIntMax = 0x7fffffff;
  if (p.N > kIntMax - 1024 || p.C_in > kIntMax - 64 || p.C_out > kIntMax - 256 || p.H_in > kIntMax - 1024 ||
      p.W_in > kIntMax - 1024 || H_out > kIntMax - 1024 || W_out > kIntMax - 1024)
    return unsupported("conv_transpose2d: N, C_in, C_out, H_in, W_in, H_out and W_out must be below 2^31 - 1024");
  if (p.pad_h + p.stride_h > kIntMax / 2 || p.pad_w + p.stride_w > kIntMax / 2)
    return unsupported("conv_transpose2d: pad_h/pad_w must be below 2^30");
  // Element counts of x, weight and y must fit the kernels' 64-bit offsets with room to
  // spare (the packed weights pad C_in and C_out up to a tile).
  auto product_fits = [](std::initializer_list<int64_t> dims, int64_t limit) {
    int64_t prod = 1;
    for (int64_t d : dims) {
      if (d > limit / prod) return false;
      prod *= d;
    }
    return true;
  };
  constexpr int64_t kMaxElements = int64_t(1) << 56;
  if (!product_fits({p.N, p.C_in, p.H_in, p.W_in}, kMaxElements))
    return unsupported("conv_transpose2d: x has more than 2^56 elements");
  if (!product_fits({p.C_in + 64, p.C_out + 256, p.kernel_h, p.kernel_w}, kMaxElements))
    return unsupported("conv_transpose2d: weight has more than 2^56 elements");
  if (!product_fits({p.N, p.C_out, H_out, W_out}, kMaxElements))
    return unsupported("conv_transpose2d: y has more than 2^56 elements");
  g->N = int(p.N); g->C_in = int(p.C_in); g->H_in = int(p.H_in); g->W_in = int(p.W_in);
  g->C_out = int(p.C_out); g->H_out = int(H_out); g->W_out = int(W_out);
  g->kernel_h = int(p.kernel_h); g->kernel_w = int(p.kernel_w);
  g->stride_h = int(p.stride_h); g->stride_w = int(p.stride_w);
  g->pad_h = int(p.pad_h); g->pad_w = int(p.pad_w);
  g->dil_h = int(p.dilation_h); g->dil_w = int(p.dilation_w);
  const int gh = std::gcd(g->stride_h, g->dil_h), gw = std::gcd(g->stride_w, g->dil_w);
  g->tap_step_h = g->stride_h / gh;
  g->tap_step_w = g->stride_w / gw;
  g->dih_step = g->dil_h / gh;
  g->diw_step = g->dil_w / gw;
  g->QH = (g->H_out + g->stride_h - 1) / g->stride_h;
  g->QW = (g->W_out + g->stride_w - 1) / g->stride_w;
  g->w_pairs = 0;
  if (g->stride_w == 2) w_pair_entry(*g, 0, &g->w_pairs);
  return ok_status();
}

namespace {

// The TMA unit's description of x [N, C_in, H_in, W_in] with boxes of 36 x 2 x box_c
// (w, h, ci), read by the kWgmmaTma kernels. A box must start on a 16-byte aligned column
// (a misaligned start is an illegal instruction on the H100), hence 36 columns for 32
// pixels and a shift of up to 3. false when the driver cannot encode it.
bool encode_x_tensor_map(const ConvTGeometry& g, const float* x, int box_c, CUtensorMap* map) {
  void* fn = nullptr;
  cudaDriverEntryPointQueryResult found{};
#if CUDART_VERSION >= 12050
  const cudaError_t e = cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &found);
#else
  const cudaError_t e = cudaGetDriverEntryPoint("cuTensorMapEncodeTiled", &fn, cudaEnableDefault, &found);
#endif
  if (e != cudaSuccess) cudaGetLastError();  // not the caller's error: we fall back to cp.async
  if (e != cudaSuccess || !fn || found != cudaDriverEntryPointSuccess) return false;
  const cuuint64_t dims[4] = {cuuint64_t(g.W_in), cuuint64_t(g.H_in), cuuint64_t(g.C_in), cuuint64_t(g.N)};
  const cuuint64_t strides[3] = {cuuint64_t(g.W_in) * 4, cuuint64_t(g.H_in) * g.W_in * 4,
                                 cuuint64_t(g.C_in) * g.H_in * g.W_in * 4};
  const cuuint32_t box[4] = {36, 2, cuuint32_t(box_c), 1};
  const cuuint32_t elem_strides[4] = {1, 1, 1, 1};
  return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(fn)(
             map, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 4, const_cast<float*>(x), dims, strides, box, elem_strides,
             CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_NONE, CU_TENSOR_MAP_L2_PROMOTION_L2_128B,
             CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

#ifdef CTFUSE_HAVE_SM90A
// Compute capability 9.0 exactly: this build's sm_90a code runs on nothing else.
Status current_device_is_sm90(bool* sm90) {
  int device = 0, major = 0, minor = 0;
  CTFUSE_RETURN_IF_ERROR(query_status(cudaGetDevice(&device)));
  CTFUSE_RETURN_IF_ERROR(query_status(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device)));
  CTFUSE_RETURN_IF_ERROR(query_status(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device)));
  *sm90 = major == 9 && minor == 0;
  return ok_status();
}

// The overlapped launches count on each kernel after the packing waiting for the one
// before it (griddepcontrol.wait), which is compiled in for sm_90 and later only. The
// compute capability says which device runs; the PTX version of the code loaded for it
// says whether that code has the waits: code JIT-compiled from an older virtual
// architecture (a build with sm_90a SASS but no sm_90 PTX, under CUDA_FORCE_PTX_JIT)
// would not. Every kernel of the library is compiled for the same architectures, so one
// probe stands for all.
__global__ void loaded_code_probe_kernel() {}
Status loaded_code_waits(bool* waits) {
  cudaFuncAttributes a{};
  CTFUSE_RETURN_IF_ERROR(query_status(cudaFuncGetAttributes(&a, loaded_code_probe_kernel)));
  *waits = a.ptxVersion >= 90;
  return ok_status();
}
#endif

}  // namespace

Status select_engine(MainloopKind kind, MathMode math, EpilogueKind epi, const ConvTGeometry& g, const float* x,
                     EngineChoice* choice, bool encode_map) {
  choice->engine = MmaEngine::kMmaSync;
  choice->overlapped_launch = false;
#ifdef CTFUSE_HAVE_SM90A
  bool sm90 = false;
  const Status device_status = current_device_is_sm90(&sm90);
  bool waits = false;
  if (device_status.ok() && sm90) CTFUSE_RETURN_IF_ERROR(loaded_code_waits(&waits));
  choice->overlapped_launch = waits;
  // The portable mainloop needs no device facts: where they cannot be had, it is launched
  // plainly and the launch reports why.
  if (kind != MainloopKind::kAuto || g.C_out <= 64) return ok_status();
  CTFUSE_RETURN_IF_ERROR(device_status);
  if (!sm90) return ok_status();
  choice->engine = MmaEngine::kWgmma;
  // TMA strides are multiples of 16 bytes below 2^40; x's base 16-byte aligned.
  const bool describable = g.W_in % 4 == 0 && is_aligned(x, 16) &&
                           int64_t(g.C_in) * g.H_in * g.W_in * int64_t(sizeof(float)) < (int64_t(1) << 40);
  const int box_c = with_gemm_config(g, math, MmaEngine::kWgmmaTma, epi, [](auto c) { return decltype(c)::P::BK; });
  if (describable && (!encode_map || encode_x_tensor_map(g, x, box_c, &choice->x_map)))
    choice->engine = MmaEngine::kWgmmaTma;
#else
  (void)kind, (void)math, (void)epi, (void)g, (void)x, (void)encode_map;
#endif
  return ok_status();
}

const char* engine_name(MmaEngine e) {
  switch (e) {
    case MmaEngine::kWgmmaTma: return "wgmma+TMA";
    case MmaEngine::kWgmma: return "wgmma";
    default: return "mma.sync";
  }
}

WorkspaceLayout workspace_layout(const ConvTGeometry& g, MathMode math, size_t extra_bytes) {
  auto packed_floats = [&](auto c) {
    return size_t(PackedWeights<typename decltype(c)::P>::floats_with_phase_table(g));
  };
  size_t floats = 0;
  for (MmaEngine e : {MmaEngine::kMmaSync, MmaEngine::kWgmma, MmaEngine::kWgmmaTma})
    floats = std::max({floats, with_gemm_config<EpilogueKind::kStore>(g, math, e, packed_floats),
                       with_gemm_config<EpilogueKind::kMinSum>(g, math, e, packed_floats)});
  const size_t wbytes = round_up(floats * sizeof(float), 256);
  WorkspaceLayout l;
  l.w_big = 0;
  l.w_small = wbytes;
  l.nonfinite_flags = wbytes * (math == MathMode::kFP32 ? 2 : 1);
  l.extra = l.nonfinite_flags + round_up(sizeof(int) * kMaxPackBlocks, 256);
  l.total = l.extra + round_up(extra_bytes, 256);
  return l;
}

Status check_workspace(const void* workspace, size_t bytes, size_t needed, const char* null_msg,
                       const char* small_msg, const char* align_msg) {
  if (!workspace) return invalid(null_msg);
  if (bytes < needed) return invalid(small_msg);
  if (!is_aligned(workspace, 16)) return invalid(align_msg);
  return ok_status();
}

Status pack_weights(const ConvTGeometry& g, const float* x, const float* weight, MathMode math, MmaEngine engine,
                    EpilogueKind epi, char* ws, const WorkspaceLayout& l, cudaStream_t stream, ConvTOperands* op,
                    NonfiniteWeightFlags* nonfinite) {
  float* big = reinterpret_cast<float*>(ws + l.w_big);
  // TF32 mode has no small part (its region is where the flags start).
  float* small = math == MathMode::kFP32 ? reinterpret_cast<float*>(ws + l.w_small) : nullptr;
  int* flags = reinterpret_cast<int*>(ws + l.nonfinite_flags);
  *op = ConvTOperands{x, big, small};
  auto pack = [&](auto c) {
    using C = decltype(c);
    const int blocks = int(std::min<int64_t>(pack_slices<typename C::P>(g), kMaxPackBlocks));
    *nonfinite = NonfiniteWeightFlags{flags, blocks};
    pack_weights_kernel<typename C::P, C::kMath><<<blocks, kPackThreads, 0, stream>>>(g, weight, big, small, flags);
    return launch_status();
  };
  return with_gemm_config(g, math, engine, epi, pack);
}

}  // namespace ctfuse
