// The element operations every kernel shares: PyTorch's NaN-propagating minimum, the
// GELU of a finished column sum, and the write of s and out for one column.
#pragma once

#include <cuda_runtime.h>

#include "ctfuse/types.h"

namespace ctfuse {

// The neutral element of the channel minimum.
__device__ __forceinline__ float pos_inf() { return __int_as_float(0x7f800000); }

// torch.min semantics: NaN wins (fminf would drop it). PTX min.NaN (sm_80+) is one
// instruction that returns NaN when either operand is NaN.
__device__ __forceinline__ float nan_min(float m, float v) {
  float r;
  asm("min.NaN.f32 %0, %1, %2;" : "=f"(r) : "f"(m), "f"(v));
  return r;
}

__device__ __forceinline__ float warp_nan_min(float m) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1)
    m = nan_min(m, __shfl_xor_sync(0xffffffffu, m, offset));
  return m;
}

// GELU in double, once per output column, so the fp32 result is correctly rounded
// where fp32 arithmetic would cancel (1 + erf(x) for x << 0). The erfc form keeps
// PyTorch's special values: gelu(-inf) = NaN, gelu(+inf) = +inf, gelu(-50) = -0.0.
__device__ __forceinline__ double gelu(double s, GeluMode mode) {
  if (mode == GeluMode::kTanh) {
    const double inner = 0.7978845608028654 * (s + 0.044715 * s * s * s);
    return 0.5 * s * (1.0 + tanh(inner));
  }
  return 0.5 * s * erfc(-0.7071067811865476 * s);
}

// Everything the kernels need to finish a column (n, w).
struct ColumnOutput {
  const float* bias;  // [bias_len]
  int64_t bias_len;
  GeluMode gelu;
  float* out;         // [N, bias_len, 1, W]
  float* s;           // [N, W] or null
  int64_t W;
};

__device__ __forceinline__ void finish_column(const ColumnOutput& o, int64_t n, int64_t w,
                                              double sum) {
  if (o.s) o.s[n * o.W + w] = static_cast<float>(sum);
  // PyTorch adds the bias to the fp32 GELU value, in fp32.
  const float g = static_cast<float>(gelu(sum, o.gelu));
  float* dst = o.out + n * o.bias_len * o.W + w;
  for (int64_t cb = 0; cb < o.bias_len; ++cb) dst[cb * o.W] = g + o.bias[cb];
}

}  // namespace ctfuse
