// The cuDNN baseline for ConvTranspose2d: see cudnn_convt.h.
//
// Compiled into the bench only when cuDNN is found (CTFUSE_BENCH_HAVE_CUDNN).
// Every cuDNN and CUDA call is checked; failures travel back as strings.
#include "cudnn_convt.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <cuda_runtime.h>
#include <cudnn.h>

namespace bench {
namespace {

// ---------------------------------------------------------------------------------
// Error plumbing: functions return "" on success, the reason otherwise.

std::string cudnn_error(const char* expr, cudnnStatus_t st, int line) {
  char detail[1024] = {0};
  cudnnGetLastErrorString(detail, sizeof(detail));
  std::string s = std::string(expr) + " -> " + cudnnGetErrorString(st);
  if (detail[0]) s += " (" + std::string(detail) + ")";
  return s + " [cudnn_convt.cu:" + std::to_string(line) + "]";
}

std::string cuda_error(const char* expr, cudaError_t e, int line) {
  return std::string(expr) + " -> " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e) +
         " [cudnn_convt.cu:" + std::to_string(line) + "]";
}

#define RET_CUDNN(expr)                                                         \
  do {                                                                          \
    cudnnStatus_t st_ = (expr);                                                 \
    if (st_ != CUDNN_STATUS_SUCCESS) return cudnn_error(#expr, st_, __LINE__);  \
  } while (0)

#define RET_CUDA(expr)                                                       \
  do {                                                                       \
    cudaError_t e_ = (expr);                                                 \
    if (e_ != cudaSuccess) return cuda_error(#expr, e_, __LINE__);           \
  } while (0)

#define RET_ERR(expr)                      \
  do {                                     \
    std::string err_ = (expr);             \
    if (!err_.empty()) return err_;        \
  } while (0)

std::string fmt_bytes(size_t b) {
  char buf[64];
  if (b < 1024) std::snprintf(buf, sizeof(buf), "%zu B", b);
  else if (b < (size_t(1) << 20)) std::snprintf(buf, sizeof(buf), "%.1f KiB", b / 1024.0);
  else std::snprintf(buf, sizeof(buf), "%.1f MiB", b / 1048576.0);
  return buf;
}

// PyTorch's checks and the output size (kept local so this file needs no library code).
std::string output_hw(const ctfuse::ConvTranspose2dParams& p, int64_t* Ho, int64_t* Wo) {
  if (p.N <= 0 || p.C_in <= 0 || p.H_in <= 0 || p.W_in <= 0 || p.C_out <= 0)
    return "sizes must be positive";
  if (p.kernel_h <= 0 || p.kernel_w <= 0) return "kernel must be positive";
  if (p.stride_h <= 0 || p.stride_w <= 0) return "stride must be positive";
  if (p.dilation_h <= 0 || p.dilation_w <= 0) return "dilation must be positive";
  if (p.pad_h < 0 || p.pad_w < 0) return "padding must be non-negative";
  if (p.output_pad_h < 0 || p.output_pad_w < 0) return "output_padding must be non-negative";
  if (p.output_pad_h >= std::max(p.stride_h, p.dilation_h) ||
      p.output_pad_w >= std::max(p.stride_w, p.dilation_w))
    return "output_padding must be smaller than max(stride, dilation)";
  *Ho = (p.H_in - 1) * p.stride_h - 2 * p.pad_h + p.dilation_h * (p.kernel_h - 1) +
        p.output_pad_h + 1;
  *Wo = (p.W_in - 1) * p.stride_w - 2 * p.pad_w + p.dilation_w * (p.kernel_w - 1) +
        p.output_pad_w + 1;
  if (*Ho <= 0 || *Wo <= 0) return "the output size is not positive";
  return {};
}

bool fits_int(int64_t v) { return v >= 0 && v <= 0x7fffffff; }

// Element strides of a logical [n, c, h, w] tensor, in n, c, h, w order.
void layout_strides(CudnnLayout l, int64_t C, int64_t H, int64_t W, int64_t s[4]) {
  if (l == CudnnLayout::kNCHW) {
    s[0] = C * H * W; s[1] = H * W; s[2] = W; s[3] = 1;
  } else {
    s[0] = H * W * C; s[1] = 1; s[2] = W * C; s[3] = C;
  }
}

const char* legacy_algo_name(int a) {
  switch (a) {
    case 0: return "CUDNN_CONVOLUTION_BWD_DATA_ALGO_0";
    case 1: return "CUDNN_CONVOLUTION_BWD_DATA_ALGO_1";
    case 2: return "CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT";
    case 3: return "CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING";
    case 4: return "CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD";
    case 5: return "CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED";
    default: return "CUDNN_CONVOLUTION_BWD_DATA_ALGO_?";
  }
}

const char* math_name(cudnnMathType_t m) {
  switch (m) {
    case CUDNN_DEFAULT_MATH: return "default math (TF32 allowed)";
    case CUDNN_TENSOR_OP_MATH: return "tensor-op math (TF32)";
    case CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION: return "tensor-op math with down-conversion";
    case CUDNN_FMA_MATH: return "FMA math (no TF32)";
    default: return "unknown math";
  }
}

// Owning handle of a backend descriptor.
struct BackendDeleter {
  void operator()(void* d) const {
    if (d) cudnnBackendDestroyDescriptor(d);
  }
};
using BPtr = std::unique_ptr<void, BackendDeleter>;

std::string bcreate(cudnnBackendDescriptorType_t type, BPtr* out) {
  cudnnBackendDescriptor_t d = nullptr;
  RET_CUDNN(cudnnBackendCreateDescriptor(type, &d));
  out->reset(d);
  return {};
}

std::string make_backend_tensor(int64_t uid, const int64_t dims[4], const int64_t strides[4],
                                 bool is_virtual, BPtr* out) {
  RET_ERR(bcreate(CUDNN_BACKEND_TENSOR_DESCRIPTOR, out));
  void* d = out->get();
  cudnnDataType_t dt = CUDNN_DATA_FLOAT;
  int64_t align = 16;
  bool virt = is_virtual;
  RET_CUDNN(cudnnBackendSetAttribute(d, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt));
  RET_CUDNN(cudnnBackendSetAttribute(d, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims));
  RET_CUDNN(cudnnBackendSetAttribute(d, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides));
  RET_CUDNN(cudnnBackendSetAttribute(d, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid));
  RET_CUDNN(cudnnBackendSetAttribute(d, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1,
                                     &align));
  RET_CUDNN(cudnnBackendSetAttribute(d, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &virt));
  RET_CUDNN(cudnnBackendFinalize(d));
  return {};
}

constexpr int64_t kUidX = 1, kUidW = 2, kUidY = 3, kUidBias = 4, kUidConvOut = 5;

struct EventPair {
  cudaEvent_t a = nullptr, b = nullptr;
  ~EventPair() {
    if (a) cudaEventDestroy(a);
    if (b) cudaEventDestroy(b);
  }
  std::string init() {
    RET_CUDA(cudaEventCreate(&a));
    RET_CUDA(cudaEventCreate(&b));
    return {};
  }
};

// What the graph search needs to know about one engine configuration.
struct EngineInfo {
  std::string name;  // "engine <global index> [k<knob>=<value>,...]": unique per configuration
  std::string math;  // the numerical and behaviour notes, in words
  int64_t global_index = -1;
  bool tensor_cores = false, down_convert = false, reduced = false;
};

std::string inspect_engine_cfg(void* cfgd, EngineInfo* info) {
  BPtr eng;
  RET_ERR(bcreate(CUDNN_BACKEND_ENGINE_DESCRIPTOR, &eng));
  void* engd = eng.get();
  int64_t n = 0;
  RET_CUDNN(cudnnBackendGetAttribute(cfgd, CUDNN_ATTR_ENGINECFG_ENGINE,
                                     CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n, &engd));
  RET_CUDNN(cudnnBackendGetAttribute(engd, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1,
                                     &n, &info->global_index));
  cudnnBackendNumericalNote_t notes[CUDNN_NUMERICAL_NOTE_TYPE_COUNT];
  int64_t nnotes = 0;
  RET_CUDNN(cudnnBackendGetAttribute(engd, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE,
                                     CUDNN_TYPE_NUMERICAL_NOTE, CUDNN_NUMERICAL_NOTE_TYPE_COUNT,
                                     &nnotes, notes));
  cudnnBackendBehaviorNote_t bnotes[CUDNN_BEHAVIOR_NOTE_TYPE_COUNT];
  int64_t nbnotes = 0;
  if (cudnnBackendGetAttribute(engd, CUDNN_ATTR_ENGINE_BEHAVIOR_NOTE, CUDNN_TYPE_BEHAVIOR_NOTE,
                               CUDNN_BEHAVIOR_NOTE_TYPE_COUNT, &nbnotes,
                               bnotes) != CUDNN_STATUS_SUCCESS)
    nbnotes = 0;  // only used for the description

  // The knob choices make the name unique (the same engine comes with several tilings).
  info->name = "engine " + std::to_string(info->global_index) + " [";
  std::vector<BPtr> knobs(CUDNN_KNOB_TYPE_COUNTS);
  std::vector<void*> kraw(CUDNN_KNOB_TYPE_COUNTS);
  for (size_t k = 0; k < knobs.size(); ++k) {
    RET_ERR(bcreate(CUDNN_BACKEND_KNOB_CHOICE_DESCRIPTOR, &knobs[k]));
    kraw[k] = knobs[k].get();
  }
  int64_t nknobs = 0;
  RET_CUDNN(cudnnBackendGetAttribute(cfgd, CUDNN_ATTR_ENGINECFG_KNOB_CHOICES,
                                     CUDNN_TYPE_BACKEND_DESCRIPTOR, int64_t(kraw.size()), &nknobs,
                                     kraw.data()));
  for (int64_t k = 0; k < nknobs && k < int64_t(kraw.size()); ++k) {
    cudnnBackendKnobType_t kt;
    int64_t kv = 0, m = 0;
    RET_CUDNN(cudnnBackendGetAttribute(kraw[size_t(k)], CUDNN_ATTR_KNOB_CHOICE_KNOB_TYPE,
                                       CUDNN_TYPE_KNOB_TYPE, 1, &m, &kt));
    RET_CUDNN(cudnnBackendGetAttribute(kraw[size_t(k)], CUDNN_ATTR_KNOB_CHOICE_KNOB_VALUE,
                                       CUDNN_TYPE_INT64, 1, &m, &kv));
    info->name += (k ? "," : "") + std::string("k") + std::to_string(int(kt)) + "=" +
                  std::to_string(kv);
  }
  info->name += "]";

  auto add = [info](const char* s) {
    info->math += (info->math.empty() ? "" : ", ") + std::string(s);
  };
  for (int64_t k = 0; k < nnotes && k < int64_t(CUDNN_NUMERICAL_NOTE_TYPE_COUNT); ++k) {
    switch (notes[k]) {
      case CUDNN_NUMERICAL_NOTE_TENSOR_CORE:
        info->tensor_cores = true;
        add("tensor cores (TF32)");
        break;
      case CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS:
        info->down_convert = true;
        add("down-converts inputs");
        break;
      case CUDNN_NUMERICAL_NOTE_REDUCED_PRECISION_REDUCTION:
        info->reduced = true;
        add("reduced-precision reduction");
        break;
      case CUDNN_NUMERICAL_NOTE_FFT: add("FFT"); break;
      case CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC: add("nondeterministic"); break;
      case CUDNN_NUMERICAL_NOTE_WINOGRAD: add("Winograd"); break;
      default: break;
    }
  }
  if (!info->tensor_cores) add("FP32, no tensor cores");
  for (int64_t k = 0; k < nbnotes && k < int64_t(CUDNN_BEHAVIOR_NOTE_TYPE_COUNT); ++k)
    if (bnotes[k] == CUDNN_BEHAVIOR_NOTE_RUNTIME_COMPILATION) add("runtime-compiled");
  return {};
}

}  // namespace

// ---------------------------------------------------------------------------------

const char* to_string(CudnnLayout layout) {
  return layout == CudnnLayout::kNCHW ? "NCHW" : "NHWC";
}
const char* to_string(CudnnApi api) { return api == CudnnApi::kLegacy ? "legacy" : "graph"; }
const char* to_string(CudnnBias bias) {
  switch (bias) {
    case CudnnBias::kNone: return "no bias";
    case CudnnBias::kAddTensor: return "bias via cudnnAddTensor";
    case CudnnBias::kFused: return "bias fused";
  }
  return "?";
}

size_t cudnn_runtime_version() { return cudnnGetVersion(); }
size_t cudnn_compiled_version() { return CUDNN_VERSION; }

struct CudnnConvTranspose::Impl {
  ctfuse::ConvTranspose2dParams p;
  CudnnConvtConfig cfg;
  int64_t Ho = 0, Wo = 0;

  cudnnHandle_t handle = nullptr;
  // Legacy descriptors: the legacy algorithms, the output-size check and cudnnAddTensor.
  cudnnTensorDescriptor_t xdesc = nullptr, ydesc = nullptr, bdesc = nullptr;
  cudnnFilterDescriptor_t wdesc = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  cudnnMathType_t current_math = CUDNN_DEFAULT_MATH;

  // Legacy choices (parallel to `choices` when api == kLegacy).
  struct Legacy {
    cudnnConvolutionBwdDataAlgo_t algo;
    cudnnMathType_t math;
  };
  std::vector<Legacy> legacy;

  // Graph objects, kept alive for the plans' lifetime.
  std::vector<BPtr> keep;
  BPtr opgraph;
  struct Graph {
    BPtr cfg;
    BPtr plan;
  };
  std::vector<Graph> graph;
  BPtr varpack;
  const void* vp_ptrs[5] = {nullptr, nullptr, nullptr, nullptr, nullptr};

  std::vector<CudnnConvtChoice> choices;
  int sel = -1;
  std::string last_error;

  ~Impl() {
    graph.clear();
    varpack.reset();
    opgraph.reset();
    keep.clear();
    if (conv) cudnnDestroyConvolutionDescriptor(conv);
    if (wdesc) cudnnDestroyFilterDescriptor(wdesc);
    if (bdesc) cudnnDestroyTensorDescriptor(bdesc);
    if (ydesc) cudnnDestroyTensorDescriptor(ydesc);
    if (xdesc) cudnnDestroyTensorDescriptor(xdesc);
    if (handle) cudnnDestroy(handle);
  }

  std::string setup_legacy_descriptors();
  std::string search_legacy(const float* x, const float* w, float* y, void* ws,
                            cudaStream_t stream);
  std::string build_graph();
  std::string search_graph(const float* x, const float* w, const float* b, float* y, void* ws,
                           cudaStream_t stream);
  std::string set_varpack(const float* x, const float* w, const float* b, float* y, void* ws);
  std::string execute(const float* x, const float* w, const float* b, float* y, void* ws,
                      cudaStream_t stream);
};

std::string CudnnConvTranspose::Impl::setup_legacy_descriptors() {
  const cudnnTensorFormat_t fmt =
      cfg.layout == CudnnLayout::kNCHW ? CUDNN_TENSOR_NCHW : CUDNN_TENSOR_NHWC;
  for (int64_t v : {p.N, p.C_in, p.H_in, p.W_in, p.C_out, Ho, Wo, p.kernel_h, p.kernel_w,
                    p.pad_h, p.pad_w, p.stride_h, p.stride_w, p.dilation_h, p.dilation_w})
    if (!fits_int(v)) return "a size or parameter does not fit cuDNN's 32-bit int";

  RET_CUDNN(cudnnCreateTensorDescriptor(&xdesc));
  RET_CUDNN(cudnnCreateTensorDescriptor(&ydesc));
  RET_CUDNN(cudnnCreateTensorDescriptor(&bdesc));
  RET_CUDNN(cudnnCreateFilterDescriptor(&wdesc));
  RET_CUDNN(cudnnCreateConvolutionDescriptor(&conv));
  // dy = x [N, C_in, H_in, W_in]; dx = y [N, C_out, H_out, W_out] (output_padding is in H_out/W_out).
  RET_CUDNN(cudnnSetTensor4dDescriptor(xdesc, fmt, CUDNN_DATA_FLOAT, int(p.N), int(p.C_in),
                                       int(p.H_in), int(p.W_in)));
  RET_CUDNN(cudnnSetTensor4dDescriptor(ydesc, fmt, CUDNN_DATA_FLOAT, int(p.N), int(p.C_out),
                                       int(Ho), int(Wo)));
  RET_CUDNN(cudnnSetTensor4dDescriptor(bdesc, fmt, CUDNN_DATA_FLOAT, 1, int(p.C_out), 1, 1));
  // The filter [K = C_in, C = C_out, R, S]: NCHW is PyTorch's layout, NHWC is KRSC.
  RET_CUDNN(cudnnSetFilter4dDescriptor(wdesc, CUDNN_DATA_FLOAT, fmt, int(p.C_in), int(p.C_out),
                                       int(p.kernel_h), int(p.kernel_w)));
  RET_CUDNN(cudnnSetConvolution2dDescriptor(conv, int(p.pad_h), int(p.pad_w), int(p.stride_h),
                                            int(p.stride_w), int(p.dilation_h),
                                            int(p.dilation_w), CUDNN_CROSS_CORRELATION,
                                            CUDNN_DATA_FLOAT));
  current_math = cfg.tf32 ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH;
  RET_CUDNN(cudnnSetConvolutionMathType(conv, current_math));

  // The forward convolution of dx must give dy's shape. With output_padding <
  // stride the floor in the output-size formula absorbs it; otherwise it cannot.
  int n = 0, c = 0, h = 0, w = 0;
  RET_CUDNN(cudnnGetConvolution2dForwardOutputDim(conv, ydesc, wdesc, &n, &c, &h, &w));
  if (n != p.N || c != p.C_in || h != p.H_in || w != p.W_in) {
    char buf[256];
    std::snprintf(buf, sizeof(buf),
                  "cuDNN cannot express this output_padding: the forward convolution of the "
                  "%lldx%lld output gives %dx%d, not the input's %lldx%lld (needs "
                  "output_padding < stride)",
                  (long long)Ho, (long long)Wo, h, w, (long long)p.H_in, (long long)p.W_in);
    return buf;
  }
  return {};
}

std::string CudnnConvTranspose::Impl::search_legacy(const float* x, const float* w, float* y,
                                                    void* ws, cudaStream_t stream) {
  RET_CUDNN(cudnnSetStream(handle, stream));
  cudnnConvolutionBwdDataAlgoPerf_t perf[2 * CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
  std::memset(perf, 0, sizeof(perf));
  int returned = 0;
  RET_CUDNN(cudnnFindConvolutionBackwardDataAlgorithmEx(
      handle, wdesc, w, xdesc, x, conv, ydesc, y, 2 * CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
      &returned, perf, ws, cfg.workspace_limit));
  RET_CUDA(cudaStreamSynchronize(stream));
  std::string rejected;
  for (int i = 0; i < returned; ++i) {
    const auto& r = perf[i];
    if (r.status != CUDNN_STATUS_SUCCESS || r.memory > cfg.workspace_limit || r.time < 0) {
      rejected += std::string(rejected.empty() ? "" : "; ") + legacy_algo_name(int(r.algo)) +
                  ": " + cudnnGetErrorString(r.status);
      continue;
    }
    // FP32 mode keeps CUDNN_FMA_MATH on the descriptor whatever cudnnFind reports.
    cudnnMathType_t m = cfg.tf32 ? r.mathType : CUDNN_FMA_MATH;
    bool dup = false;
    for (const auto& l : legacy) dup = dup || (l.algo == r.algo && l.math == m);
    if (dup) continue;
    legacy.push_back({r.algo, m});
    CudnnConvtChoice c;
    c.name = legacy_algo_name(int(r.algo));
    c.id = int(r.algo);
    c.tensor_cores = m != CUDNN_FMA_MATH;
    c.math = math_name(m);
    if (r.determinism == CUDNN_NON_DETERMINISTIC) c.math += ", nondeterministic";
    c.workspace_bytes = r.memory;
    c.search_us = 1000.0f * r.time;
    choices.push_back(c);
  }
  if (choices.empty())
    return "cudnnFindConvolutionBackwardDataAlgorithmEx: no algorithm succeeded within a " +
           fmt_bytes(cfg.workspace_limit) + " workspace (" + rejected + ")";
  return {};
}

std::string CudnnConvTranspose::Impl::build_graph() {
  int64_t xs[4], ws[4], ys[4], bs[4];
  layout_strides(cfg.layout, p.C_in, p.H_in, p.W_in, xs);
  layout_strides(cfg.layout, p.C_out, p.kernel_h, p.kernel_w, ws);  // [C_in][C_out][kh][kw] or KRSC
  layout_strides(cfg.layout, p.C_out, Ho, Wo, ys);
  layout_strides(cfg.layout, p.C_out, 1, 1, bs);
  const int64_t xd[4] = {p.N, p.C_in, p.H_in, p.W_in};
  const int64_t wd[4] = {p.C_in, p.C_out, p.kernel_h, p.kernel_w};
  const int64_t yd[4] = {p.N, p.C_out, Ho, Wo};
  const int64_t bd[4] = {1, p.C_out, 1, 1};
  const bool fused = cfg.bias == CudnnBias::kFused;

  BPtr tx, tw, ty, tb, tv;
  RET_ERR(make_backend_tensor(kUidX, xd, xs, false, &tx));
  RET_ERR(make_backend_tensor(kUidW, wd, ws, false, &tw));
  RET_ERR(make_backend_tensor(kUidY, yd, ys, false, &ty));
  if (fused) {
    RET_ERR(make_backend_tensor(kUidBias, bd, bs, false, &tb));
    RET_ERR(make_backend_tensor(kUidConvOut, yd, ys, true, &tv));
  }

  BPtr cd;
  RET_ERR(bcreate(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR, &cd));
  {
    void* d = cd.get();
    cudnnDataType_t comp = CUDNN_DATA_FLOAT;
    cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
    int64_t nsp = 2;
    int64_t dil[2] = {p.dilation_h, p.dilation_w};
    int64_t str[2] = {p.stride_h, p.stride_w};
    int64_t pad[2] = {p.pad_h, p.pad_w};  // pre = post; output_padding lives in dx's dims
    RET_CUDNN(cudnnBackendSetAttribute(d, CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE,
                                       1, &comp));
    RET_CUDNN(cudnnBackendSetAttribute(d, CUDNN_ATTR_CONVOLUTION_CONV_MODE,
                                       CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode));
    RET_CUDNN(cudnnBackendSetAttribute(d, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64,
                                       1, &nsp));
    RET_CUDNN(cudnnBackendSetAttribute(d, CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 2,
                                       dil));
    RET_CUDNN(cudnnBackendSetAttribute(d, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES,
                                       CUDNN_TYPE_INT64, 2, str));
    RET_CUDNN(cudnnBackendSetAttribute(d, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64,
                                       2, pad));
    RET_CUDNN(cudnnBackendSetAttribute(d, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64,
                                       2, pad));
    RET_CUDNN(cudnnBackendFinalize(d));
  }

  BPtr op;
  RET_ERR(bcreate(CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR, &op));
  {
    void* d = op.get();
    float alpha = 1.0f, beta = 0.0f;
    void* conv_d = cd.get();
    void* w_d = tw.get();
    void* dx_d = fused ? tv.get() : ty.get();
    void* dy_d = tx.get();
    RET_CUDNN(cudnnBackendSetAttribute(d, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_ALPHA,
                                       CUDNN_TYPE_FLOAT, 1, &alpha));
    RET_CUDNN(cudnnBackendSetAttribute(d, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_BETA,
                                       CUDNN_TYPE_FLOAT, 1, &beta));
    RET_CUDNN(cudnnBackendSetAttribute(d, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_CONV_DESC,
                                       CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &conv_d));
    RET_CUDNN(cudnnBackendSetAttribute(d, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_W,
                                       CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &w_d));
    RET_CUDNN(cudnnBackendSetAttribute(d, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DX,
                                       CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &dx_d));
    RET_CUDNN(cudnnBackendSetAttribute(d, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DY,
                                       CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &dy_d));
    RET_CUDNN(cudnnBackendFinalize(d));
  }

  std::vector<void*> ops = {op.get()};
  BPtr pw, pwop;
  if (fused) {
    RET_ERR(bcreate(CUDNN_BACKEND_POINTWISE_DESCRIPTOR, &pw));
    {
      void* d = pw.get();
      cudnnPointwiseMode_t mode = CUDNN_POINTWISE_ADD;
      cudnnDataType_t prec = CUDNN_DATA_FLOAT;
      RET_CUDNN(cudnnBackendSetAttribute(d, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE,
                                         1, &mode));
      RET_CUDNN(cudnnBackendSetAttribute(d, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE,
                                         1, &prec));
      RET_CUDNN(cudnnBackendFinalize(d));
    }
    RET_ERR(bcreate(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, &pwop));
    {
      void* d = pwop.get();
      void* pw_d = pw.get();
      void* in_d = tv.get();
      void* b_d = tb.get();
      void* out_d = ty.get();
      RET_CUDNN(cudnnBackendSetAttribute(d, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR,
                                         CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &pw_d));
      RET_CUDNN(cudnnBackendSetAttribute(d, CUDNN_ATTR_OPERATION_POINTWISE_XDESC,
                                         CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &in_d));
      RET_CUDNN(cudnnBackendSetAttribute(d, CUDNN_ATTR_OPERATION_POINTWISE_BDESC,
                                         CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b_d));
      RET_CUDNN(cudnnBackendSetAttribute(d, CUDNN_ATTR_OPERATION_POINTWISE_YDESC,
                                         CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &out_d));
      RET_CUDNN(cudnnBackendFinalize(d));
    }
    ops.push_back(pwop.get());
  }

  RET_ERR(bcreate(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, &opgraph));
  RET_CUDNN(cudnnBackendSetAttribute(opgraph.get(), CUDNN_ATTR_OPERATIONGRAPH_OPS,
                                     CUDNN_TYPE_BACKEND_DESCRIPTOR, int64_t(ops.size()),
                                     ops.data()));
  RET_CUDNN(cudnnBackendSetAttribute(opgraph.get(), CUDNN_ATTR_OPERATIONGRAPH_HANDLE,
                                     CUDNN_TYPE_HANDLE, 1, &handle));
  RET_CUDNN(cudnnBackendFinalize(opgraph.get()));

  for (BPtr* b : {&tx, &tw, &ty, &tb, &tv, &cd, &op, &pw, &pwop})
    if (*b) keep.push_back(std::move(*b));
  return {};
}

std::string CudnnConvTranspose::Impl::set_varpack(const float* x, const float* w, const float* b,
                                                  float* y, void* ws) {
  const void* want[5] = {x, w, b, y, ws};
  if (varpack && std::equal(want, want + 5, vp_ptrs)) return {};
  varpack.reset();
  BPtr vp;
  RET_ERR(bcreate(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &vp));
  int64_t uids[4] = {kUidX, kUidW, kUidY, kUidBias};
  void* ptrs[4] = {const_cast<float*>(x), const_cast<float*>(w), y, const_cast<float*>(b)};
  const int64_t n = cfg.bias == CudnnBias::kFused ? 4 : 3;
  RET_CUDNN(cudnnBackendSetAttribute(vp.get(), CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS,
                                     CUDNN_TYPE_INT64, n, uids));
  RET_CUDNN(cudnnBackendSetAttribute(vp.get(), CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS,
                                     CUDNN_TYPE_VOID_PTR, n, ptrs));
  RET_CUDNN(cudnnBackendSetAttribute(vp.get(), CUDNN_ATTR_VARIANT_PACK_WORKSPACE,
                                     CUDNN_TYPE_VOID_PTR, 1, &ws));
  RET_CUDNN(cudnnBackendFinalize(vp.get()));
  varpack = std::move(vp);
  std::copy(want, want + 5, vp_ptrs);
  return {};
}

std::string CudnnConvTranspose::Impl::search_graph(const float* x, const float* w,
                                                   const float* b, float* y, void* ws,
                                                   cudaStream_t stream) {
  RET_CUDNN(cudnnSetStream(handle, stream));
  RET_ERR(set_varpack(x, w, cfg.bias == CudnnBias::kFused ? b : nullptr, y, ws));
  EventPair ev;
  RET_ERR(ev.init());

  struct Timed {
    Graph g;
    CudnnConvtChoice c;
  };
  std::vector<Timed> ok;
  std::set<std::string> seen;
  std::string notes_log;
  int attempts = 0, filtered = 0, too_big = 0, unsupported = 0, uninspectable = 0;
  std::string first_skip, heur_log;
  const int max_ok = std::max(1, cfg.max_graph_configs);
  const int max_attempts = 3 * max_ok;

  for (cudnnBackendHeurMode_t mode : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_B,
                                      CUDNN_HEUR_MODE_FALLBACK}) {
    if (int(ok.size()) >= max_ok || attempts >= max_attempts) break;
    BPtr heur;
    RET_ERR(bcreate(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, &heur));
    void* og = opgraph.get();
    RET_CUDNN(cudnnBackendSetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH,
                                       CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &og));
    RET_CUDNN(cudnnBackendSetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_MODE,
                                       CUDNN_TYPE_HEUR_MODE, 1, &mode));
    // A mode that does not support this graph is skipped, not an error.
    cudnnStatus_t hst = cudnnBackendFinalize(heur.get());
    if (hst != CUDNN_STATUS_SUCCESS) {
      heur_log += std::string(heur_log.empty() ? "" : "; ") + "heuristics mode " +
                  std::to_string(int(mode)) + ": " + cudnn_error("finalize", hst, __LINE__);
      continue;
    }
    int64_t count = 0;
    hst = cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                   CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, nullptr);
    if (hst != CUDNN_STATUS_SUCCESS || count <= 0) {
      heur_log += std::string(heur_log.empty() ? "" : "; ") + "heuristics mode " +
                  std::to_string(int(mode)) + ": " +
                  (hst != CUDNN_STATUS_SUCCESS ? cudnn_error("results", hst, __LINE__)
                                               : std::string("no results"));
      continue;
    }
    std::vector<BPtr> cfgs(static_cast<size_t>(count));
    std::vector<void*> raw(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) {
      RET_ERR(bcreate(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, &cfgs[size_t(i)]));
      raw[size_t(i)] = cfgs[size_t(i)].get();
    }
    int64_t got = 0;
    RET_CUDNN(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                       CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &got, raw.data()));
    if (got <= 0)
      heur_log += std::string(heur_log.empty() ? "" : "; ") + "heuristics mode " +
                  std::to_string(int(mode)) + ": 0 of " + std::to_string(count) + " results";
    got = std::min(got, count);

    for (int64_t i = 0; i < got; ++i) {
      if (int(ok.size()) >= max_ok || attempts >= max_attempts) break;
      void* cfgd = raw[size_t(i)];
      EngineInfo info;
      std::string why = inspect_engine_cfg(cfgd, &info);
      if (!why.empty()) {
        ++uninspectable;
        if (first_skip.empty()) first_skip = why;
        continue;
      }
      if (!seen.insert(info.name).second) continue;
      const std::string& name = info.name;
      const std::string& math = info.math;
      const bool tc = info.tensor_cores, down = info.down_convert, reduced = info.reduced;
      const int64_t gidx = info.global_index;
      int64_t n = 0;
      // Accuracy filters: fp32 I/O must not be down-converted to 16 bits; FP32 mode
      // also refuses tensor cores (TF32), like PyTorch with allow_tf32 = False.
      if (down || reduced || (!cfg.tf32 && tc)) {
        ++filtered;
        continue;
      }

      ++attempts;
      BPtr plan;
      RET_ERR(bcreate(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &plan));
      RET_CUDNN(cudnnBackendSetAttribute(plan.get(), CUDNN_ATTR_EXECUTION_PLAN_HANDLE,
                                         CUDNN_TYPE_HANDLE, 1, &handle));
      RET_CUDNN(cudnnBackendSetAttribute(plan.get(), CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG,
                                         CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cfgd));
      cudnnStatus_t pst = cudnnBackendFinalize(plan.get());
      if (pst != CUDNN_STATUS_SUCCESS) {
        ++unsupported;
        if (first_skip.empty()) first_skip = name + ": " + cudnn_error("plan finalize", pst, __LINE__);
        continue;
      }
      int64_t wsb = 0;
      RET_CUDNN(cudnnBackendGetAttribute(plan.get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                                         CUDNN_TYPE_INT64, 1, &n, &wsb));
      if (wsb < 0 || size_t(wsb) > cfg.workspace_limit) {
        ++too_big;
        continue;
      }
      // One warm-up (and validity) run, then the median of three.
      pst = cudnnBackendExecute(handle, plan.get(), varpack.get());
      if (pst != CUDNN_STATUS_SUCCESS) {
        ++unsupported;
        if (first_skip.empty()) first_skip = name + ": " + cudnn_error("execute", pst, __LINE__);
        continue;
      }
      RET_CUDA(cudaStreamSynchronize(stream));
      float t[3];
      bool ran = true;
      for (float& ti : t) {
        RET_CUDA(cudaEventRecord(ev.a, stream));
        ran = ran && cudnnBackendExecute(handle, plan.get(), varpack.get()) == CUDNN_STATUS_SUCCESS;
        RET_CUDA(cudaEventRecord(ev.b, stream));
        RET_CUDA(cudaEventSynchronize(ev.b));
        RET_CUDA(cudaEventElapsedTime(&ti, ev.a, ev.b));
      }
      if (!ran) {
        ++unsupported;
        continue;
      }
      std::sort(t, t + 3);
      Timed td;
      td.c.name = name;
      td.c.id = int(gidx);
      td.c.tensor_cores = tc;
      td.c.math = math;
      td.c.workspace_bytes = size_t(wsb);
      td.c.search_us = 1000.0f * t[1];
      td.g.plan = std::move(plan);
      td.g.cfg = std::move(cfgs[size_t(i)]);  // keep the engine config alive with its plan
      ok.push_back(std::move(td));
    }
  }
  RET_CUDA(cudaGetLastError());
  if (ok.empty()) {
    return std::string("graph API: no engine configuration ran (") + to_string(cfg.bias) +
           ", " + to_string(cfg.layout) + "; built " + std::to_string(attempts) + ", " +
           std::to_string(unsupported) + " not supported, " + std::to_string(too_big) +
           " over the " + fmt_bytes(cfg.workspace_limit) + " workspace, " +
           std::to_string(filtered) + " filtered for precision, " +
           std::to_string(uninspectable) + " not inspectable" +
           (first_skip.empty() ? std::string() : "; first failure: " + first_skip) +
           (heur_log.empty() ? std::string() : "; " + heur_log) + ")";
  }
  std::stable_sort(ok.begin(), ok.end(),
                   [](const Timed& a, const Timed& b) { return a.c.search_us < b.c.search_us; });
  for (auto& t : ok) {
    choices.push_back(t.c);
    graph.push_back(std::move(t.g));
  }
  return {};
}

std::string CudnnConvTranspose::Impl::execute(const float* x, const float* w, const float* b,
                                              float* y, void* ws, cudaStream_t stream) {
  if (sel < 0 || sel >= int(choices.size())) return "no algorithm selected";
  if (cfg.bias != CudnnBias::kNone && !b) return "this configuration adds a bias: conv_bias is null";
  if (choices[size_t(sel)].workspace_bytes > 0 && !ws) return "workspace is null";
  RET_CUDNN(cudnnSetStream(handle, stream));
  const float one = 1.0f, zero = 0.0f;
  if (cfg.api == CudnnApi::kLegacy) {
    const Legacy& l = legacy[size_t(sel)];
    if (l.math != current_math) {
      RET_CUDNN(cudnnSetConvolutionMathType(conv, l.math));
      current_math = l.math;
    }
    RET_CUDNN(cudnnConvolutionBackwardData(handle, &one, wdesc, w, xdesc, x, conv, l.algo, ws,
                                           choices[size_t(sel)].workspace_bytes, &zero, ydesc,
                                           y));
  } else {
    const void* ptrs[5] = {x, w, b, y, ws};
    for (const void* ptr : ptrs)
      if (reinterpret_cast<uintptr_t>(ptr) % 16 != 0)
        return "graph API: buffers must be 16-byte aligned";
    RET_ERR(set_varpack(x, w, cfg.bias == CudnnBias::kFused ? b : nullptr, y, ws));
    RET_CUDNN(cudnnBackendExecute(handle, graph[size_t(sel)].plan.get(), varpack.get()));
  }
  if (cfg.bias == CudnnBias::kAddTensor)
    RET_CUDNN(cudnnAddTensor(handle, &one, bdesc, b, &one, ydesc, y));
  return {};
}

// ---------------------------------------------------------------------------------

CudnnConvTranspose::CudnnConvTranspose(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CudnnConvTranspose::~CudnnConvTranspose() = default;

std::unique_ptr<CudnnConvTranspose> CudnnConvTranspose::create(
    const ctfuse::ConvTranspose2dParams& p, const CudnnConvtConfig& config, const float* x,
    const float* w, const float* conv_bias, float* y, void* workspace, cudaStream_t stream,
    std::string* error) {
  auto impl = std::make_unique<Impl>();
  impl->p = p;
  impl->cfg = config;
  auto fail = [&](const std::string& why) -> std::unique_ptr<CudnnConvTranspose> {
    if (error)
      *error = std::string(to_string(config.layout)) + ", " + to_string(config.api) + " API, " +
               to_string(config.bias) + ": " + why;
    return nullptr;
  };
  std::string e = output_hw(p, &impl->Ho, &impl->Wo);
  if (!e.empty()) return fail(e);
  if (config.bias == CudnnBias::kFused && config.api != CudnnApi::kGraph)
    return fail("a fused bias needs the graph API");
  if (config.bias != CudnnBias::kNone && !conv_bias) return fail("conv_bias is null");
  if (!x || !w || !y) return fail("a buffer is null");
  if (config.workspace_limit > 0 && !workspace) return fail("workspace is null");

  cudnnStatus_t st = cudnnCreate(&impl->handle);
  if (st != CUDNN_STATUS_SUCCESS) return fail(cudnn_error("cudnnCreate", st, __LINE__));
  e = impl->setup_legacy_descriptors();
  if (!e.empty()) return fail(e);
  if (config.api == CudnnApi::kLegacy) {
    e = impl->search_legacy(x, w, y, workspace, stream);
  } else {
    e = impl->build_graph();
    if (e.empty()) e = impl->search_graph(x, w, conv_bias, y, workspace, stream);
  }
  if (!e.empty()) return fail(e);
  impl->sel = 0;
  return std::unique_ptr<CudnnConvTranspose>(new CudnnConvTranspose(std::move(impl)));
}

size_t CudnnConvTranspose::workspace_bytes() const {
  return impl_->choices[size_t(impl_->sel)].workspace_bytes;
}

bool CudnnConvTranspose::run(const float* x, const float* w, const float* conv_bias, float* y,
                             void* workspace, cudaStream_t stream) {
  impl_->last_error = impl_->execute(x, w, conv_bias, y, workspace, stream);
  return impl_->last_error.empty();
}

const std::string& CudnnConvTranspose::last_error() const { return impl_->last_error; }

std::string CudnnConvTranspose::description() const {
  const Impl& m = *impl_;
  const CudnnConvtChoice& c = m.choices[size_t(m.sel)];
  std::string s = std::string(to_string(m.cfg.layout)) + ", " + to_string(m.cfg.api) + " API, ";
  if (m.cfg.api == CudnnApi::kLegacy)
    s += "algo " + std::to_string(c.id) + " (" + c.name + "), " + c.math;
  else
    s += c.name + " (" + c.math + ")";
  s += ", workspace " + fmt_bytes(c.workspace_bytes);
  switch (m.cfg.bias) {
    case CudnnBias::kNone: s += ", no bias"; break;
    case CudnnBias::kAddTensor: s += ", bias via cudnnAddTensor (a second pass over y)"; break;
    case CudnnBias::kFused: s += ", bias fused (dgrad + pointwise ADD graph)"; break;
  }
  const char* env = std::getenv("NVIDIA_TF32_OVERRIDE");
  if (m.cfg.tf32 && env && std::strcmp(env, "0") == 0) s += " [NVIDIA_TF32_OVERRIDE=0: TF32 off]";
  return s;
}

const CudnnConvtConfig& CudnnConvTranspose::config() const { return impl_->cfg; }
int64_t CudnnConvTranspose::H_out() const { return impl_->Ho; }
int64_t CudnnConvTranspose::W_out() const { return impl_->Wo; }
const std::vector<CudnnConvtChoice>& CudnnConvTranspose::choices() const {
  return impl_->choices;
}
int CudnnConvTranspose::selected() const { return impl_->sel; }
bool CudnnConvTranspose::select(int index) {
  if (index < 0 || index >= int(impl_->choices.size())) return false;
  impl_->sel = index;
  return true;
}

// ---------------------------------------------------------------------------------
// The search over configurations.

namespace {

// NCHW -> NHWC of a [n, c, h, w] tensor (also turns the [C_in][C_out][kh][kw] weight
// into KRSC). Untimed, run once: simplicity over speed.
__global__ void nchw_to_nhwc_kernel(const float* __restrict__ src, float* __restrict__ dst,
                                    int64_t n, int64_t c, int64_t h, int64_t w) {
  const int64_t total = n * c * h * w;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    // i indexes dst in NHWC order.
    int64_t ci = i % c, t = i / c;
    int64_t wi = t % w;
    t /= w;
    int64_t hi = t % h, ni = t / h;
    dst[i] = src[((ni * c + ci) * h + hi) * w + wi];
  }
}

// Reads a candidate's output at NCHW index i (from `layout`), adds bias[c] when given.
__device__ __forceinline__ float read_out(const float* out, bool nhwc, const float* bias,
                                          int64_t i, int64_t c, int64_t h, int64_t w) {
  int64_t wi = i % w, t = i / w;
  int64_t hi = t % h;
  t /= h;
  int64_t ci = t % c, ni = t / c;
  float v = nhwc ? out[((ni * h + hi) * w + wi) * c + ci] : out[i];
  return bias ? v + bias[ci] : v;
}

__global__ void to_reference_kernel(const float* __restrict__ out, bool nhwc,
                                    const float* __restrict__ bias, float* __restrict__ ref,
                                    int64_t n, int64_t c, int64_t h, int64_t w) {
  const int64_t total = n * c * h * w;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x)
    ref[i] = read_out(out, nhwc, bias, i, c, h, w);
}

// acc[0] += sum (got - ref)^2, acc[1] += sum ref^2.
__global__ void diff_norms_kernel(const float* __restrict__ out, bool nhwc,
                                  const float* __restrict__ bias, const float* __restrict__ ref,
                                  int64_t n, int64_t c, int64_t h, int64_t w, double* acc) {
  const int64_t total = n * c * h * w;
  double d2 = 0, r2 = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    double g = read_out(out, nhwc, bias, i, c, h, w), r = ref[i];
    d2 += (g - r) * (g - r);
    r2 += r * r;
  }
  __shared__ double s_d[256], s_r[256];
  s_d[threadIdx.x] = d2;
  s_r[threadIdx.x] = r2;
  __syncthreads();
  for (int k = blockDim.x / 2; k > 0; k /= 2) {
    if (int(threadIdx.x) < k) {
      s_d[threadIdx.x] += s_d[threadIdx.x + k];
      s_r[threadIdx.x] += s_r[threadIdx.x + k];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    atomicAdd(&acc[0], s_d[0]);
    atomicAdd(&acc[1], s_r[0]);
  }
}

constexpr int kThreads = 256, kBlocks = 2048;

struct DeviceBuf {
  void* p = nullptr;
  ~DeviceBuf() {
    if (p) cudaFree(p);
  }
  std::string alloc(size_t bytes) {
    RET_CUDA(cudaMalloc(&p, std::max<size_t>(bytes, 256)));
    return {};
  }
  float* f() const { return static_cast<float*>(p); }
};

}  // namespace

std::vector<CudnnCandidate> search_cudnn_convt(const ctfuse::ConvTranspose2dParams& p, bool tf32,
                                               const float* x, const float* w,
                                               const float* conv_bias, float* y,
                                               cudaStream_t stream, L2Scrub& scrub,
                                               const CudnnSearchOptions& opt) {
  std::vector<CudnnConvtConfig> configs;
  for (CudnnApi api : {CudnnApi::kLegacy, CudnnApi::kGraph}) {
    if ((api == CudnnApi::kLegacy && !opt.try_legacy) || (api == CudnnApi::kGraph && !opt.try_graph))
      continue;
    for (CudnnLayout l : {CudnnLayout::kNCHW, CudnnLayout::kNHWC}) {
      if ((l == CudnnLayout::kNCHW && !opt.try_nchw) || (l == CudnnLayout::kNHWC && !opt.try_nhwc))
        continue;
      for (CudnnBias b : {CudnnBias::kNone, CudnnBias::kAddTensor, CudnnBias::kFused}) {
        if (b != CudnnBias::kNone && !conv_bias) continue;
        if (b == CudnnBias::kFused && api != CudnnApi::kGraph) continue;
        CudnnConvtConfig c;
        c.layout = l;
        c.api = api;
        c.bias = b;
        c.tf32 = tf32;
        c.max_graph_configs = opt.max_graph_configs;
        configs.push_back(c);
      }
    }
  }
  std::vector<CudnnCandidate> out(configs.size());
  for (size_t i = 0; i < configs.size(); ++i) out[i].config = configs[i];
  auto fail_all = [&](const std::string& why) {
    for (auto& c : out) c.error = why;
    return out;
  };

  int64_t Ho = 0, Wo = 0;
  std::string e = output_hw(p, &Ho, &Wo);
  if (!e.empty()) return fail_all(e);
  if (!x || !w || !y) return fail_all("a buffer is null");
  const int64_t x_elems = p.N * p.C_in * p.H_in * p.W_in;
  const int64_t w_elems = p.C_in * p.C_out * p.kernel_h * p.kernel_w;
  const int64_t y_elems = p.N * p.C_out * Ho * Wo;

  // NHWC copies (converted once, untimed), the reference output and the workspace.
  DeviceBuf xn, wn, yn, yref, acc, ws;
  auto setup = [&]() -> std::string {
    if (opt.try_nhwc) {
      RET_ERR(xn.alloc(size_t(x_elems) * sizeof(float)));
      RET_ERR(wn.alloc(size_t(w_elems) * sizeof(float)));
      RET_ERR(yn.alloc(size_t(y_elems) * sizeof(float)));
      nchw_to_nhwc_kernel<<<kBlocks, kThreads, 0, stream>>>(x, xn.f(), p.N, p.C_in, p.H_in, p.W_in);
      RET_CUDA(cudaGetLastError());
      nchw_to_nhwc_kernel<<<kBlocks, kThreads, 0, stream>>>(w, wn.f(), p.C_in, p.C_out,
                                                            p.kernel_h, p.kernel_w);
      RET_CUDA(cudaGetLastError());
    }
    RET_ERR(yref.alloc(size_t(y_elems) * sizeof(float)));
    RET_ERR(acc.alloc(2 * sizeof(double)));
    RET_CUDA(cudaStreamSynchronize(stream));
    // The workspace: the requested bound, capped by free memory (less 1 GiB of margin).
    size_t free_b = 0, total_b = 0;
    RET_CUDA(cudaMemGetInfo(&free_b, &total_b));
    size_t limit = opt.workspace_limit;
    const size_t margin = size_t(1) << 30;
    limit = std::min(limit, free_b > margin ? free_b - margin : free_b / 2);
    limit &= ~size_t(255);
    while (limit > 0 && cudaMalloc(&ws.p, limit) != cudaSuccess) {
      (void)cudaGetLastError();  // clear the allocation failure
      ws.p = nullptr;
      limit /= 2;
    }
    for (auto& c : out) c.config.workspace_limit = limit;
    return {};
  };
  e = setup();
  if (!e.empty()) return fail_all("setup: " + e);

  bool have_ref = false;
  for (auto& cand : out) {
    const CudnnConvtConfig& cfg = cand.config;
    const bool nhwc = cfg.layout == CudnnLayout::kNHWC;
    const float* xx = nhwc ? xn.f() : x;
    const float* ww = nhwc ? wn.f() : w;
    float* yy = nhwc ? yn.f() : y;
    const float* bb = cfg.bias == CudnnBias::kNone ? nullptr : conv_bias;
    if (opt.verbose)
      std::fprintf(stderr, "cudnn search: %s, %s API, %s ...\n", to_string(cfg.layout),
                   to_string(cfg.api), to_string(cfg.bias));
    std::string err;
    const auto t0 = std::chrono::steady_clock::now();
    auto conv = CudnnConvTranspose::create(p, cfg, xx, ww, bb, yy, ws.p, stream, &err);
    cand.search_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!conv) {
      cand.error = err;
      continue;
    }
    cand.num_choices = int(conv->choices().size());
    bool ran = true;
    auto fn = [&](cudaStream_t s) { ran = conv->run(xx, ww, bb, yy, ws.p, s) && ran; };
    // Re-time the search's fastest few with the L2 scrubbed; keep the best median.
    const int k = std::min(std::max(opt.retime_top, 1), cand.num_choices);
    if (k > 1) {
      int best = -1;
      double best_us = 0;
      for (int i = 0; i < k; ++i) {
        conv->select(i);
        ran = true;
        Timing t = time_cuda(fn, stream, scrub, opt.retime_warmup, std::max(opt.retime_runs, 1));
        if (ran && (best < 0 || t.median_us < best_us)) {
          best = i;
          best_us = t.median_us;
        }
      }
      conv->select(std::max(best, 0));
    }
    ran = true;
    cand.timing = time_cuda(fn, stream, scrub, opt.warmup, std::max(opt.runs, 1));
    if (!ran) {
      cand.error = "run failed: " + conv->last_error();
      continue;
    }
    cand.description = conv->description();
    cand.workspace_bytes = conv->workspace_bytes();

    // Consistency against the first successful candidate (its y + bias, NCHW).
    auto check = [&]() -> std::string {
      ran = true;
      fn(stream);  // a fresh result, not one that a scrub-free timing left behind
      if (!ran) return "run failed: " + conv->last_error();
      const float* add_bias = cfg.bias == CudnnBias::kNone ? conv_bias : nullptr;
      if (!have_ref) {
        to_reference_kernel<<<kBlocks, kThreads, 0, stream>>>(yy, nhwc, add_bias, yref.f(), p.N,
                                                              p.C_out, Ho, Wo);
        RET_CUDA(cudaGetLastError());
        RET_CUDA(cudaStreamSynchronize(stream));
        have_ref = true;
        cand.rel_diff = 0;
        return {};
      }
      RET_CUDA(cudaMemsetAsync(acc.p, 0, 2 * sizeof(double), stream));
      diff_norms_kernel<<<kBlocks, kThreads, 0, stream>>>(yy, nhwc, add_bias, yref.f(), p.N,
                                                          p.C_out, Ho, Wo,
                                                          static_cast<double*>(acc.p));
      RET_CUDA(cudaGetLastError());
      double h[2] = {0, 0};
      RET_CUDA(cudaMemcpyAsync(h, acc.p, sizeof(h), cudaMemcpyDeviceToHost, stream));
      RET_CUDA(cudaStreamSynchronize(stream));
      cand.rel_diff = h[1] > 0 ? std::sqrt(h[0] / h[1]) : std::sqrt(h[0]);
      return {};
    };
    e = check();
    if (!e.empty()) {
      cand.error = "consistency check: " + e;
      continue;
    }
    cand.ok = true;
    if (opt.verbose)
      std::fprintf(stderr, "  %.1f us  %s\n", cand.timing.median_us, cand.description.c_str());
  }
  // Leave the reference (conv + bias, NCHW) in the caller's y.
  if (have_ref) {
    cudaError_t ce = cudaMemcpyAsync(y, yref.p, size_t(y_elems) * sizeof(float),
                                     cudaMemcpyDeviceToDevice, stream);
    if (ce == cudaSuccess) ce = cudaStreamSynchronize(stream);
    if (ce != cudaSuccess)
      for (auto& c : out)
        if (c.ok) c.error = "restoring y failed: " + std::string(cudaGetErrorString(ce));
  }
  return out;
}

int fastest_cudnn_candidate(const std::vector<CudnnCandidate>& candidates, bool with_bias) {
  int best = -1;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const auto& c = candidates[i];
    if (!c.ok || (c.config.bias != CudnnBias::kNone) != with_bias) continue;
    if (best < 0 || c.timing.median_us < candidates[size_t(best)].timing.median_us) best = int(i);
  }
  return best;
}

std::string format_cudnn_candidates(const std::vector<CudnnCandidate>& candidates) {
  std::string s;
  char buf[192];
  for (const auto& c : candidates) {
    if (c.ok) {
      std::snprintf(buf, sizeof(buf),
                    "ok   %9.1f us (min %.1f, %d runs; %d choices searched in %.1f s; rel diff "
                    "%.1e)  ",
                    c.timing.median_us, c.timing.min_us, c.timing.runs, c.num_choices,
                    c.search_s, c.rel_diff);
      s += buf + c.description + "\n";
    } else {
      // create()'s errors already start with the configuration.
      const std::string cfg = std::string(to_string(c.config.layout)) + ", " +
                              to_string(c.config.api) + " API, " + to_string(c.config.bias);
      s += "FAIL " + (c.error.compare(0, cfg.size(), cfg) == 0 ? c.error : cfg + ": " + c.error) +
           "\n";
    }
  }
  return s;
}

}  // namespace bench
