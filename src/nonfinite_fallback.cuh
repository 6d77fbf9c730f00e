// NaN or Inf in the weights. The implicit GEMM multiplies a tap that falls outside the
// input by a zero x (0 * inf = NaN) where PyTorch skips that tap, so such calls cannot use
// its results near the border. They are rare and never a fast path: the weight packing
// flags them (one int per packing block), and the kernels that finish a call (the fused
// path's column finisher, a fix-up after the store path) then recompute their outputs
// from the definition: products of fp32 values summed in double, taps outside the input
// skipped. With no flag set the cost is one read of the flags per block.
#pragma once

#include <cstdint>

#include "convt_geometry.cuh"
#include "reduce_ops.cuh"

namespace ctfuse {

// Written by pack_weights_kernel: flags[b] != 0 when packing block b read a NaN or Inf.
struct NonfiniteWeightFlags {
  const int* flags = nullptr;
  int count = 0;
};

// The packing grid's limit, so the flags have a fixed place in the workspace.
constexpr int kMaxPackBlocks = 1024;

// Every thread of the block must call it.
__device__ inline bool block_saw_nonfinite_weight(const NonfiniteWeightFlags& f) {
  int any = 0;
  for (int i = threadIdx.x; i < f.count; i += blockDim.x) any |= f.flags[i];
  return __syncthreads_or(any) != 0;
}

// The exact operands of a call: x [N, C_in, H_in, W_in], weight in PyTorch's layout.
struct ExactOperands {
  ConvTGeometry g;
  const float* x;
  const float* weight;     // [C_in, C_out, kernel_h, kernel_w]
  const float* conv_bias;  // [C_out] or null
};

// y[n, co, oh, ow] from the definition.
__device__ inline float exact_y(const ExactOperands& o, int n, int co, int oh, int ow) {
  const ConvTGeometry& g = o.g;
  double acc = 0.0;
  for (int kh = 0; kh < g.kernel_h; ++kh) {
    const int64_t th = int64_t(oh) + g.pad_h - int64_t(kh) * g.dil_h;
    if (th < 0 || th % g.stride_h != 0 || th / g.stride_h >= g.H_in) continue;
    const int64_t ih = th / g.stride_h;
    for (int kw = 0; kw < g.kernel_w; ++kw) {
      const int64_t tw = int64_t(ow) + g.pad_w - int64_t(kw) * g.dil_w;
      if (tw < 0 || tw % g.stride_w != 0 || tw / g.stride_w >= g.W_in) continue;
      const int64_t iw = tw / g.stride_w;
      for (int ci = 0; ci < g.C_in; ++ci)
        acc += double(o.x[((int64_t(n) * g.C_in + ci) * g.H_in + ih) * g.W_in + iw]) *
               double(o.weight[((int64_t(ci) * g.C_out + co) * g.kernel_h + kh) * g.kernel_w + kw]);
    }
  }
  return o.conv_bias ? float(acc) + o.conv_bias[co] : float(acc);
}

// All of y from the definition, the grid's threads striding over it.
__device__ inline void write_y_from_definition(const ExactOperands& o, float* y) {
  const ConvTGeometry& g = o.g;
  const int64_t total = int64_t(g.N) * g.C_out * g.H_out * g.W_out;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int ow = int(e % g.W_out), oh = int(e / g.W_out % g.H_out);
    const int co = int(e / (int64_t(g.W_out) * g.H_out) % g.C_out);
    const int n = int(e / (int64_t(g.W_out) * g.H_out * g.C_out));
    y[e] = exact_y(o, n, co, oh, ow);
  }
}

// s[n, ow] from the definition: the sum over rows of the NaN-propagating channel minimum.
__device__ inline double exact_column_sum(const ExactOperands& o, int n, int ow) {
  double sum = 0.0;
  for (int oh = 0; oh < o.g.H_out; ++oh) {
    float m = pos_inf();
    for (int co = 0; co < o.g.C_out; ++co) m = nan_min(m, exact_y(o, n, co, oh, ow));
    sum += m;
  }
  return sum;
}

}  // namespace ctfuse
