// PyTorch binding of ctfuse::forward (see ../../include/ctfuse/ctfuse.h), registered with
// the dispatcher as torch.ops.ctfuse.forward.
//
// Thin on purpose: check the tensors, make them contiguous, allocate out / s / workspace
// through PyTorch's caching allocator (so CUDA-graph capture sees only pool memory; the
// library itself never allocates) and queue the op on the current stream. The op is
// defined here, in C++, rather than with torch.library.custom_op in Python: a Python op
// cost 60-70 us of host time per call on the H200 (ModelNew 268.6 us against 201.9 for
// the kernel called directly). The fake (shape) implementation is in
// ctfuse_torch/__init__.py.
#include <torch/extension.h>

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <optional>
#include <string>
#include <tuple>

#include "ctfuse/ctfuse.h"

namespace {

// Numbers in error messages are formatted here, never streamed by c10::str: on the GPU
// machine (extension built with its /opt/gcc g++), streaming an integer into the message
// of a thrown c10::Error segfaulted the process, while messages made only of strings
// raised cleanly. std::to_string does not touch the stream's locale.
std::string num(int64_t v) { return std::to_string(v); }
std::string shape(at::IntArrayRef sizes) {
  std::string r = "[";
  for (size_t i = 0; i < sizes.size(); ++i) r += (i ? ", " : "") + std::to_string(sizes[i]);
  return r + "]";
}

void check_status(const ctfuse::Status& st, const char* where) {
  if (st.ok()) return;
  if (st.code == ctfuse::StatusCode::kCudaError) {
    TORCH_CHECK(false, where, ": ", ctfuse::status_code_name(st.code), ": ", st.message, " (",
                cudaGetErrorString(st.cuda_error), ")");
  }
  TORCH_CHECK(false, where, ": ", ctfuse::status_code_name(st.code), ": ", st.message);
}

// Every tensor must be fp32 on x's CUDA device: the library reads raw device pointers.
void check_tensor(const at::Tensor& t, const char* name, const at::Tensor& x) {
  TORCH_CHECK_VALUE(t.defined(), "ctfuse: ", name, " is an undefined tensor");
  TORCH_CHECK_VALUE(t.is_cuda(), "ctfuse: ", name, " must be a CUDA tensor, got device ", t.device().str());
  TORCH_CHECK_TYPE(t.scalar_type() == at::kFloat, "ctfuse: ", name, " must be float32, got ", c10::toString(t.scalar_type()));
  TORCH_CHECK_VALUE(t.device() == x.device(), "ctfuse: ", name, " is on ", t.device().str(), " but x is on ",
                    x.device().str(), "; all tensors must be on one device");
}

std::pair<int64_t, int64_t> pair_arg(at::IntArrayRef v, const char* name) {
  TORCH_CHECK_VALUE(v.size() == 2, "ctfuse: ", name, " must have 2 elements (h, w), got ", num(int64_t(v.size())));
  return {v[0], v[1]};
}

// Checks x and weight and fills the library's problem description. Out-of-range values
// (negative padding, output_padding >= max(stride, dilation), ...) are left to the
// library, whose messages name the field.
ctfuse::ConvTranspose2dParams make_params(const at::Tensor& x, const at::Tensor& weight,
                                          at::IntArrayRef stride, at::IntArrayRef padding,
                                          at::IntArrayRef output_padding,
                                          at::IntArrayRef dilation) {
  check_tensor(x, "x", x);
  check_tensor(weight, "weight", x);
  TORCH_CHECK_VALUE(x.dim() == 4, "ctfuse: x must be 4-D [N, C_in, H_in, W_in], got shape ", shape(x.sizes()));
  TORCH_CHECK_VALUE(weight.dim() == 4, "ctfuse: weight must be 4-D [C_in, C_out, kH, kW], got shape ",
                    shape(weight.sizes()));
  TORCH_CHECK_VALUE(weight.size(0) == x.size(1), "ctfuse: channel count mismatch: x has ", num(x.size(1)),
                    " channels (x.size(1)) but weight expects C_in = weight.size(0) = ", num(weight.size(0)));
  ctfuse::ConvTranspose2dParams p;
  p.N = x.size(0); p.C_in = x.size(1); p.H_in = x.size(2); p.W_in = x.size(3);
  p.C_out = weight.size(1); p.kernel_h = weight.size(2); p.kernel_w = weight.size(3);
  std::tie(p.stride_h, p.stride_w) = pair_arg(stride, "stride");
  std::tie(p.pad_h, p.pad_w) = pair_arg(padding, "padding");
  std::tie(p.output_pad_h, p.output_pad_w) = pair_arg(output_padding, "output_padding");
  std::tie(p.dilation_h, p.dilation_w) = pair_arg(dilation, "dilation");
  return p;
}

ctfuse::ForwardOptions make_options(int64_t math, int64_t gelu) {
  TORCH_CHECK_VALUE(math == 0 || math == 1, "ctfuse: math must be 0 (tf32) or 1 (fp32), got ", num(math));
  TORCH_CHECK_VALUE(gelu == 0 || gelu == 1, "ctfuse: gelu must be 0 (erf) or 1 (tanh), got ", num(gelu));
  ctfuse::ForwardOptions o;
  o.math = static_cast<ctfuse::MathMode>(math);
  o.gelu = static_cast<ctfuse::GeluMode>(gelu);
  return o;
}

// (1,1,1) or (C_b,1,1), as the reference module's bias_shape; bias_len = numel.
int64_t bias_length(const at::Tensor& bias) {
  const bool scalar_like = bias.numel() == 1 && bias.dim() <= 4;
  const bool per_channel = bias.dim() == 3 && bias.size(1) == 1 && bias.size(2) == 1 && bias.size(0) >= 1;
  TORCH_CHECK_VALUE(scalar_like || per_channel, "ctfuse: bias must have shape (1, 1, 1) or (C_b, 1, 1), got ",
                    shape(bias.sizes()));
  return bias.numel();
}

std::tuple<at::Tensor, at::Tensor> forward_cuda(const at::Tensor& x, const at::Tensor& weight,
                                           const std::optional<at::Tensor>& conv_bias, const at::Tensor& bias,
                                           at::IntArrayRef stride, at::IntArrayRef padding,
                                           at::IntArrayRef output_padding,
                                           at::IntArrayRef dilation, int64_t math, int64_t gelu,
                                           bool want_s) {
  ctfuse::ConvTranspose2dParams p = make_params(x, weight, stride, padding, output_padding, dilation);
  const c10::cuda::CUDAGuard guard(x.device());  // the library launches on the current device
  const bool has_cb = conv_bias.has_value() && conv_bias->defined();
  if (has_cb) {
    check_tensor(*conv_bias, "conv_bias", x);
    TORCH_CHECK_VALUE(conv_bias->dim() == 1 && conv_bias->size(0) == p.C_out, "ctfuse: conv_bias must have shape (",
                      num(p.C_out), ",) = (C_out,), got ", shape(conv_bias->sizes()));
  }
  check_tensor(bias, "bias", x);
  const int64_t bias_len = bias_length(bias);
  const ctfuse::ForwardOptions opt = make_options(math, gelu);

  // An empty batch is valid in PyTorch; the library wants N >= 1, so only ask it for W_out.
  const int64_t N = p.N;
  if (N == 0) p.N = 1;
  int64_t H_out = 0, W_out = 0;
  check_status(ctfuse::conv_transpose2d_output_hw(p, &H_out, &W_out), "ctfuse::conv_transpose2d_output_hw");
  at::Tensor out = at::empty({N, bias_len, 1, W_out}, x.options());
  at::Tensor s = want_s ? at::empty({N, W_out}, x.options()) : at::empty({0}, x.options());
  if (N == 0) return {out, s};

  const at::Tensor xc = x.contiguous(), wc = weight.contiguous(), bc = bias.contiguous();
  const at::Tensor cbc = has_cb ? conv_bias->contiguous() : at::Tensor();
  size_t ws_bytes = 0;
  check_status(ctfuse::forward_workspace_size(p, bias_len, opt, &ws_bytes), "ctfuse::forward_workspace_size");
  // Caching-allocator blocks are 512-byte aligned (the library needs 16).
  at::Tensor ws = at::empty({static_cast<int64_t>(std::max<size_t>(ws_bytes, 16))}, x.options().dtype(at::kByte));
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream(x.device().index()).stream();
  check_status(ctfuse::forward(p, xc.data_ptr<float>(), wc.data_ptr<float>(),
                               has_cb ? cbc.data_ptr<float>() : nullptr, bc.data_ptr<float>(), bias_len, opt,
                               out.data_ptr<float>(), want_s ? s.data_ptr<float>() : nullptr, ws.data_ptr(),
                               ws_bytes, stream),
               "ctfuse::forward");
  return {out, s};
}

int64_t workspace_size(const at::Tensor& x, const at::Tensor& weight, at::IntArrayRef stride,
                       at::IntArrayRef padding, at::IntArrayRef output_padding,
                       at::IntArrayRef dilation, int64_t bias_len, int64_t math, int64_t gelu) {
  const ctfuse::ConvTranspose2dParams p = make_params(x, weight, stride, padding, output_padding, dilation);
  const c10::cuda::CUDAGuard guard(x.device());
  size_t bytes = 0;
  check_status(ctfuse::forward_workspace_size(p, bias_len, make_options(math, gelu), &bytes),
               "ctfuse::forward_workspace_size");
  return static_cast<int64_t>(bytes);
}

std::string mainloop_in_use(const at::Tensor& x, const at::Tensor& weight, at::IntArrayRef stride,
                            at::IntArrayRef padding, at::IntArrayRef output_padding,
                            at::IntArrayRef dilation, int64_t math) {
  const ctfuse::ConvTranspose2dParams p = make_params(x, weight, stride, padding, output_padding, dilation);
  const c10::cuda::CUDAGuard guard(x.device());  // the answer depends on the device
  const char* name = nullptr;
  check_status(ctfuse::mainloop_in_use(p, make_options(math, 0).math, ctfuse::MainloopKind::kAuto, &name),
               "ctfuse::mainloop_in_use");
  return name;
}

// forward has no backward: in grad mode its outputs carry a node whose backward says so,
// instead of silently cutting the graph. The forward redispatches below autograd, so
// fake tensors (torch.compile) reach the fake implementation.
class ForwardOnly : public torch::autograd::Function<ForwardOnly> {
 public:
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext*, const at::Tensor& x,
                                                const at::Tensor& weight, const std::optional<at::Tensor>& conv_bias,
                                                const at::Tensor& bias, at::IntArrayRef stride,
                                                at::IntArrayRef padding, at::IntArrayRef output_padding,
                                                at::IntArrayRef dilation, int64_t math, int64_t gelu, bool want_s) {
    static const auto op = c10::Dispatcher::singleton()
                               .findSchemaOrThrow("ctfuse::forward", "")
                               .typed<decltype(forward_cuda)>();
    const at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto [out, s] = op.call(x, weight, conv_bias, bias, stride, padding, output_padding, dilation, math, gelu, want_s);
    return {out, s};
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext*, torch::autograd::variable_list) {
    TORCH_CHECK(false, "ctfuse: backward is not implemented (ctfuse_torch is forward-only); run the model under "
                       "torch.no_grad() or torch.inference_mode(), or use the reference module to train");
  }
};

std::tuple<at::Tensor, at::Tensor> forward_autograd(const at::Tensor& x, const at::Tensor& weight,
                                                    const std::optional<at::Tensor>& conv_bias,
                                                    const at::Tensor& bias, at::IntArrayRef stride,
                                                    at::IntArrayRef padding, at::IntArrayRef output_padding,
                                                    at::IntArrayRef dilation, int64_t math, int64_t gelu,
                                                    bool want_s) {
  auto r = ForwardOnly::apply(x, weight, conv_bias, bias, stride, padding, output_padding, dilation, math, gelu,
                              want_s);
  return {r[0], r[1]};
}

}  // namespace

TORCH_LIBRARY(ctfuse, m) {
  m.def("forward(Tensor x, Tensor weight, Tensor? conv_bias, Tensor bias, int[2] stride, int[2] padding, "
        "int[2] output_padding, int[2] dilation, int math, int gelu, bool want_s) -> (Tensor, Tensor)");
  m.def("workspace_size(Tensor x, Tensor weight, int[2] stride, int[2] padding, int[2] output_padding, "
        "int[2] dilation, int bias_len, int math, int gelu) -> int");
  m.def("mainloop_in_use(Tensor x, Tensor weight, int[2] stride, int[2] padding, int[2] output_padding, "
        "int[2] dilation, int math) -> str");
}

// CPU too, so that tensors on the wrong device get this binding's message ("x must be a
// CUDA tensor") rather than the dispatcher's "no kernel for CPU".
TORCH_LIBRARY_IMPL(ctfuse, CUDA, m) {
  m.impl("forward", &forward_cuda);
  m.impl("workspace_size", &workspace_size);
  m.impl("mainloop_in_use", &mainloop_in_use);
}
TORCH_LIBRARY_IMPL(ctfuse, CPU, m) {
  m.impl("forward", &forward_cuda);
  m.impl("workspace_size", &workspace_size);
  m.impl("mainloop_in_use", &mainloop_in_use);
}
TORCH_LIBRARY_IMPL(ctfuse, Autograd, m) { m.impl("forward", &forward_autograd); }

// Importing ctfuse_torch._C loads this library, which registers the ops above.
PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.doc() = "ctfuse: registers torch.ops.ctfuse.* (forward only)"; }
