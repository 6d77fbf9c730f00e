// The cuDNN baseline for ConvTranspose2d (groups = 1), at its best configuration.
//
// A transposed convolution is cuDNN's convolution backward data: x plays dy
// ([N, C_in, H_in, W_in], K = C_in), the PyTorch weight [C_in, C_out, kH, kW] is
// exactly cuDNN's filter [K, C, R, S], and y plays dx ([N, C_out, H_out, W_out]).
// Padding, stride and dilation go into the convolution descriptor; output_padding
// is expressed by the dx dimensions (H_out, W_out include it) and is checked with
// cudnnGetConvolution2dForwardOutputDim (dx, filter) == x's dims, which holds
// whenever output_padding < stride. PyTorch also allows stride <= output_padding <
// dilation; cuDNN cannot express that and create() reports it as an error.
//
// How cuDNN is called decides its speed (SPEC.md: 1202 us eager NCHW with bias,
// 759 us channels_last, 320 us NHWC without bias inside torch.compile), so this
// file tries every combination of
//   API:    the legacy API (cudnnFindConvolutionBackwardDataAlgorithmEx) or the
//           graph (backend) API (heuristics modes A, B and fallback; every engine
//           configuration that builds is timed);
//   layout: NCHW or NHWC (x, y and the filter all in that layout; the filter in
//           NHWC is KRSC = [C_in][kH][kW][C_out]);
//   bias:   none, a separate cudnnAddTensor pass over y, or (graph API only) a
//           pointwise ADD fused into the dgrad graph, when an engine supports it;
// and keeps, for each, the fastest algorithm or engine configuration.
//
// The layout conversion to NHWC is NOT counted in any time here: the caller (or
// search_cudnn_convt) converts x, the weight and the result once, untimed, as in
// torch.compile's 320 us figure, which excludes its 40 us layout copy.
//
// Nothing here exits or aborts: failures come back as strings. (bench::time_cuda,
// used by search_cudnn_convt, keeps its own exit-on-CUDA-error behaviour.)
// This header needs no cuDNN header; only cudnn_convt.cu does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <cuda_runtime_api.h>

#include "ctfuse/types.h"
#include "timing.h"

namespace bench {

enum class CudnnLayout : int { kNCHW = 0, kNHWC = 1 };
enum class CudnnApi : int { kLegacy = 0, kGraph = 1 };
enum class CudnnBias : int {
  kNone = 0,       // y = conv(x, w)
  kAddTensor = 1,  // y = conv(x, w), then cudnnAddTensor(conv_bias): a second pass over y
  kFused = 2,      // graph API only: dgrad -> pointwise ADD(conv_bias) in one cuDNN graph
};

const char* to_string(CudnnLayout layout);  // "NCHW", "NHWC"
const char* to_string(CudnnApi api);        // "legacy", "graph"
const char* to_string(CudnnBias bias);      // "no bias", "bias via cudnnAddTensor", "bias fused"

struct CudnnConvtConfig {
  CudnnLayout layout = CudnnLayout::kNHWC;
  CudnnApi api = CudnnApi::kLegacy;
  CudnnBias bias = CudnnBias::kNone;
  // true: TF32 tensor cores allowed (legacy: CUDNN_TENSOR_OP_MATH; graph: every engine
  // except those that down-convert inputs to fp16/bf16). false: FP32 only (legacy:
  // CUDNN_FMA_MATH; graph: engines with the TENSOR_CORE numerical note are skipped).
  bool tf32 = true;
  // Upper bound on the workspace of any algorithm considered; create() needs a
  // workspace buffer of at least this many bytes (null is allowed when it is 0).
  size_t workspace_limit = size_t(1) << 30;
  // Graph API: at most this many engine configurations are built and timed.
  int max_graph_configs = 32;
};

// One algorithm (legacy) or engine configuration (graph) that ran successfully
// during create(), in order of the time measured there (fastest first).
struct CudnnConvtChoice {
  std::string name;      // "CUDNN_CONVOLUTION_BWD_DATA_ALGO_1" or "engine 12 [k1=3,k2=0]"
  int id = -1;           // legacy algorithm id, or graph engine global index
  bool tensor_cores = false;  // legacy: math type is not FMA; graph: TENSOR_CORE note
  std::string math;      // legacy: "tensor-op math" / "FMA math"; graph: the numerical notes
  size_t workspace_bytes = 0;
  float search_us = 0;   // legacy: cudnnFind's time; graph: median of 3 own runs (L2 warm)
};

class CudnnConvTranspose {
 public:
  // Sets up every descriptor and searches the algorithms on the given device buffers
  // (all in config.layout; y is overwritten; conv_bias may be null only when
  // config.bias == kNone). `workspace` must hold config.workspace_limit bytes.
  // Buffers should be 16-byte aligned (cudaMalloc's are). Work is queued on
  // `stream`; the call synchronizes it. Returns null and sets *error on failure.
  static std::unique_ptr<CudnnConvTranspose> create(const ctfuse::ConvTranspose2dParams& p,
                                                    const CudnnConvtConfig& config,
                                                    const float* x, const float* w,
                                                    const float* conv_bias, float* y,
                                                    void* workspace, cudaStream_t stream,
                                                    std::string* error);
  ~CudnnConvTranspose();
  CudnnConvTranspose(const CudnnConvTranspose&) = delete;
  CudnnConvTranspose& operator=(const CudnnConvTranspose&) = delete;

  // Workspace the selected choice needs (<= config.workspace_limit).
  size_t workspace_bytes() const;
  // y = conv_transpose(x, w) (+ conv_bias), all in config().layout, queued on `stream`
  // (the cuDNN handle's stream is set to it). Asynchronous; returns false on an
  // error reported at launch, with the reason in last_error().
  bool run(const float* x, const float* w, const float* conv_bias, float* y, void* workspace,
           cudaStream_t stream);
  const std::string& last_error() const;
  // e.g. "NHWC, legacy API, algo 1 (CUDNN_CONVOLUTION_BWD_DATA_ALGO_1), tensor-op math,
  //       workspace 0 B, bias via cudnnAddTensor (a second pass over y)"
  std::string description() const;

  const CudnnConvtConfig& config() const;
  int64_t H_out() const;
  int64_t W_out() const;
  // Every choice that ran during create(), fastest first; selected() starts at 0.
  const std::vector<CudnnConvtChoice>& choices() const;
  int selected() const;
  bool select(int index);  // false if out of range

 private:
  struct Impl;
  explicit CudnnConvTranspose(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// cuDNN's runtime version (cudnnGetVersion(), e.g. 91400) and the one compiled against.
size_t cudnn_runtime_version();
size_t cudnn_compiled_version();

// ---------------------------------------------------------------------------------
// The bench's entry point: every configuration, each with its best algorithm.

struct CudnnSearchOptions {
  bool try_legacy = true;
  bool try_graph = true;
  bool try_nchw = true;
  bool try_nhwc = true;
  // Upper bound on the workspace; it is also capped by free device memory.
  size_t workspace_limit = size_t(2) << 30;
  int max_graph_configs = 32;
  // The fastest `retime_top` choices of each configuration (by the search's own
  // time) are re-timed with bench::time_cuda (L2 scrubbed, retime_warmup/retime_runs)
  // and the best median is kept; then it is timed with warmup/runs.
  int retime_top = 4;
  int retime_warmup = 2, retime_runs = 10;
  int warmup = 5, runs = 50;
  bool verbose = false;  // progress on stderr
};

struct CudnnCandidate {
  CudnnConvtConfig config;
  bool ok = false;
  std::string error;        // why it failed (ok == false)
  std::string description;  // CudnnConvTranspose::description() of the chosen algorithm
  size_t workspace_bytes = 0;
  int num_choices = 0;      // algorithms / engine configurations that ran
  double search_s = 0;      // wall time of CudnnConvTranspose::create (the algorithm search)
  // Median etc. of bench::time_cuda (L2 scrubbed before each run). Includes the bias
  // pass for kAddTensor; excludes any layout conversion.
  Timing timing;
  // Normwise relative difference ||y - y0|| / ||y0|| of this candidate's output
  // (bias added where the candidate adds none, read in NCHW order) against the first
  // successful candidate's (y0); 0 for that one, -1 if not computed. A consistency
  // check of the layouts and of the bias handling: expect up to ~3e-4 between TF32
  // algorithms, not an accuracy figure against float64.
  double rel_diff = -1;
};

// Tries {legacy, graph} x {NCHW, NHWC} x {no bias, cudnnAddTensor, fused (graph)}
// for the problem `p`. x, w, conv_bias and y are the caller's device buffers in
// PyTorch's NCHW layouts (conv_bias may be null: then only kNone is tried). The
// helper allocates (and frees) NHWC copies of x, w and y, a reference copy of y
// and the workspace, and converts x and w once, untimed. y is used as the NCHW
// output and on return holds conv(x, w) (+ conv_bias when given) in NCHW from the
// first successful candidate. Configurations cuDNN rejects come back with ok ==
// false and the reason. Each is timed on `stream` with `scrub`.
std::vector<CudnnCandidate> search_cudnn_convt(const ctfuse::ConvTranspose2dParams& p, bool tf32,
                                               const float* x, const float* w,
                                               const float* conv_bias, float* y,
                                               cudaStream_t stream, L2Scrub& scrub,
                                               const CudnnSearchOptions& options = {});

// Index of the fastest successful candidate (by median) among those that add the
// bias (with_bias) or those that do not; -1 if none.
int fastest_cudnn_candidate(const std::vector<CudnnCandidate>& candidates, bool with_bias);

// One line per candidate: "ok   312.4 us  NHWC, graph API, ..." or "FAIL ... reason".
std::string format_cudnn_candidates(const std::vector<CudnnCandidate>& candidates);

}  // namespace bench
