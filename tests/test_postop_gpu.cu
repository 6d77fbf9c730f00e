// GPU tests of ctfuse::min_sum_gelu_bias against the float64 reference.
// Inputs are built so that s lies in about [-4, 4] (GELU is not flat there) and the
// arg-min channel changes from pixel to pixel; outputs are poisoned before each run.
#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ctfuse/ctfuse.h"
#include "golden.h"
#include "gpu_util.h"
#include "reference.h"

namespace ctfuse {
namespace {

using testing::DeviceBuffer;

enum class Layout { kNCHW, kNHWC, kPaddedRows };

struct PostOpCase {
  int64_t N, C, H, W;
  Layout layout;
  int64_t bias_len;
  GeluMode gelu;
};

std::string describe(const PostOpCase& c) {
  const char* layouts[] = {"NCHW", "NHWC", "NCHW+padded rows"};
  return "N=" + std::to_string(c.N) + " C=" + std::to_string(c.C) + " H=" + std::to_string(c.H) +
         " W=" + std::to_string(c.W) + " " + layouts[int(c.layout)] +
         " bias_len=" + std::to_string(c.bias_len) +
         (c.gelu == GeluMode::kErf ? " erf" : " tanh");
}

// Descriptor plus the number of floats to allocate for it.
Tensor4d make_desc(const PostOpCase& c, int64_t* alloc) {
  Tensor4d d;
  if (c.layout == Layout::kNHWC) {
    d = make_nhwc(c.N, c.C, c.H, c.W);
  } else if (c.layout == Layout::kNCHW) {
    d = make_nchw(c.N, c.C, c.H, c.W);
  } else {  // rows padded by 3 floats: W-contiguous but not 16-byte aligned rows
    d.size[0] = c.N; d.size[1] = c.C; d.size[2] = c.H; d.size[3] = c.W;
    d.stride[3] = 1;
    d.stride[2] = c.W + 3;
    d.stride[1] = d.stride[2] * c.H;
    d.stride[0] = d.stride[1] * c.C;
  }
  *alloc = d.stride[0] * c.N;
  return d;
}

// y[n,c,h,w] = base[n,h,w] + noise: the column target s_t ~ U[-4,4] spread over the rows
// with a per-row jitter, and a positive per-channel noise that decides the minimum.
std::vector<float> make_y(const PostOpCase& c, const Tensor4d& d, int64_t alloc, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> target(-4.0, 4.0), jitter(-0.5, 0.5), noise(0.0, 0.3);
  std::vector<float> y(alloc, testing::poison_value());  // padding stays poisoned: never read
  for (int64_t n = 0; n < c.N; ++n)
    for (int64_t w = 0; w < c.W; ++w) {
      const double s_t = target(rng);
      for (int64_t h = 0; h < c.H; ++h) {
        const double base = s_t / c.H + jitter(rng) / std::sqrt(double(c.H));
        for (int64_t ch = 0; ch < c.C; ++ch)
          y[n * d.stride[0] + ch * d.stride[1] + h * d.stride[2] + w * d.stride[3]] =
              static_cast<float>(base + noise(rng) / std::max<int64_t>(1, c.H / 8));
      }
    }
  return y;
}

struct PostOpResult {
  std::vector<float> s, out;
};

PostOpResult run_postop(const std::vector<float>& y_host, const Tensor4d& d,
                        const std::vector<float>& bias, GeluMode gelu, Status* st) {
  const int64_t N = d.n(), W = d.w(), B = int64_t(bias.size());
  DeviceBuffer<float> y(y_host), b(bias), out(N * B * W), s(N * W);
  out.fill(testing::poison_value());
  s.fill(testing::poison_value());
  *st = min_sum_gelu_bias(y.get(), d, b.get(), B, gelu, out.get(), s.get(), nullptr);
  const cudaError_t sync = cudaDeviceSynchronize();
  if (st->ok() && sync != cudaSuccess) *st = Status{StatusCode::kCudaError, cudaGetErrorString(sync), sync};
  return {s.download(), out.download()};
}

void check_case(const PostOpCase& c, uint64_t seed) {
  SCOPED_TRACE(describe(c) + " seed=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  int64_t alloc = 0;
  const Tensor4d d = make_desc(c, &alloc);
  const std::vector<float> y = make_y(c, d, alloc, rng);
  std::vector<float> bias(c.bias_len);
  std::uniform_real_distribution<float> ub(-1.f, 1.f);
  for (auto& v : bias) v = ub(rng);

  Status st;
  const PostOpResult got = run_postop(y, d, bias, c.gelu, &st);
  ASSERT_TRUE(st.ok()) << st.message;

  const std::vector<double> s_ref = ref::min_sum(y.data(), d);
  const std::vector<double> out_ref = ref::gelu_bias(s_ref, c.N, c.W, bias.data(), c.bias_len, c.gelu);
  double max_s = 0, max_out = 0;
  for (double v : s_ref) max_s = std::max(max_s, std::abs(v));
  for (double v : out_ref) max_out = std::max(max_out, std::abs(v));

  EXPECT_LE(ref::normwise_rel_error(got.s.data(), s_ref.data(), s_ref.size()), 1e-6);
  EXPECT_LE(ref::normwise_rel_error(got.out.data(), out_ref.data(), out_ref.size()), 1e-6);
  const ref::ElementCheck es = ref::check_elementwise(got.s.data(), s_ref.data(), s_ref.size(), 1e-6 * max_s);
  EXPECT_TRUE(es.ok) << "s: " << es.describe();
  const ref::ElementCheck eo =
      ref::check_elementwise(got.out.data(), out_ref.data(), out_ref.size(), 1e-6 * max_out);
  EXPECT_TRUE(eo.ok) << "out: " << eo.describe();
}

void PrintTo(const PostOpCase& c, std::ostream* os) { *os << describe(c); }

class PostOpRandom : public ::testing::TestWithParam<PostOpCase> {};

TEST_P(PostOpRandom, MatchesFloat64Reference) {
  CTFUSE_REQUIRE_GPU();
  check_case(GetParam(), testing::test_seed() ^ std::hash<std::string>{}(describe(GetParam())));
}

// Shapes that are multiples of no tile: C in {1, 3, 33, 128, 300}, odd H and W,
// W below a warp, H = 1, every layout path, both bias forms and GELU modes.
const PostOpCase kCases[] = {
    {2, 1, 7, 9, Layout::kNCHW, 1, GeluMode::kErf},
    {1, 3, 1, 5, Layout::kNCHW, 3, GeluMode::kTanh},
    {3, 33, 17, 31, Layout::kNCHW, 1, GeluMode::kErf},
    {2, 128, 64, 64, Layout::kNCHW, 1, GeluMode::kErf},
    {1, 300, 9, 12, Layout::kNCHW, 300, GeluMode::kErf},
    {4, 128, 33, 36, Layout::kNCHW, 128, GeluMode::kTanh},
    {2, 16, 255, 100, Layout::kNCHW, 1, GeluMode::kErf},
    {1, 5, 1, 1, Layout::kNCHW, 1, GeluMode::kErf},
    {2, 1, 7, 9, Layout::kNHWC, 1, GeluMode::kTanh},
    {1, 3, 1, 5, Layout::kNHWC, 1, GeluMode::kErf},
    {3, 33, 17, 31, Layout::kNHWC, 33, GeluMode::kErf},
    {2, 128, 64, 64, Layout::kNHWC, 1, GeluMode::kTanh},
    {1, 300, 9, 12, Layout::kNHWC, 1, GeluMode::kErf},
    {2, 132, 13, 70, Layout::kNHWC, 4, GeluMode::kErf},
    {1, 3, 5, 3, Layout::kPaddedRows, 1, GeluMode::kErf},
    {2, 33, 17, 31, Layout::kPaddedRows, 2, GeluMode::kTanh},
    {1, 128, 1, 40, Layout::kPaddedRows, 1, GeluMode::kErf},
    {1, 300, 3, 20, Layout::kPaddedRows, 1, GeluMode::kErf},
    {5, 7, 130, 44, Layout::kNCHW, 1, GeluMode::kErf},
    {1, 64, 2, 260, Layout::kNCHW, 1, GeluMode::kTanh},
    {1, 64, 2, 259, Layout::kNHWC, 1, GeluMode::kErf},
    {1, 2, 300, 1, Layout::kNHWC, 2, GeluMode::kErf},
};
INSTANTIATE_TEST_SUITE_P(Shapes, PostOpRandom, ::testing::ValuesIn(kCases));

TEST(PostOp, BitwiseReproducible) {
  CTFUSE_REQUIRE_GPU();
  const PostOpCase c{3, 128, 77, 64, Layout::kNCHW, 1, GeluMode::kErf};
  std::mt19937_64 rng(testing::test_seed());
  int64_t alloc = 0;
  const Tensor4d d = make_desc(c, &alloc);
  const std::vector<float> y = make_y(c, d, alloc, rng);
  const std::vector<float> bias{0.25f};
  Status st1, st2;
  const PostOpResult a = run_postop(y, d, bias, c.gelu, &st1);
  const PostOpResult b = run_postop(y, d, bias, c.gelu, &st2);
  ASSERT_TRUE(st1.ok() && st2.ok());
  EXPECT_EQ(0, std::memcmp(a.s.data(), b.s.data(), a.s.size() * 4));
  EXPECT_EQ(0, std::memcmp(a.out.data(), b.out.data(), a.out.size() * 4));
}

// PyTorch's special values: NaN in any channel wins the minimum; -inf in a column sum
// gives gelu = NaN; +inf gives +inf; inf + (-inf) = NaN.
TEST(PostOp, NanAndInfFollowPyTorch) {
  CTFUSE_REQUIRE_GPU();
  const int64_t N = 1, C = 4, H = 3, W = 8;
  const Tensor4d d = make_nchw(N, C, H, W);
  std::vector<float> y(N * C * H * W, 0.5f);
  auto at = [&](int64_t c, int64_t h, int64_t w) -> float& { return y[(c * H + h) * W + w]; };
  const float inf = INFINITY;
  at(2, 1, 0) = NAN;                                      // column 0: NaN
  at(0, 0, 1) = -inf;                                     // column 1: -inf -> gelu NaN
  for (int64_t c = 0; c < C; ++c) at(c, 2, 2) = inf;      // column 2: +inf
  at(1, 0, 3) = -inf;                                     // column 3: -inf + inf = NaN
  for (int64_t c = 0; c < C; ++c) at(c, 1, 3) = inf;
  at(3, 2, 4) = inf;                                      // column 4: inf in one channel only: finite
  at(0, 1, 5) = -100.f;                                   // column 5: gelu(-99) = -0.0
  const std::vector<float> bias{-0.0f};  // -0.0 + -0.0 keeps the sign of gelu(-99)
  Status st;
  const PostOpResult got = run_postop(y, d, bias, GeluMode::kErf, &st);
  ASSERT_TRUE(st.ok()) << st.message;
  EXPECT_TRUE(std::isnan(got.s[0]));
  EXPECT_TRUE(std::isnan(got.out[0]));
  EXPECT_EQ(got.s[1], -inf);
  EXPECT_TRUE(std::isnan(got.out[1]));
  EXPECT_EQ(got.s[2], inf);
  EXPECT_EQ(got.out[2], inf);
  EXPECT_TRUE(std::isnan(got.s[3]));
  EXPECT_FLOAT_EQ(got.s[4], 1.5f);
  EXPECT_EQ(got.out[5], 0.0f);
  EXPECT_TRUE(std::signbit(got.out[5]));
  for (int64_t w = 6; w < W; ++w) EXPECT_FLOAT_EQ(got.s[w], 1.5f);
}

// The golden files' y (PyTorch, float64, some with NaN/Inf planted in x) rounded to fp32
// and run through the kernel: finite values to the reference on that fp32 y, and the
// NaN/Inf pattern of s and out exactly PyTorch's.
TEST(PostOp, GoldenFiles) {
  CTFUSE_REQUIRE_GPU();
  const std::vector<std::string> files = ref::list_golden_files(ref::golden_dir());
  ASSERT_FALSE(files.empty()) << "no golden files in " << ref::golden_dir();
  for (const std::string& f : files) {
    SCOPED_TRACE(f);
    ref::GoldenCase g;
    std::string err;
    ASSERT_TRUE(ref::read_golden(f, &g, &err)) << err;
    int64_t H = 0, W = 0;
    ASSERT_TRUE(conv_transpose2d_output_hw(g.p, &H, &W).ok());
    const Tensor4d d = make_nchw(g.p.N, g.p.C_out, H, W);
    const std::vector<float> y(g.y.begin(), g.y.end());
    Status st;
    const PostOpResult got = run_postop(y, d, g.bias, g.gelu, &st);
    ASSERT_TRUE(st.ok()) << st.message;
    const std::vector<double> s_ref = ref::min_sum(y.data(), d);
    const std::vector<double> out_ref = ref::gelu_bias(s_ref, g.p.N, W, g.bias.data(), g.bias_len, g.gelu);
    EXPECT_LE(ref::normwise_rel_error(got.s.data(), s_ref.data(), s_ref.size()), 1e-6);
    EXPECT_LE(ref::normwise_rel_error(got.out.data(), out_ref.data(), out_ref.size()), 1e-6);
    auto same_class = [](double a, double b) {
      if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
      if (std::isinf(a) || std::isinf(b)) return a == b;
      return true;
    };
    for (size_t i = 0; i < g.s.size(); ++i)
      ASSERT_TRUE(same_class(got.s[i], g.s[i])) << "s[" << i << "] = " << got.s[i] << ", PyTorch " << g.s[i];
    for (size_t i = 0; i < g.out.size(); ++i)
      ASSERT_TRUE(same_class(got.out[i], g.out[i])) << "out[" << i << "] = " << got.out[i] << ", PyTorch " << g.out[i];
  }
}

}  // namespace
}  // namespace ctfuse
