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

}  // namespace ctfuse
