// The post-op's launch without its argument checks, for forward's unfused path: forward has
// checked every argument (and run check_device_context) before queueing its first kernel,
// so checking again between its kernels could only misreport an asynchronous error of
// work already queued as "nothing was queued".
#pragma once

#include "ctfuse/types.h"

namespace ctfuse {

Status queue_min_sum_gelu_bias(const float* y, const Tensor4d& y_desc, const float* bias, int64_t bias_len,
                               GeluMode gelu, float* out, float* s, cudaStream_t stream);

}  // namespace ctfuse
