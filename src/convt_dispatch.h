// Host-side pieces shared by conv_transpose2d (convt.cu) and forward (forward.cu): the
// tuning choice, the workspace layout, weight packing and the launch.
#pragma once

#include <cstddef>

#include "convt_geometry.cuh"
#include "ctfuse/types.h"
#include "implicit_gemm.cuh"
#include "launch.h"
#include "nonfinite_fallback.cuh"
#include "status_util.h"

namespace ctfuse {

// Checks params (as conv_transpose2d_output_hw does) and the limits of the kernels'
// 32-bit dimension arithmetic, then fills the geometry.
Status make_geometry(const ConvTranspose2dParams& params, ConvTGeometry* g);

template <typename Policy, MathMode kMathMode>
struct GemmConfig {
  using P = Policy;
  static constexpr MathMode kMath = kMathMode;
};

// The mainloop a call runs on, worked out before anything is queued. wgmma when asked
// for (kAuto), C_out > 64 (the table's wgmma entries have 128-channel tiles),
// sm_90a code in this build (CTFUSE_HAVE_SM90A, set by CMake) and an sm_90 current
// device; fed by the TMA unit when x can be described to it (rows of a multiple of 4
// floats, 16-byte aligned x) and the driver encodes its tensor map (`x_map`), else by
// cp.async. Everything else runs mma.sync. With !encode_map (mainloop_in_use) the map is
// not built and assumed to succeed.
// On an sm_90 device running this build's sm_90a code, the call's kernels after the
// weight packing are launched overlapped (launch.h): each waits for the one before (the
// GEMM only where its grid fills the GPU: gemm_overlaps).
struct EngineChoice {
  MmaEngine engine = MmaEngine::kMmaSync;
  CUtensorMap x_map{};  // kWgmmaTma only
  bool overlapped_launch = false;
};
Status select_engine(MainloopKind kind, MathMode math, EpilogueKind epi, const ConvTGeometry& g, const float* x,
                     EngineChoice* choice, bool encode_map = true);
const char* engine_name(MmaEngine e);

// The table entry for a problem and epilogue (implicit_gemm_policy.h), handed to `f` as
// a GemmConfig. The epilogue is a template argument, so a caller instantiates `f` only
// for the entries of its own epilogue.
template <EpilogueKind kEpi, typename F>
decltype(auto) with_gemm_config(const ConvTGeometry& g, MathMode math, MmaEngine engine, F&& f) {
  using T = GemmTable<kEpi>;
  constexpr MathMode kTF32 = MathMode::kTF32, kFP32 = MathMode::kFP32;
  const bool narrow = g.C_out <= 64;
  if (math == kFP32) {
    if (narrow) return f(GemmConfig<typename T::FP32Narrow, kFP32>{});
    if (engine == MmaEngine::kWgmmaTma) return f(GemmConfig<typename T::FP32WgmmaTma, kFP32>{});
    if (engine == MmaEngine::kWgmma) return f(GemmConfig<typename T::FP32Wgmma, kFP32>{});
    return f(GemmConfig<typename T::FP32Wide, kFP32>{});
  }
  if (narrow) return f(GemmConfig<typename T::TF32Narrow, kTF32>{});
  if (engine == MmaEngine::kWgmmaTma) {
    if (g.stride_w == 2) return f(GemmConfig<typename T::TF32WgmmaTmaPairs, kTF32>{});
    return f(GemmConfig<typename T::TF32WgmmaTma, kTF32>{});
  }
  if (engine == MmaEngine::kWgmma) return f(GemmConfig<typename T::TF32Wgmma, kTF32>{});
  if (halo_fits<typename T::TF32WideHalo>(g))
    return f(GemmConfig<typename T::TF32WideHalo, kTF32>{});
  return f(GemmConfig<typename T::TF32Wide, kTF32>{});
}

// The same for an epilogue known only at run time (host-side work shared by both paths:
// weight packing, the TMA box). `f` must return one type for every entry.
template <typename F>
decltype(auto) with_gemm_config(const ConvTGeometry& g, MathMode math, MmaEngine engine, EpilogueKind epi, F&& f) {
  return epi == EpilogueKind::kStore ? with_gemm_config<EpilogueKind::kStore>(g, math, engine, f)
                                     : with_gemm_config<EpilogueKind::kMinSum>(g, math, engine, f);
}

// Byte layout of a workspace: the packed weights (big, followed by the phase table, and
// small in FP32 mode; sized for any mainloop, so the size queries need no device), the
// packing blocks' NaN/Inf flags, then whatever the path needs (`extra`).
struct WorkspaceLayout {
  size_t w_big = 0, w_small = 0, nonfinite_flags = 0, extra = 0, total = 0;
};
WorkspaceLayout workspace_layout(const ConvTGeometry& g, MathMode math, size_t extra_bytes);

Status check_workspace(const void* workspace, size_t bytes, size_t needed, const char* null_msg,
                       const char* small_msg, const char* align_msg);

// Queues the weight packing into the workspace and returns the mainloop's operands and
// where the packing flags NaN/Inf weights.
Status pack_weights(const ConvTGeometry& g, const float* x, const float* weight, MathMode math, MmaEngine engine,
                    EpilogueKind epi, char* workspace, const WorkspaceLayout& layout, cudaStream_t stream,
                    ConvTOperands* op, NonfiniteWeightFlags* nonfinite);

// The mainloop with the store epilogue, y = conv_transpose2d(x) + conv_bias, then the
// fix-up that rewrites y from the definition if the weights held NaN/Inf (convt.cu).
Status launch_convt_store(const ExactOperands& exact, const ConvTOperands& op, const NonfiniteWeightFlags& nonfinite,
                          float* y, MathMode math, const EngineChoice& engine, cudaStream_t stream);

// How many blocks of `kernel` the GPU holds at once.
template <typename Kernel>
Status resident_blocks(Kernel kernel, int threads, size_t smem, int64_t* resident) {
  int device = 0, sms = 0, per_sm = 0;
  CTFUSE_RETURN_IF_ERROR(query_status(cudaGetDevice(&device)));
  CTFUSE_RETURN_IF_ERROR(query_status(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device)));
  CTFUSE_RETURN_IF_ERROR(query_status(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem)));
  *resident = int64_t(sms) * per_sm;
  return ok_status();
}

// Whether a GEMM grid of `blocks` starts while the packing ends (launch.h). Its blocks are
// placed on SMs as they are launched, around the packing's blocks still running there, and
// stay where they were placed: a grid smaller than what the GPU holds at once can then end
// up with two blocks on one SM and none on another. H200, N = 1 (128 block tiles), same
// call: fused_tf32 29.7 us plain, 33.0 overlapped; fused_tf32_mma_sync 40.8 and 48.5. So
// only a grid that fills every SM is launched overlapped.
inline bool gemm_overlaps(const EngineChoice& engine, int64_t blocks, int64_t resident) {
  return engine.overlapped_launch && blocks >= resident;
}

// The classic kernel: a block per tile (up to 65535 blocks, then each takes several).
template <typename P, MathMode kMath, typename E>
Status launch_classic(const ConvTArgs& a, const typename E::Params& ep, const EngineChoice& engine, size_t smem,
                      int64_t tiles, cudaStream_t stream) {
  auto kernel = convt_implicit_gemm_kernel<P, kMath, E>;
  CTFUSE_RETURN_IF_ERROR(
      query_status(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem))));
  // Past 65535 tiles a block takes several (the kernel strides over tiles): the grid stays
  // bounded, and the tile loop's carried state (pipeline, mbarrier phases) is exercised by
  // any large problem, e.g. the N=4096 test (524288 tiles), not only by 2^31 of them.
  constexpr int64_t kMaxBlocks = 65535;
  const unsigned blocks = unsigned(tiles < kMaxBlocks ? tiles : kMaxBlocks);
  int64_t resident = 0;
  if (engine.overlapped_launch) CTFUSE_RETURN_IF_ERROR(resident_blocks(kernel, P::kThreads, smem, &resident));
  return launch_kernel(gemm_overlaps(engine, blocks, resident), kernel, blocks, P::kThreads, smem, stream, a, ep,
                       engine.x_map);
}

// The warp-specialised kernel: persistent, as many blocks as fit on the GPU at once,
// striding over the tiles.
template <typename P, MathMode kMath, typename E>
Status launch_warp_specialized(const ConvTArgs& a, const typename E::Params& ep, const EngineChoice& engine,
                               size_t smem, int64_t tiles, cudaStream_t stream) {
  auto kernel = convt_implicit_gemm_warp_specialized_kernel<P, kMath, E>;
  CTFUSE_RETURN_IF_ERROR(
      query_status(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem))));
  int64_t resident = 0;
  CTFUSE_RETURN_IF_ERROR(resident_blocks(kernel, block_threads<P>(), smem, &resident));
  if (resident < 1) return unsupported("the warp-specialised kernel does not fit on an SM of this device");
  const unsigned blocks = unsigned(tiles < resident ? tiles : resident);
  return launch_kernel(gemm_overlaps(engine, blocks, resident), kernel, blocks, block_threads<P>(), smem, stream, a,
                       ep, engine.x_map);
}

// Launches the mainloop with `Epi<P>`; *tiles_h receives the number of block rows.
template <template <typename> class Epi, typename Config>
Status launch_convt_gemm(Config, const ConvTGeometry& g, const ConvTOperands& op,
                         const typename Epi<typename Config::P>::Params& ep, const EngineChoice& engine,
                         cudaStream_t stream, int* tiles_h = nullptr) {
  using P = typename Config::P;
  using E = Epi<P>;
  const ConvTArgs a{g, op, (g.QH + P::MH - 1) / P::MH, (g.QW + P::MW - 1) / P::MW};
  if (tiles_h) *tiles_h = a.tiles_h;
  static_assert(sizeof(typename E::Shared) == epilogue_smem_bytes<P>(E::kKind), "the table's smem count is exact");
  const size_t smem = gemm_smem_bytes<P>(Config::kMath, E::kKind) + halo_smem_bytes<P>(g);
  const int64_t tiles = a.tiles();
  if constexpr (kWarpSpecialized<P>)
    return launch_warp_specialized<P, Config::kMath, E>(a, ep, engine, smem, tiles, stream);
  else
    return launch_classic<P, Config::kMath, E>(a, ep, engine, smem, tiles, stream);
}

}  // namespace ctfuse
