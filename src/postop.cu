// Host side of the post-op: argument checks, then the choice of kernel and policy.
#include <algorithm>
#include <cstdint>

#include "ctfuse/ctfuse.h"
#include "postop_kernel.cuh"
#include "postop_launch.h"
#include "problem.h"
#include "status_util.h"

namespace ctfuse {
namespace {

// Tiles beyond this are walked by the grid-stride loop inside the kernels.
constexpr int64_t kMaxBlocks = int64_t{1} << 20;

template <typename P>
void launch_w(const PostOpArgs& a, cudaStream_t stream) {
  const int64_t tiles = a.N * ((a.W + P::tile_w() - 1) / P::tile_w());
  const auto blocks = static_cast<unsigned>(std::min(tiles, kMaxBlocks));
  min_sum_gelu_bias_w_kernel<P><<<blocks, P::threads(), 0, stream>>>(a);
}

template <typename P>
void launch_c(const PostOpArgs& a, cudaStream_t stream) {
  const int64_t tiles = a.N * ((a.W + P::tile_w() - 1) / P::tile_w());
  const auto blocks = static_cast<unsigned>(std::min(tiles, kMaxBlocks));
  min_sum_gelu_bias_c_kernel<P><<<blocks, P::threads(), 0, stream>>>(a);
}

}  // namespace

Status min_sum_gelu_bias(const float* y, const Tensor4d& d, const float* bias, int64_t bias_len,
                         GeluMode gelu, float* out, float* s, cudaStream_t stream) {
  if (!y) return invalid("min_sum_gelu_bias: y is null");
  if (!bias) return invalid("min_sum_gelu_bias: bias is null");
  if (!out) return invalid("min_sum_gelu_bias: out is null");
  if (!is_aligned(y, 4)) return invalid("min_sum_gelu_bias: y is not 4-byte aligned");
  if (!is_aligned(bias, 4)) return invalid("min_sum_gelu_bias: bias is not 4-byte aligned");
  if (!is_aligned(out, 4)) return invalid("min_sum_gelu_bias: out is not 4-byte aligned");
  if (s && !is_aligned(s, 4)) return invalid("min_sum_gelu_bias: s is not 4-byte aligned");
  for (int i = 0; i < 4; ++i)
    if (d.size[i] <= 0) return invalid("min_sum_gelu_bias: y_desc.size must be positive in every dimension");
  for (int i = 0; i < 4; ++i)
    if (d.stride[i] < 0) return invalid("min_sum_gelu_bias: y_desc.stride must be non-negative");
  // The span first: overlap is judged on strides whose products are known to fit.
  if (tensor4d_span(d) < 0 || tensor4d_span(d) > (INT64_MAX / 4))
    return invalid("min_sum_gelu_bias: y_desc spans more than 2^61 elements");
  if (!tensor4d_is_non_overlapping(d))
    return invalid("min_sum_gelu_bias: y_desc strides overlap (two indices address one element)");
  if (bias_len < 1) return invalid("min_sum_gelu_bias: bias_len must be >= 1");
  if (gelu != GeluMode::kErf && gelu != GeluMode::kTanh)
    return invalid("min_sum_gelu_bias: gelu is not a GeluMode value");
  if (bias_len > INT64_MAX / d.n() / d.w()) return invalid("min_sum_gelu_bias: N * bias_len * W overflows int64");
  CTFUSE_RETURN_IF_ERROR(check_device_context(
      stream, {{y, "min_sum_gelu_bias: y is host memory the device cannot access"},
               {bias, "min_sum_gelu_bias: bias is host memory the device cannot access"},
               {out, "min_sum_gelu_bias: out is host memory the device cannot access"},
               {s, "min_sum_gelu_bias: s is host memory the device cannot access"}}));
  return queue_min_sum_gelu_bias(y, d, bias, bias_len, gelu, out, s, stream);
}

Status queue_min_sum_gelu_bias(const float* y, const Tensor4d& d, const float* bias, int64_t bias_len,
                               GeluMode gelu, float* out, float* s, cudaStream_t stream) {
  PostOpArgs a;
  a.y = y;
  a.N = d.n(); a.C = d.c(); a.H = d.h(); a.W = d.w();
  a.sN = d.stride[0]; a.sC = d.stride[1]; a.sH = d.stride[2]; a.sW = d.stride[3];
  a.col = ColumnOutput{bias, bias_len, gelu, out, s, a.W};

  const bool vec_ok = is_aligned(y, 16) && a.sN % 4 == 0 && a.sH % 4 == 0;
  if (a.sC == 1 && a.C > 1) {  // channels-last
    if (vec_ok && a.C % 4 == 0 && a.sW % 4 == 0) launch_c<PostOpC4>(a, stream);
    else launch_c<PostOpC1>(a, stream);
  } else {
    if (vec_ok && a.sW == 1 && a.W % 4 == 0 && a.sC % 4 == 0) {
      launch_w<PostOpW4>(a, stream);
    } else {
      launch_w<PostOpW1>(a, stream);
    }
  }
  return launch_status();
}

}  // namespace ctfuse
