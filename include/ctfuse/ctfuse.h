// ctfuse: ConvTranspose2d -> min over channels -> sum over rows -> GELU -> + bias.
//
// Conventions shared by every entry point:
//  - all pointers are device pointers to fp32 data; every call is asynchronous on
//    `stream` (0 = the legacy default stream) and returns as soon as work is queued;
//  - nothing is allocated, nothing is cached between calls, no global state is kept;
//  - arguments are checked before any work is queued: on a non-ok Status nothing the
//    caller owns has been written.
#pragma once

#include "ctfuse/types.h"

namespace ctfuse {

// The post-op alone, on a tensor y the caller already has:
//   s[n, w]          = sum over h of ( min over c of y[n, c, h, w] )     (pre-GELU sums)
//   out[n, cb, 0, w] = gelu(s[n, w]) + bias[cb],  cb < bias_len
//
// y:    [N, C, H, W] described by `y_desc` (any non-overlapping strides; NCHW- and
//       NHWC-contiguous get the vectorised paths when 16-byte aligned).
// bias: bias_len floats; bias_len = 1 is PyTorch's bias_shape (1,1,1), bias_len = C_b
//       its (C_b,1,1).
// out:  [N, bias_len, 1, W] contiguous.
// s:    optional (may be null): [N, W] contiguous, the pre-GELU sums.
// NaN and Inf follow PyTorch: a NaN anywhere in a channel column makes its minimum NaN.
// s is accumulated in double precision in a fixed order, so results are bitwise
// reproducible and independent of the launch configuration.
Status min_sum_gelu_bias(const float* y, const Tensor4d& y_desc, const float* bias,
                         int64_t bias_len, GeluMode gelu, float* out, float* s,
                         cudaStream_t stream);

// ---------------------------------------------------------------------------------
// ConvTranspose2d alone (cuDNN-free): y = conv_transpose2d(x, weight) + conv_bias.
//
// x [N, C_in, H_in, W_in], weight [C_in, C_out, kernel_h, kernel_w] (PyTorch's layout),
// conv_bias [C_out] or null, y [N, C_out, H_out, W_out]; all NCHW-contiguous fp32.
// The workspace holds the weights repacked for the tensor cores (a few hundred KB); its
// size comes from conv_transpose2d_workspace_size (the same for every MainloopKind) and
// it must be 16-byte aligned.
Status conv_transpose2d_workspace_size(const ConvTranspose2dParams& params, MathMode math,
                                       size_t* bytes);
Status conv_transpose2d(const ConvTranspose2dParams& params, const float* x, const float* weight,
                        const float* conv_bias, float* y, MathMode math, void* workspace,
                        size_t workspace_bytes, cudaStream_t stream,
                        MainloopKind mainloop = MainloopKind::kAuto);

// The mainloop that conv_transpose2d or forward with these arguments (and a 16-byte
// aligned x, as cudaMalloc returns) runs on the current device: *name = "wgmma+TMA",
// "wgmma" or "mma.sync" (a static string). For logs and benchmarks.
Status mainloop_in_use(const ConvTranspose2dParams& params, MathMode math, MainloopKind mainloop,
                       const char** name);

// ---------------------------------------------------------------------------------
// The whole op: out = gelu(sum_h min_c conv_transpose2d(x) + conv_bias) + bias.
enum class Path : int {
  kAuto = 0,     // the fused kernel (y never stored); the unfused path where fused is unsupported
  kFused = 1,    // one implicit-GEMM pass with a min/sum epilogue, then a tiny finishing kernel
  kUnfused = 2,  // conv_transpose2d into the workspace, then min_sum_gelu_bias (for comparison)
};

struct ForwardOptions {
  MathMode math = MathMode::kTF32;
  GeluMode gelu = GeluMode::kErf;
  Path path = Path::kAuto;
  MainloopKind mainloop = MainloopKind::kAuto;
};

// out [N, bias_len, 1, W_out] contiguous; s [N, W_out] (pre-GELU sums) or null.
// The fused path's workspace is small (packed weights + per-tile column sums, 1.3 MB at
// the benchmark shape); the unfused path's also holds y. Results are bitwise
// reproducible: every reduction runs in a fixed order.
Status forward_workspace_size(const ConvTranspose2dParams& params, int64_t bias_len,
                              const ForwardOptions& options, size_t* bytes);
Status forward(const ConvTranspose2dParams& params, const float* x, const float* weight,
               const float* conv_bias, const float* bias, int64_t bias_len,
               const ForwardOptions& options, float* out, float* s, void* workspace,
               size_t workspace_bytes, cudaStream_t stream);

}  // namespace ctfuse
