// GPU tests of ctfuse::conv_transpose2d against the float64 scatter-form reference:
// named edge cases plus fresh random problems each run, both math modes, every element
// of y checked (normwise bound and the a-priori elementwise bound of SPEC.md), y
// poisoned before each run; and the PyTorch golden files.
#include <cmath>
#include <string>
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

struct ConvResult {
  Status st;
  std::vector<float> y;
};

ConvResult run_conv(const ConvTranspose2dParams& p, const std::vector<float>& x, const std::vector<float>& w,
                    const std::vector<float>& cb, MathMode math) {
  int64_t H = 0, W = 0;
  conv_transpose2d_output_hw(p, &H, &W);
  size_t ws_bytes = 0;
  ConvResult r;
  r.st = conv_transpose2d_workspace_size(p, math, &ws_bytes);
  if (!r.st.ok()) return r;
  DeviceBuffer<float> dx(x), dw(w), dcb(cb), dy(size_t(p.N * p.C_out * H * W));
  DeviceBuffer<char> ws(ws_bytes);
  dy.fill(testing::poison_value());
  r.st = conv_transpose2d(p, dx.get(), dw.get(), cb.empty() ? nullptr : dcb.get(), dy.get(), math, ws.get(),
                          ws_bytes, nullptr);
  const cudaError_t e = cudaDeviceSynchronize();
  if (r.st.ok() && e != cudaSuccess) r.st = Status{StatusCode::kCudaError, cudaGetErrorString(e), e};
  r.y = dy.download();
  return r;
}

// Normwise and a-priori elementwise checks of y; `unit` is the per-product error unit.
void check_y(const ConvTranspose2dParams& p, const std::vector<float>& x, const std::vector<float>& w,
             const std::vector<float>& cb, MathMode math) {
  const ConvResult r = run_conv(p, x, w, cb, math);
  ASSERT_TRUE(r.st.ok()) << r.st.message;
  const std::vector<double> ref = ref::conv_transpose2d(p, x.data(), w.data(), cb.empty() ? nullptr : cb.data());
  const std::vector<double> A = ref::conv_transpose2d_abs(p, x.data(), w.data());
  const double K = double(p.C_in) * p.kernel_h * p.kernel_w;
  const double unit = math == MathMode::kTF32 ? std::ldexp(1.0, -10) : std::ldexp(1.0, -19) + K * std::ldexp(1.0, -24);
  std::vector<double> bound(ref.size());
  for (size_t i = 0; i < ref.size(); ++i) bound[i] = unit * A[i] + std::ldexp(std::abs(ref[i]), -22);
  const double err = ref::normwise_rel_error(r.y.data(), ref.data(), ref.size());
  EXPECT_LE(err, math == MathMode::kTF32 ? 2e-3 : 2e-6);
  const ref::ElementCheck ec = ref::check_elementwise(r.y.data(), ref.data(), ref.size(), bound.data());
  EXPECT_TRUE(ec.ok) << ec.describe();
}

struct ConvCase {
  ConvTranspose2dParams p;
  MathMode math;
  bool with_bias;
};

std::vector<ConvCase> all_cases() {
  std::vector<ConvCase> cases;
  std::vector<ConvTranspose2dParams> ps = testing::edge_cases();
  const std::vector<ConvTranspose2dParams> rnd = testing::random_cases(testing::test_seed() ^ 0xc0ffee, 16);
  ps.insert(ps.end(), rnd.begin(), rnd.end());
  for (size_t i = 0; i < ps.size(); ++i)
    for (MathMode m : {MathMode::kTF32, MathMode::kFP32}) cases.push_back({ps[i], m, i % 5 != 3});
  return cases;
}

// gtest prints parameters with this (instead of raw bytes).
void PrintTo(const ConvCase& c, std::ostream* os) {
  *os << testing::describe(c.p) << (c.math == MathMode::kTF32 ? " TF32" : " FP32") << (c.with_bias ? " +bias" : "");
}

class ConvT : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvT, MatchesFloat64Reference) {
  CTFUSE_REQUIRE_GPU();
  const ConvCase& c = GetParam();
  const uint64_t seed = testing::test_seed() ^ std::hash<std::string>{}(testing::describe(c.p));
  SCOPED_TRACE(testing::describe(c.p) + (c.math == MathMode::kTF32 ? " TF32" : " FP32") +
               " seed=" + std::to_string(seed));
  const testing::ProblemData d = testing::make_data(c.p, 1, seed, false);
  check_y(c.p, d.x, d.weight, c.with_bias ? d.conv_bias : std::vector<float>{}, c.math);
}

INSTANTIATE_TEST_SUITE_P(Problems, ConvT, ::testing::ValuesIn(all_cases()),
                         [](const ::testing::TestParamInfo<ConvCase>& info) {
                           return std::to_string(info.index) +
                                  (info.param.math == MathMode::kTF32 ? "_TF32" : "_FP32");
                         });

// The PyTorch golden files: y to the TF32/FP32 bounds, NaN/Inf where PyTorch has them.
TEST(ConvTGolden, MatchesPyTorch) {
  CTFUSE_REQUIRE_GPU();
  const std::vector<std::string> files = ref::list_golden_files(ref::golden_dir());
  ASSERT_FALSE(files.empty());
  for (const std::string& f : files)
    for (MathMode math : {MathMode::kTF32, MathMode::kFP32}) {
      SCOPED_TRACE(f + (math == MathMode::kTF32 ? " TF32" : " FP32"));
      ref::GoldenCase g;
      std::string err;
      ASSERT_TRUE(ref::read_golden(f, &g, &err)) << err;
      const ConvResult r = run_conv(g.p, g.x, g.weight, g.conv_bias, math);
      ASSERT_TRUE(r.st.ok()) << r.st.message;
      EXPECT_LE(ref::normwise_rel_error(r.y.data(), g.y.data(), g.y.size()), math == MathMode::kTF32 ? 2e-3 : 2e-6);
    }
}

}  // namespace
}  // namespace ctfuse
