// Host-side pieces shared by conv_transpose2d (convt.cu) and forward (forward.cu).
#pragma once

#include <cstddef>

#include "convt_geometry.cuh"
#include "ctfuse/types.h"
#include "implicit_gemm.cuh"

namespace ctfuse {

// Checks params (as conv_transpose2d_output_hw does) and the limits of the kernels'
// 32-bit dimension arithmetic, then fills the geometry.
Status make_geometry(const ConvTranspose2dParams& params, ConvTGeometry* g);

// The packed weights: [kernel_h][kernel_w][C_in][co_pad] floats, TF32-rounded (and for
// FP32 mode a second array with the rounding residuals).
size_t packed_weight_floats(const ConvTGeometry& g);

// Byte layout of a workspace: packed weights first, then whatever the path needs.
struct WorkspaceLayout {
  size_t w_big = 0, w_small = 0, extra = 0, total = 0;  // offsets, and the total size
};
WorkspaceLayout workspace_layout(const ConvTGeometry& g, MathMode math, size_t extra_bytes);

Status check_workspace(const void* workspace, size_t bytes, size_t needed, const char* null_msg,
                       const char* small_msg, const char* align_msg);

// Queues the weight packing; returns the operands for the mainloop.
Status pack_weights(const ConvTGeometry& g, const float* x, const float* weight, MathMode math,
                    char* workspace, const WorkspaceLayout& layout, cudaStream_t stream,
                    ConvTOperands* op);

// The two uses of the mainloop.
Status launch_convt_store(const ConvTGeometry& g, const ConvTOperands& op, const float* conv_bias,
                          float* y, MathMode math, cudaStream_t stream);
// Per-(n, block row, ow) column sums of the channel minima; *tiles_h receives the
// number of block rows the partials are split into (<= max_partial_tiles_h(g)).
Status launch_convt_min_sum(const ConvTGeometry& g, const ConvTOperands& op, const float* conv_bias,
                            double* partial, MathMode math, cudaStream_t stream, int* tiles_h);
int64_t max_partial_tiles_h(const ConvTGeometry& g);

// Sets the dynamic shared-memory limit and launches `kernel` on a grid covering `tiles`.
template <typename Kernel, typename... Args>
Status launch_gemm(Kernel kernel, int threads, size_t smem, int64_t tiles, cudaStream_t stream, Args... args) {
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
  if (err != cudaSuccess) return Status{StatusCode::kCudaError, cudaGetErrorString(err), err};
  const int64_t max_grid = 0x7fffffff;
  const unsigned blocks = unsigned(tiles < max_grid ? tiles : max_grid);
  kernel<<<blocks, threads, smem, stream>>>(args...);
  err = cudaGetLastError();
  if (err != cudaSuccess) return Status{StatusCode::kCudaError, cudaGetErrorString(err), err};
  return Status{};
}

}  // namespace ctfuse
