// ctfuse: plain types shared by every entry point.
//
// Everything here is host-side, allocation-free and free of global state, so the
// header can be included from C++ code that never touches CUDA.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

namespace ctfuse {

enum class StatusCode : int {
  kSuccess = 0,
  kInvalidArgument = 1,  // the call can never succeed with these arguments
  kUnsupported = 2,      // valid, but outside what this build implements
  kCudaError = 3,        // the CUDA runtime reported an error (see cuda_error)
};

// Returned by value from every entry point. `message` is a static string (never
// null, never freed) that names the offending argument, so it stays valid after
// the call and needs no per-thread state.
struct Status {
  StatusCode code = StatusCode::kSuccess;
  const char* message = "success";
  cudaError_t cuda_error = cudaSuccess;

  constexpr bool ok() const { return code == StatusCode::kSuccess; }
};

// "success", "invalid argument", "unsupported", "CUDA error".
const char* status_code_name(StatusCode code);

enum class GeluMode : int {
  kErf = 0,   // 0.5 * s * (1 + erf(s / sqrt(2)))  (PyTorch's default)
  kTanh = 1,  // 0.5 * s * (1 + tanh(sqrt(2/pi) * (s + 0.044715 s^3)))
};

enum class MathMode : int {
  kTF32 = 0,  // tensor cores, operands rounded to TF32 (round to nearest), FP32 accumulate
  kFP32 = 1,  // FP32-accurate results
};

// Which tensor-core mainloop runs the convolution (alone or fused). Both give results
// within the same TF32 error bounds; they differ in speed and in where they run.
enum class MainloopKind : int {
  kAuto = 0,      // the fastest one built for the current device: Hopper wgmma on sm_90
                  // (H100, H200; TF32 with C_out > 64; x brought in by the TMA unit when
                  // W_in % 4 == 0 and x is 16-byte aligned), mma.sync everywhere else
  kPortable = 1,  // mma.sync on every device: what an RTX 4090 runs (for comparison, tests)
};

// The ConvTranspose2d problem, in PyTorch's terms (groups = 1).
//   x      [N, C_in, H_in, W_in]
//   weight [C_in, C_out, kernel_h, kernel_w]
//   y      [N, C_out, H_out, W_out],
//   H_out = (H_in - 1) * stride_h - 2 * pad_h + dilation_h * (kernel_h - 1) + output_pad_h + 1
struct ConvTranspose2dParams {
  int64_t N = 1, C_in = 1, H_in = 1, W_in = 1, C_out = 1;
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t output_pad_h = 0, output_pad_w = 0;
  int64_t dilation_h = 1, dilation_w = 1;
};

// Checks the parameters the way PyTorch does (positive sizes, kernel, stride and
// dilation; non-negative padding; output_padding < max(stride, dilation); a
// positive output size) and computes H_out and W_out. Either pointer may be null.
Status conv_transpose2d_output_hw(const ConvTranspose2dParams& p, int64_t* H_out,
                                  int64_t* W_out);

// A 4-d fp32 tensor on the device: sizes and element strides, both in N, C, H, W order.
struct Tensor4d {
  int64_t size[4] = {0, 0, 0, 0};
  int64_t stride[4] = {0, 0, 0, 0};

  int64_t n() const { return size[0]; }
  int64_t c() const { return size[1]; }
  int64_t h() const { return size[2]; }
  int64_t w() const { return size[3]; }
};

Tensor4d make_nchw(int64_t n, int64_t c, int64_t h, int64_t w);
Tensor4d make_nhwc(int64_t n, int64_t c, int64_t h, int64_t w);  // channels-last

}  // namespace ctfuse
