// conv_transpose2d: argument checks, weight packing, and the mainloop with the
// store epilogue.
#include <algorithm>
#include <numeric>

#include "convt_dispatch.h"
#include "ctfuse/ctfuse.h"
#include "epilogues.cuh"
#include "status_util.h"

namespace ctfuse {
namespace {

bool aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }
size_t round_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

// w [C_in, C_out, kh, kw] -> packed [kh][kw][C_in][co_pad], TF32-rounded once here so the
// mainloop's weight fragments need no conversion; zero in the channel padding.
template <MathMode kMath>
__global__ void pack_weights_kernel(ConvTGeometry g, const float* __restrict__ w, float* __restrict__ big,
                                    float* __restrict__ small) {
  const int64_t total = int64_t(g.kernel_h) * g.kernel_w * g.C_in * g.co_pad;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int co = int(e % g.co_pad);
    int64_t r = e / g.co_pad;
    const int ci = int(r % g.C_in);
    r /= g.C_in;
    const int kw = int(r % g.kernel_w);
    const int kh = int(r / g.kernel_w);
    float v = 0.f;
    if (co < g.C_out) v = w[((int64_t(ci) * g.C_out + co) * g.kernel_h + kh) * g.kernel_w + kw];
    const float hi = __uint_as_float(ptx::tf32_round(v));
    big[e] = hi;
    if constexpr (kMath == MathMode::kFP32) small[e] = isfinite(v) ? __uint_as_float(ptx::tf32_round(v - hi)) : 0.f;
  }
}

}  // namespace

Status make_geometry(const ConvTranspose2dParams& p, ConvTGeometry* g) {
  int64_t H_out = 0, W_out = 0;
  CTFUSE_RETURN_IF_ERROR(conv_transpose2d_output_hw(p, &H_out, &W_out));
  const int64_t kIntMax = 0x7fffffff;
  if (p.N > kIntMax || p.C_in > kIntMax || p.C_out > kIntMax - 4 || H_out > kIntMax - 1024 ||
      W_out > kIntMax - 1024)
    return unsupported("conv_transpose2d: N, C_in, C_out, H_out and W_out must be below 2^31 - 1024");
  if (p.pad_h + p.stride_h > kIntMax / 2 || p.pad_w + p.stride_w > kIntMax / 2)
    return unsupported("conv_transpose2d: pad_h/pad_w must be below 2^30");
  g->N = int(p.N); g->C_in = int(p.C_in); g->H_in = int(p.H_in); g->W_in = int(p.W_in);
  g->C_out = int(p.C_out); g->H_out = int(H_out); g->W_out = int(W_out);
  g->kernel_h = int(p.kernel_h); g->kernel_w = int(p.kernel_w);
  g->stride_h = int(p.stride_h); g->stride_w = int(p.stride_w);
  g->pad_h = int(p.pad_h); g->pad_w = int(p.pad_w);
  g->dil_h = int(p.dilation_h); g->dil_w = int(p.dilation_w);
  g->tap_step_h = g->stride_h / std::gcd(g->stride_h, g->dil_h);
  g->tap_step_w = g->stride_w / std::gcd(g->stride_w, g->dil_w);
  g->QH = (g->H_out + g->stride_h - 1) / g->stride_h;
  g->QW = (g->W_out + g->stride_w - 1) / g->stride_w;
  g->co_pad = (g->C_out + 3) / 4 * 4;
  return ok_status();
}

size_t packed_weight_floats(const ConvTGeometry& g) {
  return size_t(g.kernel_h) * g.kernel_w * g.C_in * g.co_pad;
}

WorkspaceLayout workspace_layout(const ConvTGeometry& g, MathMode math, size_t extra_bytes) {
  WorkspaceLayout l;
  const size_t wbytes = round_up(packed_weight_floats(g) * sizeof(float), 256);
  l.w_big = 0;
  l.w_small = wbytes;
  l.extra = wbytes * (math == MathMode::kFP32 ? 2 : 1);
  l.total = l.extra + round_up(extra_bytes, 256);
  return l;
}

Status check_workspace(const void* workspace, size_t bytes, size_t needed, const char* null_msg,
                       const char* small_msg, const char* align_msg) {
  if (!workspace) return invalid(null_msg);
  if (bytes < needed) return invalid(small_msg);
  if (!aligned(workspace, 16)) return invalid(align_msg);
  return ok_status();
}

Status pack_weights(const ConvTGeometry& g, const float* x, const float* weight, MathMode math, char* ws,
                    const WorkspaceLayout& l, cudaStream_t stream, ConvTOperands* op) {
  op->x = x;
  op->w_big = reinterpret_cast<float*>(ws + l.w_big);
  op->w_small = math == MathMode::kFP32 ? reinterpret_cast<float*>(ws + l.w_small) : nullptr;
  const int64_t total = int64_t(packed_weight_floats(g));
  const unsigned blocks = unsigned(std::min<int64_t>((total + 255) / 256, 4096));
  float* big = reinterpret_cast<float*>(ws + l.w_big);
  float* small = reinterpret_cast<float*>(ws + l.w_small);
  if (math == MathMode::kFP32)
    pack_weights_kernel<MathMode::kFP32><<<blocks, 256, 0, stream>>>(g, weight, big, small);
  else
    pack_weights_kernel<MathMode::kTF32><<<blocks, 256, 0, stream>>>(g, weight, big, nullptr);
  return launch_status();
}

namespace {

template <typename P, MathMode kMath>
Status launch_store(const ConvTGeometry& g, const ConvTOperands& op, const float* conv_bias, float* y,
                    cudaStream_t stream) {
  using Epi = StoreEpilogue<P>;
  ConvTArgs a{g, op, (g.QH + P::MH - 1) / P::MH, (g.QW + P::MW - 1) / P::MW};
  const size_t smem = mainloop_smem_bytes<P>(kMath) + sizeof(typename Epi::Shared);
  return launch_gemm(convt_implicit_gemm_kernel<P, kMath, Epi>, P::kThreads, smem,
                     int64_t(g.N) * a.tiles_h * a.tiles_w, stream, a, typename Epi::Params{conv_bias, y});
}

}  // namespace

Status launch_convt_store(const ConvTGeometry& g, const ConvTOperands& op, const float* conv_bias, float* y,
                          MathMode math, cudaStream_t stream) {
  const bool narrow = g.C_out <= 64;
  if (math == MathMode::kFP32)
    return narrow ? launch_store<GemmFP32Narrow, MathMode::kFP32>(g, op, conv_bias, y, stream)
                  : launch_store<GemmFP32Wide, MathMode::kFP32>(g, op, conv_bias, y, stream);
  return narrow ? launch_store<GemmTF32Narrow, MathMode::kTF32>(g, op, conv_bias, y, stream)
                : launch_store<GemmTF32Wide, MathMode::kTF32>(g, op, conv_bias, y, stream);
}

Status conv_transpose2d_workspace_size(const ConvTranspose2dParams& params, MathMode math, size_t* bytes) {
  if (!bytes) return invalid("conv_transpose2d_workspace_size: bytes is null");
  if (math != MathMode::kTF32 && math != MathMode::kFP32)
    return invalid("conv_transpose2d_workspace_size: math is not a MathMode value");
  ConvTGeometry g;
  CTFUSE_RETURN_IF_ERROR(make_geometry(params, &g));
  *bytes = workspace_layout(g, math, 0).total;
  return ok_status();
}

Status conv_transpose2d(const ConvTranspose2dParams& params, const float* x, const float* weight,
                        const float* conv_bias, float* y, MathMode math, void* workspace, size_t workspace_bytes,
                        cudaStream_t stream) {
  ConvTGeometry g;
  CTFUSE_RETURN_IF_ERROR(make_geometry(params, &g));
  if (math != MathMode::kTF32 && math != MathMode::kFP32) return invalid("conv_transpose2d: math is not a MathMode value");
  if (!x) return invalid("conv_transpose2d: x is null");
  if (!weight) return invalid("conv_transpose2d: weight is null");
  if (!y) return invalid("conv_transpose2d: y is null");
  if (!aligned(x, 4) || !aligned(weight, 4) || !aligned(y, 4) || (conv_bias && !aligned(conv_bias, 4)))
    return invalid("conv_transpose2d: x, weight, conv_bias and y must be 4-byte aligned");
  const WorkspaceLayout l = workspace_layout(g, math, 0);
  CTFUSE_RETURN_IF_ERROR(check_workspace(workspace, workspace_bytes, l.total,
                                         "conv_transpose2d: workspace is null",
                                         "conv_transpose2d: workspace_bytes is smaller than conv_transpose2d_workspace_size",
                                         "conv_transpose2d: workspace is not 16-byte aligned"));
  ConvTOperands op;
  CTFUSE_RETURN_IF_ERROR(pack_weights(g, x, weight, math, static_cast<char*>(workspace), l, stream, &op));
  return launch_convt_store(g, op, conv_bias, y, math, stream);
}

}  // namespace ctfuse
