// GPU tests of ctfuse::forward (fused and unfused paths) against the float64 reference,
// with weights scaled so the pre-GELU sums s lie in about [-2, 2] (GELU active): s and
// out checked normwise and elementwise (the a-priori bound of SPEC.md), outputs
// poisoned, both bias forms and GELU modes, determinism, and the PyTorch golden files.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "conv_cases.h"
#include "ctfuse/ctfuse.h"
#include "golden.h"
#include "gpu_util.h"
#include "reference.h"

namespace ctfuse {
namespace {

using testing::DeviceBuffer;

struct ForwardResult {
  Status st;
  std::vector<float> s, out;
};

// The normwise bound that s's bound implies for out = gelu(s) + bias: gelu is 1.13-Lipschitz
// and each s feeds bias_len outputs, so ||out - ref|| <= 1.13 sqrt(bias_len) tol ||s_ref||,
// plus the fp32 rounding of out itself. (out's *relative* error can exceed s's: where
// gelu(s) is small, e.g. s = -3, its relative error is about 9 times that of s.)
void expect_out_within_s_bound(const std::vector<float>& out, const std::vector<double>& out_ref,
                               const std::vector<double>& s_ref, int64_t bias_len, double tol) {
  double s2 = 0, o2 = 0, d2 = 0;
  for (double v : s_ref)
    if (std::isfinite(v)) s2 += v * v;
  for (size_t i = 0; i < out_ref.size(); ++i) {
    if (!std::isfinite(out_ref[i])) continue;
    o2 += out_ref[i] * out_ref[i];
    d2 += (out[i] - out_ref[i]) * (out[i] - out_ref[i]);
  }
  EXPECT_LE(std::sqrt(d2), 1.13 * std::sqrt(double(bias_len)) * tol * std::sqrt(s2) + std::ldexp(std::sqrt(o2), -22))
      << "out normwise error " << std::sqrt(d2 / o2);
}

// x_offset > 0 places x that many floats into its buffer (an x that is 4- but not
// 16-byte aligned when x_offset = 1).
ForwardResult run_forward(const ConvTranspose2dParams& p, const testing::ProblemData& d, const ForwardOptions& o,
                          bool with_conv_bias = true, size_t x_offset = 0) {
  int64_t H = 0, W = 0;
  conv_transpose2d_output_hw(p, &H, &W);
  ForwardResult r;
  size_t ws_bytes = 0;
  const int64_t bias_len = int64_t(d.bias.size());
  r.st = forward_workspace_size(p, bias_len, o, &ws_bytes);
  if (!r.st.ok()) return r;
  std::vector<float> x_padded(x_offset, 0.f);
  x_padded.insert(x_padded.end(), d.x.begin(), d.x.end());
  DeviceBuffer<float> dx(x_padded), dw(d.weight), dcb(d.conv_bias), db(d.bias);
  DeviceBuffer<float> out(size_t(p.N * bias_len * W)), s(size_t(p.N * W));
  DeviceBuffer<char> ws(ws_bytes);
  out.fill(testing::poison_value());
  s.fill(testing::poison_value());
  r.st = forward(p, dx.get() + x_offset, dw.get(), with_conv_bias ? dcb.get() : nullptr, db.get(), bias_len, o,
                 out.get(), s.get(), ws.get(), ws_bytes, nullptr);
  const cudaError_t e = cudaDeviceSynchronize();
  if (r.st.ok() && e != cudaSuccess) r.st = Status{StatusCode::kCudaError, cudaGetErrorString(e), e};
  r.s = s.download();
  r.out = out.download();
  return r;
}

void check_forward(const ConvTranspose2dParams& p, const testing::ProblemData& d, const ForwardOptions& o,
                   size_t x_offset = 0) {
  int64_t H = 0, W = 0;
  conv_transpose2d_output_hw(p, &H, &W);
  const ForwardResult r = run_forward(p, d, o, true, x_offset);
  ASSERT_TRUE(r.st.ok()) << r.st.message;
  const ref::Forward f = ref::forward(p, d.x.data(), d.weight.data(), d.conv_bias.data(), d.bias.data(),
                                      int64_t(d.bias.size()), o.gelu);
  const std::vector<double> A = ref::conv_transpose2d_abs(p, d.x.data(), d.weight.data());
  const double K = double(p.C_in) * p.kernel_h * p.kernel_w;
  const double unit = o.math == MathMode::kTF32 ? std::ldexp(1.0, -10) : std::ldexp(1.0, -19) + K * std::ldexp(1.0, -24);
  std::vector<double> s_bound = ref::s_bound_from_abs(A, p.N, p.C_out, H, W, unit);
  for (size_t i = 0; i < s_bound.size(); ++i) s_bound[i] += std::ldexp(std::abs(f.s[i]), -22) * double(H);
  // Out: gelu' <= 1.13, plus the fp32 rounding of gelu(s) + bias.
  std::vector<double> out_bound(f.out.size());
  for (size_t i = 0; i < out_bound.size(); ++i) {
    const size_t n = i / (d.bias.size() * W), w = i % W;
    out_bound[i] = 1.13 * s_bound[n * W + w] + std::ldexp(std::abs(f.out[i]) + 1.0, -22);
  }
  // TF32 on s: 1e-4 normwise once s averages >= 4 rows; y's 2e-3 below that (SPEC.md).
  // These bounds are relative to ||s|| and assume the row sums do not cancel (kappa ~ 1,
  // as with the benchmark's data); where they do (e.g. C_out = 1, where the minimum is y
  // itself and takes both signs), the same bound holds relative to the summands, i.e.
  // it is multiplied by kappa.
  // SPEC.md's 1e-4 for TF32 was derived for the benchmark's reduction (K = 144 products
  // per y, 256 rows), which averages the rounding out; with a short reduction a correct
  // round-to-nearest kernel lands near y's own error (2.6e-4) instead, so those problems
  // are held to y's bound, 2e-3, like SPEC.md's H_out < 4 case. Every problem also gets
  // the a-priori elementwise bound, which does not depend on averaging.
  // Where even exact round-to-nearest TF32 arithmetic misses 1e-4 on this very problem
  // (seen: 2.3e-4 for N=3 C_in=30 C_out=2 11x2 k2x4 s3x2 dil1x2, where half the columns
  // get no taps and the minimum is over two channels), a TF32 kernel is held to twice
  // that emulated error instead.
  const double kappa = testing::row_sum_cancellation(f.y, f.s, p.N, p.C_out, H, W);
  double tol =
      (o.math == MathMode::kFP32 ? 1e-6 : (testing::averages_tf32_rounding(p) ? 1e-4 : 2e-3)) * std::max(1.0, kappa / 2);
  const double emulated = o.math == MathMode::kTF32 ? testing::tf32_emulated_s_error(p, d.x, d.weight, d.conv_bias,
                                                                                      d.bias, o.gelu, f.s)
                                                    : 0.0;
  tol = std::max(tol, 2 * emulated);
  SCOPED_TRACE("row-sum cancellation kappa = " + std::to_string(kappa) + "; exact RN-TF32 s error " +
               std::to_string(emulated) + "; s tolerance " + std::to_string(tol));
  EXPECT_LE(ref::normwise_rel_error(r.s.data(), f.s.data(), f.s.size()), tol);
  expect_out_within_s_bound(r.out, f.out, f.s, int64_t(d.bias.size()), tol);
  const ref::ElementCheck es = ref::check_elementwise(r.s.data(), f.s.data(), f.s.size(), s_bound.data());
  EXPECT_TRUE(es.ok) << "s: " << es.describe();
  const ref::ElementCheck eo = ref::check_elementwise(r.out.data(), f.out.data(), f.out.size(), out_bound.data());
  EXPECT_TRUE(eo.ok) << "out: " << eo.describe();
}

struct FwdCase {
  ConvTranspose2dParams p;
  ForwardOptions o;
  int64_t bias_len;
};

std::vector<FwdCase> all_cases() {
  std::vector<ConvTranspose2dParams> ps = testing::edge_cases();
  const std::vector<ConvTranspose2dParams> rnd = testing::random_cases(testing::test_seed() ^ 0xf00d, 14);
  ps.insert(ps.end(), rnd.begin(), rnd.end());
  std::vector<FwdCase> cases;
  for (size_t i = 0; i < ps.size(); ++i) {
    const int64_t bias_len = i % 3 == 1 ? ps[i].C_out : 1;
    const GeluMode gelu = i % 4 == 2 ? GeluMode::kTanh : GeluMode::kErf;
    cases.push_back({ps[i], {MathMode::kTF32, gelu, Path::kFused}, bias_len});
    cases.push_back({ps[i], {MathMode::kTF32, gelu, Path::kFused, MainloopKind::kPortable}, bias_len});
    cases.push_back({ps[i], {MathMode::kFP32, gelu, Path::kFused}, bias_len});
    cases.push_back({ps[i], {MathMode::kFP32, gelu, Path::kFused, MainloopKind::kPortable}, bias_len});
    if (i % 4 == 0) cases.push_back({ps[i], {MathMode::kTF32, gelu, Path::kUnfused}, bias_len});
  }
  return cases;
}

std::string mode_name(const ForwardOptions& o) { return testing::mode_name(o.math, o.mainloop); }

void PrintTo(const FwdCase& c, std::ostream* os) {
  *os << testing::describe(c.p) << " " << mode_name(c.o)
      << (c.o.path == Path::kUnfused ? " unfused" : " fused") << (c.o.gelu == GeluMode::kTanh ? " tanh" : " erf")
      << " bias_len=" << c.bias_len;
}

class Forward : public ::testing::TestWithParam<FwdCase> {};

TEST_P(Forward, MatchesFloat64Reference) {
  CTFUSE_REQUIRE_GPU();
  const FwdCase& c = GetParam();
  const uint64_t seed = testing::test_seed() ^ std::hash<std::string>{}(testing::describe(c.p)) ^ 77;
  SCOPED_TRACE(testing::describe(c.p) + " " + mode_name(c.o) +
               (c.o.path == Path::kUnfused ? " unfused" : " fused") + " bias_len=" + std::to_string(c.bias_len) +
               " seed=" + std::to_string(seed));
  const testing::ProblemData d = testing::make_data(c.p, c.bias_len, seed, true);
  check_forward(c.p, d, c.o);
}

INSTANTIATE_TEST_SUITE_P(Problems, Forward, ::testing::ValuesIn(all_cases()),
                         [](const ::testing::TestParamInfo<FwdCase>& info) {
                           return std::to_string(info.index) + "_" +
                                  testing::mode_test_name(info.param.o.math, info.param.o.mainloop) +
                                  (info.param.o.path == Path::kUnfused ? "_unfused" : "_fused");
                         });

// On sm_90 an x that is not 16-byte aligned cannot be described to the TMA unit: the
// same problem then runs on the cp.async-fed wgmma mainloop, and must be as correct.
TEST(ForwardFused, UnalignedXTakesTheCpAsyncFeed) {
  CTFUSE_REQUIRE_GPU();
  const ConvTranspose2dParams p = testing::make_params(2, 40, 130, 10, 16, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1);
  const testing::ProblemData d = testing::make_data(p, 1, testing::test_seed() ^ 0xa11, true);
  const ForwardOptions o{MathMode::kTF32, GeluMode::kErf, Path::kFused};
  {
    SCOPED_TRACE("x 16-byte aligned");
    check_forward(p, d, o);
  }
  {
    SCOPED_TRACE("x 4-byte aligned only");
    check_forward(p, d, o, 1);
  }
}

// A NaN whose payload lies only in the low 13 bits (which TF32 drops) must stay a NaN,
// not become the Inf that its remaining bits spell; also a NaN with every payload bit
// set (0x7fffffff, what the GPU's own arithmetic produces), which a careless "add half
// an ulp" rounding wraps into -0.
// With finite weights the call must take the tensor-core path, not the exact fallback that
// NaN/Inf weights switch on (every accuracy test would pass on the fallback too, only
// slower): TF32's rounding must show in s, near what exact round-to-nearest TF32 gives,
// two orders of magnitude above the fallback's fp32-products-double-sum error.
TEST(ForwardFused, FiniteWeightsUseTheTensorCores) {
  CTFUSE_REQUIRE_GPU();
  const ConvTranspose2dParams p = testing::make_params(2, 64, 128, 12, 20, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1);
  const testing::ProblemData d = testing::make_data(p, 1, testing::test_seed() ^ 0xf1, true);
  const ref::Forward f = ref::forward(p, d.x.data(), d.weight.data(), d.conv_bias.data(), d.bias.data(), 1,
                                      GeluMode::kErf);
  const double emulated = testing::tf32_emulated_s_error(p, d.x, d.weight, d.conv_bias, d.bias, GeluMode::kErf, f.s);
  ASSERT_GT(emulated, 1e-6) << "the problem must make TF32 rounding visible";
  for (Path path : {Path::kFused, Path::kUnfused}) {
    SCOPED_TRACE(path == Path::kFused ? "fused" : "unfused");
    const ForwardResult r = run_forward(p, d, {MathMode::kTF32, GeluMode::kErf, path});
    ASSERT_TRUE(r.st.ok()) << r.st.message;
    EXPECT_GT(ref::normwise_rel_error(r.s.data(), f.s.data(), f.s.size()), 0.1 * emulated);
  }
}

// The Hopper fused kernel is persistent: a block strides over tiles, carrying its stage
// ring, mbarrier phases and epilogue buffers from one tile to the next. The problems above
// have fewer tiles than an H100/H200 holds blocks (264), so each block takes one. These
// take several per block, on the TMA feed (W_in % 4 == 0, C_out > 64), for stride 1 (one
// column buffer reused by every column), stride 3 and stride > kernel (phases without
// taps), each against the float64 reference.
TEST(ForwardFused, PersistentBlocksTakeManyTiles) {
  CTFUSE_REQUIRE_GPU();
  const ConvTranspose2dParams problems[] = {
      testing::make_params(48, 4, 72, 32, 64, 3, 3, 1, 1, 1, 1, 0, 0, 1, 1),   // 768 tiles
      testing::make_params(200, 4, 72, 12, 24, 3, 3, 3, 3, 1, 1, 2, 2, 1, 1),  // 600 tiles
      testing::make_params(100, 5, 80, 8, 32, 2, 2, 4, 4, 0, 0, 3, 3, 1, 1),   // 600 tiles, empty phases
  };
  for (const ConvTranspose2dParams& p : problems) {
    SCOPED_TRACE(testing::describe(p));
    const char* engine = nullptr;
    ASSERT_TRUE(mainloop_in_use(p, MathMode::kTF32, MainloopKind::kAuto, &engine).ok());
    SCOPED_TRACE(std::string("mainloop ") + engine);
    const testing::ProblemData d = testing::make_data(p, 1, testing::test_seed() ^ 0x9e55, true);
    check_forward(p, d, {MathMode::kTF32, GeluMode::kErf, Path::kFused});
  }
}

TEST(ForwardFused, NaNPayloadsSurviveTf32Rounding) {
  CTFUSE_REQUIRE_GPU();
  const ConvTranspose2dParams p = testing::make_params(1, 16, 128, 6, 16, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1);
  testing::ProblemData d = testing::make_data(p, 1, testing::test_seed() ^ 0x4a4, true);
  const uint32_t payloads[] = {0x7f800001u, 0xff800fffu, 0x7fffffffu};
  for (size_t i = 0; i < 3; ++i) {
    uint32_t bits = payloads[i];
    std::memcpy(&d.x[(i * 5 + 2) * p.W_in + 3 + 5 * i], &bits, 4);  // three (channel, row, column)s
  }
  const ref::Forward f = ref::forward(p, d.x.data(), d.weight.data(), d.conv_bias.data(), d.bias.data(), 1,
                                      GeluMode::kErf);
  double s_max = 0;
  for (double v : f.s) s_max = std::isfinite(v) ? std::max(s_max, std::abs(v)) : s_max;
  for (const ForwardOptions o : {ForwardOptions{MathMode::kTF32, GeluMode::kErf, Path::kFused},
                                 ForwardOptions{MathMode::kTF32, GeluMode::kErf, Path::kFused, MainloopKind::kPortable},
                                 ForwardOptions{MathMode::kFP32, GeluMode::kErf, Path::kFused},
                                 ForwardOptions{MathMode::kFP32, GeluMode::kErf, Path::kFused, MainloopKind::kPortable}}) {
    SCOPED_TRACE(mode_name(o));
    const ForwardResult r = run_forward(p, d, o);
    ASSERT_TRUE(r.st.ok()) << r.st.message;
    int nan_columns = 0;
    for (size_t w = 0; w < f.s.size(); ++w) {
      if (std::isnan(f.s[w])) {
        ++nan_columns;
        EXPECT_TRUE(std::isnan(r.s[w])) << "column " << w << ": " << r.s[w];
      } else {
        EXPECT_NEAR(r.s[w], f.s[w], 2e-3 * s_max) << "column " << w;
      }
    }
    EXPECT_GT(nan_columns, 0);
  }
}

TEST(ForwardFused, BitwiseReproducible) {
  CTFUSE_REQUIRE_GPU();
  const ConvTranspose2dParams p = testing::make_params(3, 32, 128, 20, 24, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1);
  const testing::ProblemData d = testing::make_data(p, 1, testing::test_seed(), true);
  for (const ForwardOptions o : {ForwardOptions{MathMode::kTF32, GeluMode::kErf, Path::kFused},
                                 ForwardOptions{MathMode::kTF32, GeluMode::kErf, Path::kFused, MainloopKind::kPortable},
                                 ForwardOptions{MathMode::kFP32, GeluMode::kErf, Path::kFused},
                                 ForwardOptions{MathMode::kFP32, GeluMode::kErf, Path::kFused, MainloopKind::kPortable}}) {
    SCOPED_TRACE(mode_name(o));
    const ForwardResult a = run_forward(p, d, o), b = run_forward(p, d, o);
    ASSERT_TRUE(a.st.ok() && b.st.ok());
    EXPECT_EQ(0, std::memcmp(a.s.data(), b.s.data(), a.s.size() * 4));
    EXPECT_EQ(0, std::memcmp(a.out.data(), b.out.data(), a.out.size() * 4));
  }
}

// A batch whose y would not fit in GPU memory (N = 4096 at the benchmark shape: y would be
// 137 GB; x is 17 GB) runs fused; random images are checked against the unfused path
// run on one-image slices of the same x. Skipped where the GPU lacks room for x.
TEST(ForwardFused, BatchWhoseYWouldNotFit) {
  CTFUSE_REQUIRE_GPU();
  const ConvTranspose2dParams p = testing::make_params(4096, 64, 128, 128, 128, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1);
  const size_t nx = size_t(p.N * p.C_in * p.H_in * p.W_in), per_image = nx / size_t(p.N);
  size_t free_bytes = 0, total = 0;
  CUDA_ASSERT(cudaMemGetInfo(&free_bytes, &total));
  if (free_bytes < nx * 4 + (size_t(2) << 30)) GTEST_SKIP() << "needs " << (nx * 4 >> 30) << " GiB free for x";
  const testing::ProblemData small = testing::make_data(testing::make_params(1, 64, 128, 4, 4, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1), 1,
                                                        testing::test_seed(), false);  // weights and biases only
  DeviceBuffer<float> x(nx), w(small.weight), cb(small.conv_bias), b(small.bias);
  ASSERT_TRUE(x.ok());
  testing::fill_hash<<<4096, 256>>>(x.get(), nx, uint32_t(testing::test_seed()), 0.0f, 1.0f);
  const int64_t W = 256;
  DeviceBuffer<float> out{size_t(p.N * W)}, s{size_t(p.N * W)};
  out.fill(testing::poison_value());
  s.fill(testing::poison_value());
  const ForwardOptions fused{MathMode::kTF32, GeluMode::kErf, Path::kFused};
  size_t ws_bytes = 0;
  ASSERT_TRUE(forward_workspace_size(p, 1, fused, &ws_bytes).ok());
  DeviceBuffer<char> ws(ws_bytes);
  const Status st = forward(p, x.get(), w.get(), cb.get(), b.get(), 1, fused, out.get(), s.get(), ws.get(), ws_bytes, nullptr);
  ASSERT_TRUE(st.ok()) << st.message;
  CUDA_ASSERT(cudaDeviceSynchronize());
  const std::vector<float> s_all = s.download();

  ConvTranspose2dParams one = p;
  one.N = 1;
  const ForwardOptions unfused{MathMode::kTF32, GeluMode::kErf, Path::kUnfused};
  size_t ws1 = 0;
  ASSERT_TRUE(forward_workspace_size(one, 1, unfused, &ws1).ok());
  DeviceBuffer<char> ws_one(ws1);
  DeviceBuffer<float> out1{size_t(W)}, s1{size_t(W)};
  std::mt19937_64 rng(testing::test_seed());
  for (int trial = 0; trial < 6; ++trial) {
    const int64_t n = trial == 0 ? p.N - 1 : int64_t(rng() % uint64_t(p.N));
    SCOPED_TRACE("image " + std::to_string(n));
    s1.fill(testing::poison_value());
    ASSERT_TRUE(forward(one, x.get() + size_t(n) * per_image, w.get(), cb.get(), b.get(), 1, unfused, out1.get(), s1.get(),
                        ws_one.get(), ws1, nullptr).ok());
    CUDA_ASSERT(cudaDeviceSynchronize());
    const std::vector<float> ref = s1.download();
    // Both paths round the same operands to TF32; only the summation order differs.
    double num = 0, den = 0;
    for (int64_t w = 0; w < W; ++w) {
      const double d = double(s_all[size_t(n * W + w)]) - ref[size_t(w)];
      num += d * d;
      den += double(ref[size_t(w)]) * ref[size_t(w)];
    }
    EXPECT_LE(std::sqrt(num / den), 1e-5);
  }
}

// PyTorch golden files (including NaN/Inf planted in x), on both paths: s and out within
// the a-priori elementwise bound (and FP32's normwise bound), and every NaN/Inf exactly
// where PyTorch has it (check_elementwise requires non-finite values to match).
TEST(ForwardGolden, MatchesPyTorch) {
  CTFUSE_REQUIRE_GPU();
  const std::vector<std::string> files = ref::list_golden_files(ref::golden_dir());
  ASSERT_FALSE(files.empty());
  for (const std::string& f : files)
    for (Path path : {Path::kFused, Path::kUnfused})
      for (const auto& [math, mainloop] : {std::pair{MathMode::kTF32, MainloopKind::kAuto},
                                           std::pair{MathMode::kTF32, MainloopKind::kPortable},
                                           std::pair{MathMode::kFP32, MainloopKind::kAuto},
                                           std::pair{MathMode::kFP32, MainloopKind::kPortable}}) {
        SCOPED_TRACE(f + " " + mode_name({math, GeluMode::kErf, path, mainloop}) +
                     (path == Path::kFused ? " fused" : " unfused"));
        ref::GoldenCase g;
        std::string err;
        ASSERT_TRUE(ref::read_golden(f, &g, &err)) << err;
        const testing::ProblemData d{g.x, g.weight, g.conv_bias, g.bias};
        const ForwardResult r = run_forward(g.p, d, {math, g.gelu, path, mainloop}, !g.conv_bias.empty());
        ASSERT_TRUE(r.st.ok()) << r.st.message;
        const std::vector<double> A = ref::conv_transpose2d_abs(g.p, g.x.data(), g.weight.data());
        const double K = double(g.p.C_in) * g.p.kernel_h * g.p.kernel_w;
        const double unit = math == MathMode::kTF32 ? std::ldexp(1.0, -10) : std::ldexp(1.0, -19) + K * std::ldexp(1.0, -24);
        std::vector<double> s_bound = ref::s_bound_from_abs(A, g.p.N, g.p.C_out, g.H_out, g.W_out, unit);
        for (size_t i = 0; i < s_bound.size(); ++i)
          s_bound[i] += std::ldexp(std::isfinite(g.s[i]) ? std::abs(g.s[i]) : 0.0, -22) * double(g.H_out);
        const ref::ElementCheck es = ref::check_elementwise(r.s.data(), g.s.data(), g.s.size(), s_bound.data());
        EXPECT_TRUE(es.ok) << "s: " << es.describe();
        std::vector<double> out_bound(g.out.size());
        for (size_t i = 0; i < out_bound.size(); ++i) {
          const size_t n = i / (g.bias.size() * size_t(g.W_out)), w = i % size_t(g.W_out);
          out_bound[i] = 1.13 * s_bound[n * size_t(g.W_out) + w] +
                         std::ldexp((std::isfinite(g.out[i]) ? std::abs(g.out[i]) : 0.0) + 1.0, -22);
        }
        const ref::ElementCheck eo = ref::check_elementwise(r.out.data(), g.out.data(), g.out.size(), out_bound.data());
        EXPECT_TRUE(eo.ok) << "out: " << eo.describe();
        if (math == MathMode::kFP32) {
          const double kappa = testing::row_sum_cancellation(g.y, g.s, g.p.N, g.p.C_out, g.H_out, g.W_out);
          const double tol = 1e-6 * std::max(1.0, kappa / 2);
          EXPECT_LE(ref::normwise_rel_error(r.s.data(), g.s.data(), g.s.size()), tol);
          expect_out_within_s_bound(r.out, g.out, g.s, g.bias_len, tol);
        }
      }
}

}  // namespace
}  // namespace ctfuse
