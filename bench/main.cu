// ctfuse bench: times every path of the op on one problem (the benchmark configuration
// unless flags say otherwise), validates each result before timing it, and prints a
// table of medians, rates, % of the floor measured in the same run and ratios.
//
//   ctfuse_bench [--N 16 --C_in 64 --C_out 128 --H 128 --W 128 --k 3 --stride 2
//                 --padding 1 --output_padding 1 --dilation 1 --bias 1] [--runs 50]
//                [--json FILE] [--only row1,row2,...]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <string>
#include <vector>

#include <cub/device/device_reduce.cuh>

#include "ctfuse/ctfuse.h"
#include "reference.h"
#include "timing.h"
#ifdef CTFUSE_BENCH_HAVE_CUDNN
#include "cudnn_convt.h"
#endif

namespace {

struct Options {
  ctfuse::ConvTranspose2dParams p;
  int64_t bias_len = 1;
  int runs = 50;
  std::string json;
  std::string only;  // comma-separated row names to run (empty: all)

  bool want(const std::string& name) const {
    if (only.empty()) return true;
    return ("," + only + ",").find("," + name + ",") != std::string::npos;
  }
};

struct Record {
  std::string name;
  bench::Timing t;
  double gbps = 0, tflops = 0, pct_of_floor = 0;
  std::string floor_name, note;
  std::string baseline;  // the row this one is compared with
  double speedup = 0;    // baseline median / this median
};

Options parse(int argc, char** argv) {
  Options o;
  auto& p = o.p;
  p.N = 16; p.C_in = 64; p.C_out = 128; p.H_in = 128; p.W_in = 128;
  p.kernel_h = p.kernel_w = 3;
  p.stride_h = p.stride_w = 2;
  p.pad_h = p.pad_w = 1;
  p.output_pad_h = p.output_pad_w = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> int64_t {
      if (i + 1 >= argc) { std::fprintf(stderr, "missing value after %s\n", a.c_str()); std::exit(2); }
      return std::atoll(argv[++i]);
    };
    if (a == "--N") p.N = next();
    else if (a == "--C_in") p.C_in = next();
    else if (a == "--C_out") p.C_out = next();
    else if (a == "--H") p.H_in = next();
    else if (a == "--W") p.W_in = next();
    else if (a == "--k") p.kernel_h = p.kernel_w = next();
    else if (a == "--stride") p.stride_h = p.stride_w = next();
    else if (a == "--padding") p.pad_h = p.pad_w = next();
    else if (a == "--output_padding") p.output_pad_h = p.output_pad_w = next();
    else if (a == "--dilation") p.dilation_h = p.dilation_w = next();
    else if (a == "--bias") o.bias_len = next();
    else if (a == "--runs") o.runs = static_cast<int>(next());
    else if (a == "--json") { if (i + 1 >= argc) std::exit(2); o.json = argv[++i]; }
    else if (a == "--only") { if (i + 1 >= argc) std::exit(2); o.only = argv[++i]; }
    else if (a == "--help" || a == "-h") {
      std::printf(
          "ctfuse_bench: times every path of the op (validated first) on one problem.\n"
          "  --N --C_in --C_out --H --W --k --stride --padding --output_padding --dilation --bias  problem\n"
          "  --v1            the benchmark's first version (N=128, C_in=3, C_out=16, 32x32, bias 16)\n"
          "  --runs R        timed runs per row (median reported), default 50\n"
          "  --only a,b      run only these rows (e.g. postop,fused_tf32)\n"
          "  --json FILE     write the records as JSON\n");
      std::exit(0);
    } else if (a == "--v1") {  // the benchmark's first version
      p.N = 128; p.C_in = 3; p.C_out = 16; p.H_in = p.W_in = 32; o.bias_len = 16;
    } else {
      std::fprintf(stderr, "unknown flag %s\n", a.c_str());
      std::exit(2);
    }
  }
  return o;
}

// Deterministic pseudo-random fill on the device (the bench never times zeros).
__global__ void fill_uniform(float* p, size_t n, uint32_t seed, float lo, float hi) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    uint32_t h = uint32_t(i) * 2654435761u ^ seed ^ uint32_t(i >> 32) * 40503u;
    h ^= h >> 15; h *= 2246822519u; h ^= h >> 13; h *= 3266489917u; h ^= h >> 16;
    p[i] = lo + (hi - lo) * (h >> 8) * (1.0f / 16777216.0f);
  }
}

void fill(float* p, size_t n, uint32_t seed, float lo, float hi) {
  fill_uniform<<<1024, 256>>>(p, n, seed, lo, hi);
  BENCH_CUDA_CHECK(cudaGetLastError());
}

std::string gpu_name() {
  cudaDeviceProp prop{};
  int dev = 0;
  BENCH_CUDA_CHECK(cudaGetDevice(&dev));
  BENCH_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  return prop.name;
}

std::string today() {
  char buf[32];
  const std::time_t t = std::time(nullptr);
  std::strftime(buf, sizeof buf, "%Y-%m-%d", std::gmtime(&t));
  return buf;
}

void check(const ctfuse::Status& st, const char* what) {
  if (!st.ok()) {
    std::fprintf(stderr, "%s failed: %s (%s)\n", what, st.message, ctfuse::status_code_name(st.code));
    std::exit(3);
  }
}

// Validates the post-op's s against the float64 reference on the y it read.
bool validate_postop(const float* y_dev, const ctfuse::Tensor4d& d, const float* s_dev) {
  const size_t ny = size_t(d.n() * d.c() * d.h() * d.w());
  std::vector<float> y(ny), s(size_t(d.n() * d.w()));
  BENCH_CUDA_CHECK(cudaMemcpy(y.data(), y_dev, ny * 4, cudaMemcpyDeviceToHost));
  BENCH_CUDA_CHECK(cudaMemcpy(s.data(), s_dev, s.size() * 4, cudaMemcpyDeviceToHost));
  const std::vector<double> ref = ctfuse::ref::min_sum(y.data(), d);
  const double err = ctfuse::ref::normwise_rel_error(s.data(), ref.data(), ref.size());
  std::printf("validate postop: s normwise relative error %.3g (bound 1e-6)\n", err);
  return err <= 1e-6;
}

// Multiply-adds of the transposed convolution that land inside y, times 2.
double conv_flops(const ctfuse::ConvTranspose2dParams& p) {
  int64_t H = 0, W = 0;
  ctfuse::conv_transpose2d_output_hw(p, &H, &W);
  auto taps_1d = [](int64_t in, int64_t out, int64_t k, int64_t s, int64_t pad, int64_t d) {
    int64_t count = 0;
    for (int64_t kk = 0; kk < k; ++kk)
      for (int64_t i = 0; i < in; ++i) {
        const int64_t o = i * s - pad + kk * d;
        count += o >= 0 && o < out;
      }
    return double(count);
  };
  return 2.0 * double(p.N) * p.C_in * p.C_out * taps_1d(p.H_in, H, p.kernel_h, p.stride_h, p.pad_h, p.dilation_h) *
         taps_1d(p.W_in, W, p.kernel_w, p.stride_w, p.pad_w, p.dilation_w);
}

// The problem restricted to image 0, with its inputs copied to the host.
struct Image0 {
  ctfuse::ConvTranspose2dParams p;
  std::vector<float> x, w, cb;
};
Image0 image0(const ctfuse::ConvTranspose2dParams& full, const float* x, const float* w, const float* cb) {
  Image0 i;
  i.p = full;
  i.p.N = 1;
  i.x.resize(size_t(full.C_in * full.H_in * full.W_in));
  i.w.resize(size_t(full.C_in * full.C_out * full.kernel_h * full.kernel_w));
  i.cb.resize(size_t(full.C_out));
  BENCH_CUDA_CHECK(cudaMemcpy(i.x.data(), x, i.x.size() * 4, cudaMemcpyDeviceToHost));
  BENCH_CUDA_CHECK(cudaMemcpy(i.w.data(), w, i.w.size() * 4, cudaMemcpyDeviceToHost));
  BENCH_CUDA_CHECK(cudaMemcpy(i.cb.data(), cb, i.cb.size() * 4, cudaMemcpyDeviceToHost));
  return i;
}

bool validate_conv_image0(const ctfuse::ConvTranspose2dParams& p, const float* x, const float* w, const float* cb,
                          const float* y_dev, double tol) {
  const Image0 i = image0(p, x, w, cb);
  const std::vector<double> ref = ctfuse::ref::conv_transpose2d(i.p, i.x.data(), i.w.data(), i.cb.data());
  std::vector<float> y(ref.size());
  BENCH_CUDA_CHECK(cudaMemcpy(y.data(), y_dev, y.size() * 4, cudaMemcpyDeviceToHost));
  const double err = ctfuse::ref::normwise_rel_error(y.data(), ref.data(), ref.size());
  std::printf("validate conv (image 0): y normwise relative error %.3g (bound %.0e)\n", err, tol);
  return err <= tol;
}

bool validate_forward_image0(const ctfuse::ConvTranspose2dParams& p, const float* x, const float* w, const float* cb,
                             const float* s_dev, double tol, const char* name) {
  const Image0 i = image0(p, x, w, cb);
  int64_t H = 0, W = 0;
  ctfuse::conv_transpose2d_output_hw(p, &H, &W);
  const std::vector<double> y = ctfuse::ref::conv_transpose2d(i.p, i.x.data(), i.w.data(), i.cb.data());
  const std::vector<double> ref = ctfuse::ref::min_sum(y.data(), 1, p.C_out, H, W);
  std::vector<float> s(ref.size());
  BENCH_CUDA_CHECK(cudaMemcpy(s.data(), s_dev, s.size() * 4, cudaMemcpyDeviceToHost));
  const double err = ctfuse::ref::normwise_rel_error(s.data(), ref.data(), ref.size());
  std::printf("validate %s (image 0): s normwise relative error %.3g (bound %.0e)\n", name, err, tol);
  return err <= tol;
}

void write_json(const Options& o, const std::vector<Record>& recs, const std::string& gpu) {
  FILE* f = std::fopen(o.json.c_str(), "w");
  if (!f) { std::fprintf(stderr, "cannot write %s\n", o.json.c_str()); std::exit(2); }
  const auto& p = o.p;
  std::fprintf(f, "[\n");
  for (size_t i = 0; i < recs.size(); ++i) {
    const Record& r = recs[i];
    std::fprintf(f,
                 "  {\"name\": \"%s\", \"config\": {\"N\": %lld, \"C_in\": %lld, \"C_out\": %lld, "
                 "\"H_in\": %lld, \"W_in\": %lld, \"k\": %lld, \"stride\": %lld, \"padding\": %lld, "
                 "\"output_padding\": %lld, \"dilation\": %lld, \"bias\": %lld}, "
                 "\"median_us\": %.2f, \"min_us\": %.2f, \"max_us\": %.2f, \"runs\": %d, "
                 "\"gbps\": %.1f, \"tflops\": %.2f, \"pct_of_floor\": %.1f, \"floor\": \"%s\", "
                 "\"baseline\": \"%s\", \"speedup\": %.3f, \"note\": \"%s\", \"gpu\": \"%s\", \"date\": \"%s\"}%s\n",
                 r.name.c_str(), (long long)p.N, (long long)p.C_in, (long long)p.C_out,
                 (long long)p.H_in, (long long)p.W_in, (long long)p.kernel_h, (long long)p.stride_h,
                 (long long)p.pad_h, (long long)p.output_pad_h, (long long)p.dilation_h,
                 (long long)o.bias_len, r.t.median_us, r.t.min_us, r.t.max_us, r.t.runs, r.gbps,
                 r.tflops, r.pct_of_floor, r.floor_name.c_str(), r.baseline.c_str(), r.speedup, r.note.c_str(), gpu.c_str(),
                 today().c_str(), i + 1 < recs.size() ? "," : "");
  }
  std::fprintf(f, "]\n");
  std::fclose(f);
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  int ndev = 0;
  if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
    std::fprintf(stderr, "ctfuse_bench: no CUDA device found; the bench needs a GPU.\n");
    return 1;
  }
  const auto& p = o.p;
  int64_t H = 0, W = 0;
  check(ctfuse::conv_transpose2d_output_hw(p, &H, &W), "conv_transpose2d_output_hw");
  const std::string gpu = gpu_name();
  std::printf("ctfuse bench on %s, %s\n", gpu.c_str(), today().c_str());
  std::printf("problem: N=%lld C_in=%lld C_out=%lld H_in=%lld W_in=%lld k=%lldx%lld stride=%lld padding=%lld "
              "output_padding=%lld dilation=%lld bias_len=%lld -> y [%lld, %lld, %lld, %lld]\n",
              (long long)p.N, (long long)p.C_in, (long long)p.C_out, (long long)p.H_in, (long long)p.W_in,
              (long long)p.kernel_h, (long long)p.kernel_w, (long long)p.stride_h, (long long)p.pad_h,
              (long long)p.output_pad_h, (long long)p.dilation_h, (long long)o.bias_len, (long long)p.N,
              (long long)p.C_out, (long long)H, (long long)W);

  const size_t nx = size_t(p.N * p.C_in * p.H_in * p.W_in);
  const size_t nw = size_t(p.C_in * p.C_out * p.kernel_h * p.kernel_w);
  const size_t ny = size_t(p.N * p.C_out * H * W);
  const size_t ns = size_t(p.N * W), nout = size_t(p.N * o.bias_len * W);
  float *x, *w, *cb, *bias, *y, *out, *s;
  BENCH_CUDA_CHECK(cudaMalloc(&x, nx * 4));
  BENCH_CUDA_CHECK(cudaMalloc(&w, nw * 4));
  BENCH_CUDA_CHECK(cudaMalloc(&cb, p.C_out * 4));
  BENCH_CUDA_CHECK(cudaMalloc(&bias, o.bias_len * 4));
  BENCH_CUDA_CHECK(cudaMalloc(&y, ny * 4));
  BENCH_CUDA_CHECK(cudaMalloc(&out, nout * 4));
  BENCH_CUDA_CHECK(cudaMalloc(&s, ns * 4));
  // The benchmark's data: x ~ U[0,1), PyTorch's default init U(-1/sqrt(fan), 1/sqrt(fan)).
  const float bound = 1.0f / std::sqrt(float(p.C_out * p.kernel_h * p.kernel_w));
  fill(x, nx, 1, 0.f, 1.f);
  fill(w, nw, 2, -bound, bound);
  fill(cb, p.C_out, 3, -bound, bound);
  fill(bias, o.bias_len, 4, -1.f, 1.f);
  fill(y, ny, 5, -1.f, 1.f);  // replaced by a real convolution output where one is available
  BENCH_CUDA_CHECK(cudaDeviceSynchronize());

  cudaStream_t stream;
  BENCH_CUDA_CHECK(cudaStreamCreate(&stream));
  bench::L2Scrub scrub;
  std::vector<Record> recs;
  const ctfuse::Tensor4d y_desc = ctfuse::make_nchw(p.N, p.C_out, H, W);
  const double y_bytes = double(ny) * 4;
  const double flops = conv_flops(p);
  const double kGemmRate = 214e12, kPeakRate = 318.6e12;  // SPEC.md: CUTLASS mma.sync TF32, mma.sync peak
  std::printf("convolution: %.2f GFLOP (taps that land inside y only)\n", flops * 1e-9);
  // "<what> (<mainloop>)<extra>; x% of 214 TFLOP/s mma.sync GEMM, y% of 318.6 <peak_name>"
  auto rate_note = [&](const char* what, const char* mainloop, const char* extra, const char* peak_name,
                       double tflops) {
    char note[256];
    std::snprintf(note, sizeof note, "%s (%s)%s; %.1f%% of 214 TFLOP/s mma.sync GEMM, %.1f%% of 318.6 %s", what,
                  mainloop, extra, 100.0 * tflops * 1e12 / kGemmRate, 100.0 * tflops * 1e12 / kPeakRate, peak_name);
    return std::string(note);
  };
  auto time_row = [&](const std::string& name, auto&& fn) {
    Record r{name};
    r.t = bench::time_cuda(fn, stream, scrub, 5, o.runs);
    if (flops > 0) r.tflops = flops / r.t.median_us * 1e-6;
    return r;
  };

  // read_roofline: one plain read pass over y (cub::DeviceReduce::Sum).
  {
    size_t temp_bytes = 0;
    float* sum = nullptr;
    BENCH_CUDA_CHECK(cudaMalloc(&sum, sizeof(float)));
    BENCH_CUDA_CHECK(cub::DeviceReduce::Sum(nullptr, temp_bytes, y, sum, ny, stream));
    void* temp = nullptr;
    BENCH_CUDA_CHECK(cudaMalloc(&temp, temp_bytes));
    Record r = time_row("read_roofline", [&](cudaStream_t st) {
      BENCH_CUDA_CHECK(cub::DeviceReduce::Sum(temp, temp_bytes, y, sum, ny, st));
    });
    r.tflops = 0;
    r.gbps = y_bytes / r.t.median_us * 1e-3;
    r.note = "cub::DeviceReduce::Sum over y";
    recs.push_back(r);
    cudaFree(temp);
    cudaFree(sum);
  }
  const double read_floor_us = recs.back().t.median_us;
  {
    Record r = time_row("write_roofline", [&](cudaStream_t st) {
      BENCH_CUDA_CHECK(cudaMemsetAsync(y, 0, ny * 4, st));
    });
    r.tflops = 0;
    r.gbps = y_bytes / r.t.median_us * 1e-3;
    r.note = "cudaMemsetAsync of y";
    recs.push_back(r);
  }
  const double write_floor_us = recs.back().t.median_us;

  // Our convolution (y NCHW), validated on image 0 first: TF32 on the device's fastest
  // mainloop and on the portable mma.sync one (what an RTX 4090 runs), in both math modes.
  struct ConvRow { const char* name; ctfuse::MathMode math; ctfuse::MainloopKind mainloop; const char* note; };
  const ConvRow conv_rows[] = {
      {"convt_tf32", ctfuse::MathMode::kTF32, ctfuse::MainloopKind::kAuto, "ctfuse conv_transpose2d, TF32"},
      {"convt_tf32_mma_sync", ctfuse::MathMode::kTF32, ctfuse::MainloopKind::kPortable,
       "ctfuse conv_transpose2d, TF32, portable mainloop"},
      {"convt_fp32", ctfuse::MathMode::kFP32, ctfuse::MainloopKind::kAuto, "ctfuse conv_transpose2d, 3xTF32 (FP32-accurate)"},
      {"convt_fp32_mma_sync", ctfuse::MathMode::kFP32, ctfuse::MainloopKind::kPortable,
       "ctfuse conv_transpose2d, 3xTF32, portable mainloop"},
  };
  for (const ConvRow& cr : conv_rows) {
    if (!o.want(cr.name)) continue;
    const bool tf32 = cr.math == ctfuse::MathMode::kTF32;
    size_t ws_bytes = 0;
    check(ctfuse::conv_transpose2d_workspace_size(p, cr.math, &ws_bytes), "conv_transpose2d_workspace_size");
    const char* mainloop = "";
    check(ctfuse::mainloop_in_use(p, cr.math, cr.mainloop, &mainloop), "mainloop_in_use");
    void* ws = nullptr;
    BENCH_CUDA_CHECK(cudaMalloc(&ws, ws_bytes));
    auto run = [&](cudaStream_t st) {
      check(ctfuse::conv_transpose2d(p, x, w, cb, y, cr.math, ws, ws_bytes, st, cr.mainloop), "conv_transpose2d");
    };
    run(stream);
    BENCH_CUDA_CHECK(cudaStreamSynchronize(stream));
    if (!validate_conv_image0(p, x, w, cb, y, tf32 ? 2e-3 : 2e-6)) return 4;
    Record r = time_row(cr.name, run);
    r.gbps = y_bytes / r.t.median_us * 1e-3;
    r.pct_of_floor = 100.0 * write_floor_us / r.t.median_us;
    r.floor_name = "write_roofline";
    r.note = rate_note(cr.note, mainloop, ", writes y NCHW", "peak", r.tflops);
    recs.push_back(r);
    cudaFree(ws);
  }

#ifdef CTFUSE_BENCH_HAVE_CUDNN
  // cuDNN at its best: every layout x API x bias handling it offers, each with its
  // fastest algorithm (cudnnFind / engine search), TF32 and FP32. NHWC inputs are
  // converted once, untimed (as inside torch.compile).
  std::string cudnn_best_layout;
  double cudnn_best_us = 0;
  for (bool tf32 : {true, false}) {
    if (!o.want(tf32 ? "cudnn_convt_tf32" : "cudnn_convt_fp32")) continue;
    bench::CudnnSearchOptions so;
    so.runs = o.runs;
    so.max_graph_configs = 12;
    so.retime_top = 3;
    const std::vector<bench::CudnnCandidate> c = bench::search_cudnn_convt(p, tf32, x, w, cb, y, stream, scrub, so);
    std::printf("cuDNN %zu.%zu.%zu, %s candidates (median us):\n%s", bench::cudnn_runtime_version() / 10000,
                bench::cudnn_runtime_version() / 100 % 100, bench::cudnn_runtime_version() % 100,
                tf32 ? "TF32" : "FP32", bench::format_cudnn_candidates(c).c_str());
    int best = -1, nchw_eager = -1;
    for (size_t i = 0; i < c.size(); ++i) {
      if (!c[i].ok) continue;
      if (best < 0 || c[i].timing.median_us < c[size_t(best)].timing.median_us) best = int(i);
      if (c[i].config.layout == bench::CudnnLayout::kNCHW && c[i].config.api == bench::CudnnApi::kLegacy &&
          c[i].config.bias == bench::CudnnBias::kAddTensor)
        nchw_eager = int(i);
    }
    auto record = [&](const char* name, int idx, const std::string& what) {
      Record r{name};
      r.t = c[size_t(idx)].timing;
      r.tflops = flops / r.t.median_us * 1e-6;
      r.pct_of_floor = 100.0 * write_floor_us / r.t.median_us;
      r.floor_name = "write_roofline";
      r.note = what + c[size_t(idx)].description;
      recs.push_back(r);
    };
    if (best >= 0) {
      record(tf32 ? "cudnn_convt_tf32" : "cudnn_convt_fp32", best, "fastest of all cuDNN configurations: ");
      if (tf32) {
        cudnn_best_us = c[size_t(best)].timing.median_us;
        cudnn_best_layout = bench::to_string(c[size_t(best)].config.layout);
      }
    }
    if (tf32 && nchw_eager >= 0) record("cudnn_convt_tf32_nchw", nchw_eager, "the PyTorch-eager way (NCHW, bias added): ");
  }
  // y is left holding cuDNN's NCHW conv + bias: the post-op below runs on it.
#endif

  // postop: our kernel on y (y now holds a real convolution output), read as NCHW and,
  // for cuDNN's fastest layout, as channels-last.
  auto postop_row = [&](const char* name, const ctfuse::Tensor4d& desc, const char* note) {
    auto run = [&](cudaStream_t st) {
      check(ctfuse::min_sum_gelu_bias(y, desc, bias, o.bias_len, ctfuse::GeluMode::kErf, out, s, st),
            "min_sum_gelu_bias");
    };
    run(stream);
    BENCH_CUDA_CHECK(cudaStreamSynchronize(stream));
    if (!validate_postop(y, desc, s)) {
      std::fprintf(stderr, "%s failed validation; not timed\n", name);
      std::exit(4);
    }
    Record r = time_row(name, run);
    r.tflops = 0;
    r.gbps = y_bytes / r.t.median_us * 1e-3;
    r.pct_of_floor = 100.0 * read_floor_us / r.t.median_us;
    r.floor_name = "read_roofline";
    r.note = note;
    recs.push_back(r);
  };
  if (o.want("postop")) postop_row("postop", y_desc, "min over C, sum over H, GELU(erf), + bias on NCHW y");
  if (o.want("postop_nhwc"))
    postop_row("postop_nhwc", ctfuse::make_nhwc(p.N, p.C_out, H, W), "the post-op on a channels-last y");
  auto median_of = [&](const std::string& name) {
    for (const Record& r : recs)
      if (r.name == name) return r.t.median_us;
    return 0.0;
  };
  const double postop_us = median_of("postop");
  const double postop_nhwc_us = median_of("postop_nhwc");
#ifdef CTFUSE_BENCH_HAVE_CUDNN
  const double post = cudnn_best_layout == "NHWC" ? postop_nhwc_us : postop_us;
  if (cudnn_best_us > 0 && post > 0) {
    Record r{"cudnn_convt_tf32+postop"};
    r.t.median_us = cudnn_best_us + post;
    r.t.runs = o.runs;
    r.tflops = flops / r.t.median_us * 1e-6;
    r.note = "sum of the medians of cudnn_convt_tf32 (" + cudnn_best_layout + ") and our post-op on that layout";
    recs.push_back(r);
  }
#endif

  // The whole op: fused (y never stored) in both math modes, and our unfused path.
  struct FwdRow { const char* name; ctfuse::MathMode math; ctfuse::Path path; ctfuse::MainloopKind mainloop; const char* note; };
  const FwdRow fwd_rows[] = {
      {"fused_tf32", ctfuse::MathMode::kTF32, ctfuse::Path::kFused, ctfuse::MainloopKind::kAuto,
       "ctfuse forward, fused, TF32"},
      {"fused_tf32_mma_sync", ctfuse::MathMode::kTF32, ctfuse::Path::kFused, ctfuse::MainloopKind::kPortable,
       "ctfuse forward, fused, TF32, portable mainloop"},
      {"fused_fp32", ctfuse::MathMode::kFP32, ctfuse::Path::kFused, ctfuse::MainloopKind::kAuto,
       "ctfuse forward, fused, 3xTF32"},
      {"fused_fp32_mma_sync", ctfuse::MathMode::kFP32, ctfuse::Path::kFused, ctfuse::MainloopKind::kPortable,
       "ctfuse forward, fused, 3xTF32, portable mainloop"},
      {"unfused_tf32", ctfuse::MathMode::kTF32, ctfuse::Path::kUnfused, ctfuse::MainloopKind::kAuto,
       "ctfuse conv (TF32) + ctfuse postop"},
  };
  for (const FwdRow& fr : fwd_rows) {
    if (!o.want(fr.name)) continue;
    const ctfuse::ForwardOptions fo{fr.math, ctfuse::GeluMode::kErf, fr.path, fr.mainloop};
    const char* mainloop = "";
    check(ctfuse::mainloop_in_use(p, fr.math, fr.mainloop, &mainloop), "mainloop_in_use");
    size_t ws_bytes = 0;
    check(ctfuse::forward_workspace_size(p, o.bias_len, fo, &ws_bytes), "forward_workspace_size");
    void* ws = nullptr;
    if (cudaMalloc(&ws, ws_bytes) != cudaSuccess) {
      cudaGetLastError();
      std::printf("%s: skipped, its %.1f GB workspace does not fit\n", fr.name, ws_bytes * 1e-9);
      continue;
    }
    auto run = [&](cudaStream_t st) {
      check(ctfuse::forward(p, x, w, cb, bias, o.bias_len, fo, out, s, ws, ws_bytes, st), "forward");
    };
    run(stream);
    BENCH_CUDA_CHECK(cudaStreamSynchronize(stream));
    if (!validate_forward_image0(p, x, w, cb, s, fr.math == ctfuse::MathMode::kTF32 ? 1e-4 : 1e-6, fr.name))
      return 4;
    Record r = time_row(fr.name, run);
    r.pct_of_floor = 100.0 * (flops / kGemmRate * 1e6) / r.t.median_us;
    r.floor_name = "38.65 GFLOP at CUTLASS's 214 TFLOP/s (SPEC.md)";
    r.note = rate_note(fr.note, mainloop, "", "mma.sync peak", r.tflops);
    recs.push_back(r);
    cudaFree(ws);
  }
  (void)bound;

  // Ratios against the baseline of each kind of row, from this same run.
  std::map<std::string, double> median;
  for (const Record& r : recs) median[r.name] = r.t.median_us;
  auto baseline_of = [](const std::string& name) -> std::string {
    if (name.rfind("fused", 0) == 0 || name.rfind("unfused", 0) == 0) return "cudnn_convt_tf32+postop";
    if (name.rfind("convt_", 0) == 0 || name == "cudnn_convt_tf32_nchw") return "cudnn_convt_tf32";
    if (name.rfind("postop", 0) == 0) return "read_roofline";
    return "";
  };
  for (Record& r : recs) {
    const std::string b = baseline_of(r.name);
    if (!b.empty() && median.count(b)) {
      r.baseline = b;
      r.speedup = median[b] / r.t.median_us;
    }
  }
  std::printf("\n%-24s %10s %10s %10s %8s %8s %8s  %-40s %s\n", "name", "median_us", "min_us", "max_us", "GB/s",
              "TFLOP/s", "speedup", "vs", "% of floor");
  for (const Record& r : recs) {
    std::printf("%-24s %10.1f %10.1f %10.1f %8.0f %8.1f %8s  %-40s ", r.name.c_str(), r.t.median_us, r.t.min_us,
                r.t.max_us, r.gbps, r.tflops, r.speedup > 0 ? (std::to_string(r.speedup).substr(0, 5) + "x").c_str() : "",
                r.baseline.c_str());
    if (!r.floor_name.empty()) std::printf("%.1f%% of %s", r.pct_of_floor, r.floor_name.c_str());
    std::printf("\n");
  }
  for (const Record& r : recs)
    if (!r.note.empty()) std::printf("  %-24s %s\n", r.name.c_str(), r.note.c_str());
  if (!o.json.empty()) write_json(o, recs, gpu);
  return 0;
}
