// forward: the whole op. The fused path runs the mainloop with the min/sum epilogue
// (y never stored), then a tiny kernel that adds each column's per-tile partial sums in
// a fixed order, applies GELU and adds the bias. The unfused path (for comparison)
// stores y in the workspace and runs the post-op on it.
#include <algorithm>

#include "convt_dispatch.h"
#include "ctfuse/ctfuse.h"
#include "epilogues.cuh"
#include "postop_launch.h"
#include "problem.h"
#include "status_util.h"

namespace ctfuse {
namespace {

// The smallest MH of a math mode's fused entries bounds the number of partial rows.
constexpr int kMinMHTF32 = 4, kMinMHFP32 = 2;

// s[n, w] = sum over block rows of partial[n, row, w], in row order; then out. If the
// weights held NaN/Inf, s comes from the definition instead (nonfinite_fallback.cuh).
// Launched overlapped (launch.h): partial is read with plain loads, after the wait.
__global__ void finish_columns_kernel(const double* partial, int64_t N, int tiles_h, int64_t W, ColumnOutput col,
                                      ExactOperands exact, NonfiniteWeightFlags nonfinite) {
  ptx::wait_for_prior_grid();  // the GEMM's partial sums
  const bool from_definition = block_saw_nonfinite_weight(nonfinite);
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < N * W; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = e / W, w = e % W;
    double sum = 0.0;
    if (from_definition) {
      sum = exact_column_sum(exact, int(n), int(w));
    } else {
      const double* p = partial + n * tiles_h * W + w;
      for (int r = 0; r < tiles_h; ++r) sum += p[int64_t(r) * W];
    }
    finish_column(col, n, w, sum);
  }
}

// Block rows the fused path splits each column's sum into, for any table entry of the mode.
int64_t max_partial_tiles_h(const ConvTGeometry& g, MathMode math) {
  using T = GemmTable<EpilogueKind::kMinSum>;
  static_assert(T::TF32Wide::MH >= kMinMHTF32 && T::TF32Wgmma::MH >= kMinMHTF32 && T::TF32WgmmaTma::MH >= kMinMHTF32 &&
                    T::TF32Narrow::MH >= kMinMHTF32 && T::FP32Wide::MH >= kMinMHFP32 &&
                    T::FP32Wgmma::MH >= kMinMHFP32 && T::FP32WgmmaTma::MH >= kMinMHFP32 &&
                    T::FP32Narrow::MH >= kMinMHFP32,
                "kMinMH bounds the partial-sum workspace");
  const int min_mh = math == MathMode::kTF32 ? kMinMHTF32 : kMinMHFP32;
  return (g.QH + min_mh - 1) / min_mh;
}

size_t path_extra_bytes(const ConvTGeometry& g, MathMode math, Path path) {
  if (path == Path::kUnfused) return sizeof(float) * size_t(g.N) * g.C_out * g.H_out * g.W_out;
  return sizeof(double) * size_t(g.N) * size_t(max_partial_tiles_h(g, math)) * g.W_out;
}

Path resolve(Path p) { return p == Path::kAuto ? Path::kFused : p; }

Status check_options(const ForwardOptions& o) {
  if (o.math != MathMode::kTF32 && o.math != MathMode::kFP32) return invalid("forward: options.math is not a MathMode value");
  if (o.gelu != GeluMode::kErf && o.gelu != GeluMode::kTanh) return invalid("forward: options.gelu is not a GeluMode value");
  if (o.path != Path::kAuto && o.path != Path::kFused && o.path != Path::kUnfused)
    return invalid("forward: options.path is not a Path value");
  if (o.mainloop != MainloopKind::kAuto && o.mainloop != MainloopKind::kPortable)
    return invalid("forward: options.mainloop is not a MainloopKind value");
  return ok_status();
}

}  // namespace

Status forward_workspace_size(const ConvTranspose2dParams& params, int64_t bias_len, const ForwardOptions& options,
                              size_t* bytes) {
  if (!bytes) return invalid("forward_workspace_size: bytes is null");
  CTFUSE_RETURN_IF_ERROR(check_options(options));
  if (bias_len < 1) return invalid("forward_workspace_size: bias_len must be >= 1");
  ConvTGeometry g;
  CTFUSE_RETURN_IF_ERROR(make_geometry(params, &g));
  *bytes = workspace_layout(g, options.math, path_extra_bytes(g, options.math, resolve(options.path))).total;
  return ok_status();
}

Status forward(const ConvTranspose2dParams& params, const float* x, const float* weight, const float* conv_bias,
               const float* bias, int64_t bias_len, const ForwardOptions& options, float* out, float* s,
               void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  ConvTGeometry g;
  CTFUSE_RETURN_IF_ERROR(make_geometry(params, &g));
  CTFUSE_RETURN_IF_ERROR(check_options(options));
  if (!x) return invalid("forward: x is null");
  if (!weight) return invalid("forward: weight is null");
  if (!bias) return invalid("forward: bias is null");
  if (!out) return invalid("forward: out is null");
  if (bias_len < 1) return invalid("forward: bias_len must be >= 1");
  if (bias_len > (int64_t(1) << 40) / g.N / g.W_out) return invalid("forward: N * bias_len * W_out is too large");
  if (!is_aligned(x, 4)) return invalid("forward: x is not 4-byte aligned");
  if (!is_aligned(weight, 4)) return invalid("forward: weight is not 4-byte aligned");
  if (!is_aligned(conv_bias, 4)) return invalid("forward: conv_bias is not 4-byte aligned");
  if (!is_aligned(bias, 4)) return invalid("forward: bias is not 4-byte aligned");
  if (!is_aligned(out, 4)) return invalid("forward: out is not 4-byte aligned");
  if (!is_aligned(s, 4)) return invalid("forward: s is not 4-byte aligned");
  const Path path = resolve(options.path);
  const WorkspaceLayout l = workspace_layout(g, options.math, path_extra_bytes(g, options.math, path));
  CTFUSE_RETURN_IF_ERROR(check_workspace(workspace, workspace_bytes, l.total, "forward: workspace is null",
                                         "forward: workspace_bytes is smaller than forward_workspace_size",
                                         "forward: workspace is not 16-byte aligned"));
  CTFUSE_RETURN_IF_ERROR(check_device_context(
      stream, {{x, "forward: x is host memory the device cannot access"},
               {weight, "forward: weight is host memory the device cannot access"},
               {conv_bias, "forward: conv_bias is host memory the device cannot access"},
               {bias, "forward: bias is host memory the device cannot access"},
               {out, "forward: out is host memory the device cannot access"},
               {s, "forward: s is host memory the device cannot access"},
               {workspace, "forward: workspace is host memory the device cannot access"}}));
  char* ws = static_cast<char*>(workspace);
  const EpilogueKind epi = path == Path::kUnfused ? EpilogueKind::kStore : EpilogueKind::kMinSum;
  EngineChoice engine;
  CTFUSE_RETURN_IF_ERROR(select_engine(options.mainloop, options.math, epi, g, x, &engine));
  ConvTOperands op;
  NonfiniteWeightFlags nonfinite;
  CTFUSE_RETURN_IF_ERROR(pack_weights(g, x, weight, options.math, engine.engine, epi, ws, l, stream, &op, &nonfinite));
  const ExactOperands exact{g, x, weight, conv_bias};

  if (path == Path::kUnfused) {
    float* y = reinterpret_cast<float*>(ws + l.extra);
    CTFUSE_RETURN_IF_ERROR(launch_convt_store(exact, op, nonfinite, y, options.math, engine, stream));
    return queue_min_sum_gelu_bias(y, make_nchw(g.N, g.C_out, g.H_out, g.W_out), bias, bias_len, options.gelu, out, s,
                             stream);
  }
  double* partial = reinterpret_cast<double*>(ws + l.extra);
  int tiles_h = 0;
  CTFUSE_RETURN_IF_ERROR(with_gemm_config<EpilogueKind::kMinSum>(g, options.math, engine.engine, [&](auto c) {
    return launch_convt_gemm<MinSumEpilogue>(c, g, op, {conv_bias, partial}, engine, stream, &tiles_h);
  }));
  const int64_t cols = int64_t(g.N) * g.W_out;
  const unsigned blocks = unsigned(std::min<int64_t>((cols + 255) / 256, 65535));
  return launch_kernel(engine.overlapped_launch, finish_columns_kernel, blocks, 256, 0, stream,
                       static_cast<const double*>(partial), int64_t(g.N), tiles_h, int64_t(g.W_out),
                       ColumnOutput{bias, bias_len, options.gelu, out, s, g.W_out}, exact, nonfinite);
}

}  // namespace ctfuse
