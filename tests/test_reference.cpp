// The float64 reference (tests/reference.h) against PyTorch's float64 results (the
// golden files) and against small cases worked out by hand. CPU only.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "golden.h"
#include "reference.h"

namespace ctfuse {
namespace {

using ref::GoldenCase;
using ref::golden_dir;
using ref::kGoldenMagic;
using ref::kGoldenVersion;
using ref::list_golden_files;
using ref::read_golden;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr float kNaNf = std::numeric_limits<float>::quiet_NaN();
constexpr float kInff = std::numeric_limits<float>::infinity();

// Same NaN / +inf / -inf / finite class at every index; returns the first index
// where they differ, or -1.
int64_t first_nonfinite_mismatch(const std::vector<double>& got, const std::vector<double>& ref) {
  for (size_t i = 0; i < ref.size(); ++i) {
    const bool same = std::isnan(ref[i]) ? std::isnan(got[i])
                      : std::isinf(ref[i]) ? got[i] == ref[i]
                                           : std::isfinite(got[i]);
    if (!same) return static_cast<int64_t>(i);
  }
  return -1;
}

void expect_matches_pytorch(const char* what, const std::vector<double>& got,
                            const std::vector<double>& ref) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  const int64_t bad = first_nonfinite_mismatch(got, ref);
  EXPECT_EQ(bad, -1) << what << ": NaN/Inf pattern differs at element " << bad << " (got "
                     << (bad >= 0 ? got[bad] : 0) << ", PyTorch " << (bad >= 0 ? ref[bad] : 0) << ")";
  EXPECT_LT(ref::normwise_rel_error(got.data(), ref.data(), ref.size()), 1e-12) << what;
}

// ---------------------------------------------------------------------------
// Golden files: the reference against PyTorch float64
// ---------------------------------------------------------------------------

TEST(GoldenFiles, ArePresent) {
  const std::string dir = golden_dir();
  EXPECT_FALSE(list_golden_files(dir).empty())
      << "no *.bin golden files in " << dir
      << " (set CTFUSE_GOLDEN_DIR, or build so that tests/golden/*.bin is copied next to the test)";
}

class ReferenceVsPyTorch : public ::testing::TestWithParam<std::string> {};

TEST_P(ReferenceVsPyTorch, YSAndOutMatchFloat64) {
  GoldenCase g;
  std::string error;
  ASSERT_TRUE(read_golden(GetParam(), &g, &error)) << error;
  const ref::Forward f = ref::forward(g.p, g.x.data(), g.weight.data(), g.conv_bias_or_null(),
                                      g.bias.data(), g.bias_len, g.gelu);
  expect_matches_pytorch("y", f.y, g.y);
  expect_matches_pytorch("s", f.s, g.s);
  expect_matches_pytorch("out", f.out, g.out);
}

std::string golden_test_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string name = std::filesystem::path(info.param).stem().string();
  for (char& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return name;
}

INSTANTIATE_TEST_SUITE_P(GoldenFile, ReferenceVsPyTorch,
                         ::testing::ValuesIn(list_golden_files(golden_dir())), golden_test_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(ReferenceVsPyTorch);  // GoldenFiles.ArePresent fails instead

// The golden set must keep covering what SPEC.md asks tests to cover.
TEST(GoldenFiles, CoverGeluActiveSaturatedTanhPerChannelBiasAndNonFinite) {
  bool active = false, saturated = false, tanh = false, per_channel = false, nonfinite = false;
  for (const std::string& path : list_golden_files(golden_dir())) {
    GoldenCase g;
    std::string error;
    ASSERT_TRUE(read_golden(path, &g, &error)) << error;
    int in_range = 0, below = 0;
    for (double s : g.s) {
      if (!std::isfinite(s)) nonfinite = true;
      if (std::fabs(s) < 4) ++in_range;
      if (s < -10) ++below;
    }
    if (in_range > static_cast<int>(g.s.size()) / 2) active = true;
    if (below == static_cast<int>(g.s.size())) saturated = true;
    if (g.gelu == GeluMode::kTanh) tanh = true;
    if (g.bias_len > 1) per_channel = true;
  }
  EXPECT_TRUE(active) << "no golden file with s mostly in (-4, 4)";
  EXPECT_TRUE(saturated) << "no golden file with every s below -10 (the benchmark's regime)";
  EXPECT_TRUE(tanh) << "no golden file with the tanh GELU";
  EXPECT_TRUE(per_channel) << "no golden file with bias_shape (C, 1, 1)";
  EXPECT_TRUE(nonfinite) << "no golden file with NaN or Inf in s";
}

// ---------------------------------------------------------------------------
// The transposed convolution, checked by hand
// ---------------------------------------------------------------------------

ConvTranspose2dParams params(int64_t C_in, int64_t C_out, int64_t H_in, int64_t W_in, int64_t kh,
                             int64_t kw, int64_t stride, int64_t pad, int64_t output_pad = 0,
                             int64_t dilation = 1) {
  ConvTranspose2dParams p;
  p.N = 1;
  p.C_in = C_in;
  p.C_out = C_out;
  p.H_in = H_in;
  p.W_in = W_in;
  p.kernel_h = kh;
  p.kernel_w = kw;
  p.stride_h = p.stride_w = stride;
  p.pad_h = p.pad_w = pad;
  p.output_pad_h = p.output_pad_w = output_pad;
  p.dilation_h = p.dilation_w = dilation;
  return p;
}

TEST(ConvTranspose2dRef, OneByOneInputStampsKernelTimesInputPlusBias) {
  // A single input pixel x = 3 stamps 3 * w[0, co] onto a 2x3 output, plus the conv bias.
  const auto p = params(1, 2, 1, 1, 2, 3, 1, 0);
  const float x[] = {3};
  std::vector<float> w(2 * 2 * 3);
  for (int co = 0; co < 2; ++co)
    for (int k = 0; k < 6; ++k) w[co * 6 + k] = static_cast<float>(10 * co + k + 1);
  const float cb[] = {0.5f, -1.0f};
  const std::vector<double> y = ref::conv_transpose2d(p, x, w.data(), cb);
  const std::vector<double> expected = {3.5, 6.5, 9.5, 12.5, 15.5, 18.5,   // co 0: 0.5 + 3*(1..6)
                                        32, 35, 38, 41, 44, 47};           // co 1: -1 + 3*(11..16)
  EXPECT_EQ(y, expected);
}

TEST(ConvTranspose2dRef, OverlappingTapsAddUp) {
  // Input [1, 2] (1x2), kernel [10, 100] (1x2), stride 1: output 1x3 = [10, 100 + 20, 200].
  const auto p = params(1, 1, 1, 2, 1, 2, 1, 0);
  const float x[] = {1, 2};
  const float w[] = {10, 100};
  EXPECT_EQ(ref::conv_transpose2d(p, x, w, nullptr), (std::vector<double>{10, 120, 200}));
}

TEST(ConvTranspose2dRef, PaddingCropsTheBorderK3S2P1) {
  // x = [[1, 2], [3, 4]], w[kh][kw] = 3*kh + kw + 1, stride 2, padding 1: 3x3 output,
  // oh = 2*ih - 1 + kh. Worked out by hand, e.g. y[1][1] = 1*9 + 2*7 + 3*3 + 4*1 = 36.
  const auto p = params(1, 1, 2, 2, 3, 3, 2, 1);
  const float x[] = {1, 2, 3, 4};
  const float w[] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  int64_t H_out = 0, W_out = 0;
  ref::output_hw(p, &H_out, &W_out);
  ASSERT_EQ(H_out, 3);
  ASSERT_EQ(W_out, 3);
  EXPECT_EQ(ref::conv_transpose2d(p, x, w, nullptr),
            (std::vector<double>{5, 14, 10, 14, 36, 24, 15, 34, 20}));
}

TEST(ConvTranspose2dRef, RowsAndColumnsNoTapReachesEqualConvBiasK1S2OutputPadding1) {
  // k = 1, stride 2, output_padding 1 on a 2x2 input: 4x4 output; even rows and columns get
  // x*w + b, odd ones (row/column 3 only exists because of output_padding) equal the bias.
  const auto p = params(1, 2, 2, 2, 1, 1, 2, 0, /*output_pad=*/1);
  const float x[] = {1, 2, 3, 4};
  const float w[] = {2, -1};
  const float cb[] = {0.25f, -0.5f};
  const std::vector<double> y = ref::conv_transpose2d(p, x, w, cb);
  ASSERT_EQ(y.size(), 2u * 16);
  for (int co = 0; co < 2; ++co) {
    for (int oh = 0; oh < 4; ++oh) {
      for (int ow = 0; ow < 4; ++ow) {
        double expected = cb[co];
        if (oh % 2 == 0 && ow % 2 == 0) expected += x[(oh / 2) * 2 + ow / 2] * w[co];
        EXPECT_EQ(y[(co * 4 + oh) * 4 + ow], expected) << "co " << co << " oh " << oh << " ow " << ow;
      }
    }
  }
}

TEST(ConvTranspose2dRef, DilationSpacesTheTaps) {
  // One pixel x = 2, kernel 2x2 = [[1, 2], [3, 4]], dilation 3: taps land on rows/cols 0 and 3
  // of a 4x4 output; rows/cols 1 and 2 stay at the bias 1.
  const auto p = params(1, 1, 1, 1, 2, 2, 1, 0, 0, /*dilation=*/3);
  const float x[] = {2};
  const float w[] = {1, 2, 3, 4};
  const float cb[] = {1};
  EXPECT_EQ(ref::conv_transpose2d(p, x, w, cb),
            (std::vector<double>{3, 1, 1, 5,  //
                                 1, 1, 1, 1,  //
                                 1, 1, 1, 1,  //
                                 7, 1, 1, 9}));
}

// y from SPEC.md's gather formula: every (ci, kh, kw) with oh = ih*stride - pad + kh*dilation.
std::vector<double> gather_conv_transpose2d(const ConvTranspose2dParams& p, const float* x,
                                            const float* w, const float* cb) {
  int64_t H_out = 0, W_out = 0;
  ref::output_hw(p, &H_out, &W_out);
  std::vector<double> y(p.N * p.C_out * H_out * W_out);
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t co = 0; co < p.C_out; ++co)
      for (int64_t oh = 0; oh < H_out; ++oh)
        for (int64_t ow = 0; ow < W_out; ++ow) {
          double acc = cb ? cb[co] : 0.0;
          for (int64_t ci = 0; ci < p.C_in; ++ci)
            for (int64_t kh = 0; kh < p.kernel_h; ++kh)
              for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
                const int64_t th = oh + p.pad_h - kh * p.dilation_h;
                const int64_t tw = ow + p.pad_w - kw * p.dilation_w;
                if (th < 0 || tw < 0 || th % p.stride_h || tw % p.stride_w) continue;
                const int64_t ih = th / p.stride_h, iw = tw / p.stride_w;
                if (ih >= p.H_in || iw >= p.W_in) continue;
                acc += double(x[((n * p.C_in + ci) * p.H_in + ih) * p.W_in + iw]) *
                       double(w[((ci * p.C_out + co) * p.kernel_h + kh) * p.kernel_w + kw]);
              }
          y[((n * p.C_out + co) * H_out + oh) * W_out + ow] = acc;
        }
  return y;
}

TEST(ConvTranspose2dRef, ScatterFormMatchesSpecGatherFormula) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1, 1);
  struct Shape { int64_t N, C_in, C_out, H, W, kh, kw, sh, sw, ph, pw, oph, opw, dh, dw; };
  const Shape shapes[] = {
      {2, 3, 5, 4, 5, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1},  // the benchmark's k/s/p/op
      {1, 2, 3, 3, 4, 3, 2, 2, 3, 1, 0, 1, 2, 1, 1},  // non-square kernel and stride
      {2, 2, 4, 5, 3, 5, 5, 1, 1, 2, 2, 0, 0, 1, 1},  // stride 1, kernel 5, padding 2
      {1, 3, 2, 3, 3, 1, 4, 3, 3, 0, 1, 2, 1, 1, 1},  // stride 3, kernel 1 / 4
      {1, 2, 3, 4, 4, 3, 3, 1, 2, 1, 2, 1, 1, 2, 3},  // dilation, output_padding < dilation
      {1, 1, 2, 2, 3, 4, 4, 1, 1, 2, 2, 0, 0, 1, 1},  // padding crops most taps: 1x2 output
  };
  for (const Shape& s : shapes) {
    ConvTranspose2dParams p;
    p.N = s.N; p.C_in = s.C_in; p.C_out = s.C_out; p.H_in = s.H; p.W_in = s.W;
    p.kernel_h = s.kh; p.kernel_w = s.kw; p.stride_h = s.sh; p.stride_w = s.sw;
    p.pad_h = s.ph; p.pad_w = s.pw; p.output_pad_h = s.oph; p.output_pad_w = s.opw;
    p.dilation_h = s.dh; p.dilation_w = s.dw;
    std::vector<float> x(p.N * p.C_in * p.H_in * p.W_in), w(p.C_in * p.C_out * p.kernel_h * p.kernel_w),
        cb(p.C_out);
    for (float& v : x) v = u(rng);
    for (float& v : w) v = u(rng);
    for (float& v : cb) v = u(rng);
    const std::vector<double> scatter = ref::conv_transpose2d(p, x.data(), w.data(), cb.data());
    const std::vector<double> gather = gather_conv_transpose2d(p, x.data(), w.data(), cb.data());
    ASSERT_EQ(scatter.size(), gather.size());
    for (size_t i = 0; i < gather.size(); ++i)
      ASSERT_NEAR(scatter[i], gather[i], 1e-12) << "element " << i << " of shape with k " << s.kh
                                                << "x" << s.kw << " stride " << s.sh << "x" << s.sw;
  }
}

TEST(ConvTranspose2dRef, AbsSumsAbsoluteTermsWithoutBias) {
  // x = [1, -2], w = [10, 100]: y = [10, 100 - 20, -200], A = [10, 100 + 20, 200].
  const auto p = params(1, 1, 1, 2, 1, 2, 1, 0);
  const float x[] = {1, -2};
  const float w[] = {10, 100};
  EXPECT_EQ(ref::conv_transpose2d(p, x, w, nullptr), (std::vector<double>{10, 80, -200}));
  EXPECT_EQ(ref::conv_transpose2d_abs(p, x, w), (std::vector<double>{10, 120, 200}));
}

TEST(ConvTranspose2dRef, InvalidParametersThrow) {
  auto p = params(1, 1, 2, 2, 3, 3, 2, 1);
  p.output_pad_h = 2;  // must be < max(stride, dilation) = 2
  const float x[4] = {}, w[9] = {};
  EXPECT_THROW(ref::conv_transpose2d(p, x, w, nullptr), std::invalid_argument);
  p = params(1, 1, 1, 1, 1, 1, 1, 1);  // H_out = 0 - 2 + 0 + 1 < 1
  EXPECT_THROW(ref::conv_transpose2d(p, x, w, nullptr), std::invalid_argument);
}

// ---------------------------------------------------------------------------
// min over channels, sum over rows
// ---------------------------------------------------------------------------

TEST(MinSumRef, NaNAnywhereInTheChannelColumnGivesNaN) {
  // y [1, C=3, H=2, W=3]. Column w0 has a NaN in the first channel, w1 in the last channel
  // (a plain `v < m` loop keeps NaN in the first case but drops it in the second); w2 is finite.
  std::vector<double> y(3 * 2 * 3);
  for (size_t i = 0; i < y.size(); ++i) y[i] = static_cast<double>(i % 5) - 2.0;
  auto at = [&](int c, int h, int w) -> double& { return y[(c * 2 + h) * 3 + w]; };
  at(0, 0, 0) = kNaN;
  at(2, 1, 1) = kNaN;
  const std::vector<double> s = ref::min_sum(y.data(), 1, 3, 2, 3);
  EXPECT_TRUE(std::isnan(s[0]));
  EXPECT_TRUE(std::isnan(s[1]));
  double expected = 0;
  for (int h = 0; h < 2; ++h) expected += std::min({at(0, h, 2), at(1, h, 2), at(2, h, 2)});
  EXPECT_EQ(s[2], expected);
  EXPECT_TRUE(std::isnan(ref::nan_propagating_min(kNaN, 1.0)));
  EXPECT_TRUE(std::isnan(ref::nan_propagating_min(1.0, kNaN)));
  EXPECT_EQ(ref::nan_propagating_min(-kInf, 1.0), -kInf);
}

TEST(MinSumRef, RowMinimaOfOppositeInfinitiesSumToNaN) {
  // y [1, C=2, H=2, W=3]: column 0 has row minima +inf and -inf (sum NaN), column 1 -inf and 1
  // (sum -inf), column 2 +inf and 2 (sum +inf).
  const double y[] = {/*c0 h0*/ kInf, -kInf, kInf, /*c0 h1*/ -kInf, 1, 2,
                      /*c1 h0*/ kInf, 5, kInf,    /*c1 h1*/ 3, 4, 7};
  const std::vector<double> s = ref::min_sum(y, 1, 2, 2, 3);
  EXPECT_TRUE(std::isnan(s[0]));
  EXPECT_EQ(s[1], -kInf);
  EXPECT_EQ(s[2], kInf);
}

TEST(MinSumRef, StridedFloatTensorMatchesDenseDouble) {
  const int64_t N = 2, C = 5, H = 3, W = 4;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> nchw(N * C * H * W);
  for (float& v : nchw) v = u(rng);
  nchw[7] = kNaNf;
  // The same tensor stored channels-last.
  const Tensor4d dn = make_nchw(N, C, H, W), dl = make_nhwc(N, C, H, W);
  std::vector<float> nhwc(nchw.size());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t w = 0; w < W; ++w)
          nhwc[n * dl.stride[0] + c * dl.stride[1] + h * dl.stride[2] + w * dl.stride[3]] =
              nchw[n * dn.stride[0] + c * dn.stride[1] + h * dn.stride[2] + w * dn.stride[3]];
  const std::vector<double> dense(nchw.begin(), nchw.end());
  const std::vector<double> expected = ref::min_sum(dense.data(), N, C, H, W);
  const std::vector<double> a = ref::min_sum(nchw.data(), dn), b = ref::min_sum(nhwc.data(), dl);
  ASSERT_EQ(expected.size(), static_cast<size_t>(N * W));
  EXPECT_TRUE(std::isnan(expected[7 % W]));  // element 7 is (n 0, c 0, h 1, w 3)
  for (size_t i = 0; i < expected.size(); ++i) {
    if (std::isnan(expected[i])) {
      EXPECT_TRUE(std::isnan(a[i]) && std::isnan(b[i])) << i;
    } else {
      EXPECT_EQ(a[i], expected[i]) << i;
      EXPECT_EQ(b[i], expected[i]) << i;
    }
  }
}

// ---------------------------------------------------------------------------
// GELU and bias
// ---------------------------------------------------------------------------

TEST(GeluRef, SpecialValuesMatchPyTorchInBothModes) {
  for (GeluMode mode : {GeluMode::kErf, GeluMode::kTanh}) {
    SCOPED_TRACE(mode == GeluMode::kErf ? "erf" : "tanh");
    EXPECT_TRUE(std::isnan(ref::gelu(-kInf, mode)));
    EXPECT_EQ(ref::gelu(kInf, mode), kInf);
    EXPECT_TRUE(std::isnan(ref::gelu(kNaN, mode)));
    const double g50 = ref::gelu(-50, mode);
    EXPECT_EQ(g50, 0.0);
    EXPECT_TRUE(std::signbit(g50)) << "gelu(-50) must be -0.0, as in PyTorch";
    EXPECT_EQ(ref::gelu(0.0, mode), 0.0);
    EXPECT_EQ(ref::gelu(1e6, mode), 1e6);
  }
}

TEST(GeluRef, KnownValuesOfBothModes) {
  // Values from PyTorch float64 (F.gelu) and Python's math module.
  EXPECT_NEAR(ref::gelu(1, GeluMode::kErf), 0.8413447460685429, 1e-15);
  EXPECT_NEAR(ref::gelu(-1, GeluMode::kErf), -0.15865525393145705, 1e-15);
  EXPECT_NEAR(ref::gelu(3, GeluMode::kErf), 2.99595030590511, 1e-14);
  EXPECT_NEAR(ref::gelu(1, GeluMode::kTanh), 0.8411919906082768, 1e-15);
  EXPECT_NEAR(ref::gelu(-1, GeluMode::kTanh), -0.15880800939172324, 1e-15);
  EXPECT_NEAR(ref::gelu(-3, GeluMode::kTanh), -0.0036373920817729943, 1e-17);
  // The erfc form keeps relative accuracy far into the tail, where 1 + erf(z) would be 0.
  EXPECT_NEAR(ref::gelu(-10, GeluMode::kErf) / -7.619853024160593e-23, 1.0, 1e-13);
}

TEST(GeluBiasRef, OutputIsNByBiasLenByWWithOneBiasPerChannel) {
  const std::vector<double> s = {0, 1, -1, /*n1*/ 2, -2, 0.5};  // N = 2, W = 3
  const float bias[] = {10, -20};
  const std::vector<double> out = ref::gelu_bias(s, 2, 3, bias, 2, GeluMode::kErf);
  ASSERT_EQ(out.size(), 12u);
  for (int n = 0; n < 2; ++n)
    for (int cb = 0; cb < 2; ++cb)
      for (int w = 0; w < 3; ++w)
        EXPECT_EQ(out[(n * 2 + cb) * 3 + w], ref::gelu(s[n * 3 + w], GeluMode::kErf) + bias[cb]);
}

TEST(ForwardRef, ChainsConvMinSumGeluBias) {
  // Two output channels of a single pixel: y = [b0 + x*w0, b1 + x*w1], s = min, out = gelu(s) + bias.
  const auto p = params(1, 2, 1, 1, 1, 1, 1, 0);
  const float x[] = {2}, w[] = {0.5f, -0.25f}, cb[] = {0.0f, 1.0f}, bias[] = {3};
  const ref::Forward f = ref::forward(p, x, w, cb, bias, 1, GeluMode::kTanh);
  EXPECT_EQ(f.y, (std::vector<double>{1.0, 0.5}));
  EXPECT_EQ(f.s, (std::vector<double>{0.5}));
  EXPECT_EQ(f.out, (std::vector<double>{ref::gelu(0.5, GeluMode::kTanh) + 3}));
}

// ---------------------------------------------------------------------------
// Error measures
// ---------------------------------------------------------------------------

TEST(ErrorMeasures, NormwiseSkipsMatchingNonFiniteAndRejectsMismatches) {
  const double ref3[] = {3, kNaN, -kInf, 4};
  const float same[] = {3, kNaNf, -kInff, 4};
  EXPECT_EQ(ref::normwise_rel_error(same, ref3, 4), 0.0);
  const float off[] = {3, kNaNf, -kInff, 4.5f};  // ||(0, 0.5)|| / ||(3, 4)|| = 0.1
  EXPECT_NEAR(ref::normwise_rel_error(off, ref3, 4), 0.1, 1e-15);
  const float nan_lost[] = {3, 0, -kInff, 4};
  EXPECT_EQ(ref::normwise_rel_error(nan_lost, ref3, 4), kInf);
  const float wrong_inf[] = {3, kNaNf, kInff, 4};
  EXPECT_EQ(ref::normwise_rel_error(wrong_inf, ref3, 4), kInf);
  const float extra_nan[] = {kNaNf, kNaNf, -kInff, 4};
  EXPECT_EQ(ref::normwise_rel_error(extra_nan, ref3, 4), kInf);
  const double zeros[] = {0, 0};
  const float z[] = {0, 0}, nz[] = {0, 1e-30f};
  EXPECT_EQ(ref::normwise_rel_error(z, zeros, 2), 0.0);
  EXPECT_EQ(ref::normwise_rel_error(nz, zeros, 2), kInf);
}

TEST(ErrorMeasures, ElementwiseCheckNamesTheFirstBadIndex) {
  const double r[] = {1, 2, kNaN, kInf, 5, 6};
  const float good[] = {1.05f, 1.95f, kNaNf, kInff, 5, 6};
  EXPECT_TRUE(ref::check_elementwise(good, r, 6, 0.1).ok);

  const float bad[] = {1, 2, kNaNf, kInff, 5.5f, 7};
  const ref::ElementCheck c = ref::check_elementwise(bad, r, 6, 0.1);
  EXPECT_FALSE(c.ok);
  EXPECT_EQ(c.first_bad, 4);
  EXPECT_EQ(c.got, 5.5);
  EXPECT_EQ(c.ref, 5.0);
  EXPECT_EQ(c.bound, 0.1);
  EXPECT_NE(c.describe().find("element 4"), std::string::npos) << c.describe();

  const float nan_for_inf[] = {1, 2, kNaNf, kNaNf, 5, 6};
  EXPECT_EQ(ref::check_elementwise(nan_for_inf, r, 6, 0.1).first_bad, 3);
  const float finite_for_nan[] = {1, 2, 0, kInff, 5, 6};
  EXPECT_EQ(ref::check_elementwise(finite_for_nan, r, 6, 1e30).first_bad, 2);
  const float inf_for_finite[] = {kInff, 2, kNaNf, kInff, 5, 6};
  EXPECT_EQ(ref::check_elementwise(inf_for_finite, r, 6, kInf).first_bad, 0);

  const double bound[] = {0, 0, 0, 0, 0.6, 0.9};  // element 5 is off by 1 > 0.9
  EXPECT_EQ(ref::check_elementwise(bad, r, 6, bound).first_bad, 5);
  EXPECT_EQ(ref::max_abs_finite(r, 6), 6.0);
}

TEST(ErrorMeasures, SBoundSumsTheRowMaximaOfA) {
  // A [1, C=2, H=2, W=2]: bound[w] = unit * (max_c A[c, 0, w] + max_c A[c, 1, w]).
  const std::vector<double> A = {/*c0*/ 1, 2, 3, 4, /*c1*/ 5, 0, 1, 8};
  const std::vector<double> b = ref::s_bound_from_abs(A, 1, 2, 2, 2, 0.5);
  EXPECT_EQ(b, (std::vector<double>{0.5 * (5 + 3), 0.5 * (2 + 8)}));
}

// ---------------------------------------------------------------------------
// The golden-file reader
// ---------------------------------------------------------------------------

// A minimal valid file (1x1 problem) in the format of tests/golden/README.md.
std::string tiny_golden_bytes() {
  std::string b(kGoldenMagic, 8);
  auto i64 = [&](int64_t v) { b.append(reinterpret_cast<const char*>(&v), 8); };
  auto f32s = [&](std::initializer_list<float> v) {
    i64(static_cast<int64_t>(v.size()));
    for (float f : v) b.append(reinterpret_cast<const char*>(&f), 4);
  };
  auto f64s = [&](std::initializer_list<double> v) {
    i64(static_cast<int64_t>(v.size()));
    for (double d : v) b.append(reinterpret_cast<const char*>(&d), 8);
  };
  i64(kGoldenVersion);
  // N C_in H_in W_in C_out kh kw sh sw ph pw oph opw dh dw bias_len gelu H_out W_out
  for (int64_t v : {1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1}) i64(v);
  f32s({2});     // x
  f32s({3});     // weight
  f32s({1});     // conv_bias
  f32s({0.5f});  // bias
  f64s({7});     // y
  f64s({7});     // s
  f64s({ref::gelu(7, GeluMode::kTanh) + 0.5});  // out
  return b;
}

std::string write_temp(const std::string& name, const std::string& bytes) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("ctfuse_test_" + std::to_string(::getpid()) + "_" + name)).string();
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path;
}

TEST(GoldenReader, ReadsAValidFileAndRejectsCorruptOnes) {
  const std::string good = tiny_golden_bytes();
  GoldenCase g;
  std::string error;
  const std::string path = write_temp("tiny.bin", good);
  ASSERT_TRUE(read_golden(path, &g, &error)) << error;
  EXPECT_EQ(g.name, "ctfuse_test_" + std::to_string(::getpid()) + "_tiny");
  EXPECT_EQ(g.gelu, GeluMode::kTanh);
  EXPECT_EQ(g.H_out, 1);
  EXPECT_EQ(g.x, std::vector<float>{2});
  EXPECT_EQ(g.y, std::vector<double>{7});
  std::remove(path.c_str());

  struct Corrupt { const char* what; std::string bytes; };
  std::string bad_magic = good;
  bad_magic[0] = 'X';
  std::string bad_version = good;
  bad_version[8] = 2;
  std::string bad_hout = good;
  bad_hout[8 + 8 + 17 * 8] = 2;  // stored H_out
  std::string bad_count = good;
  bad_count[8 + 8 + 19 * 8] = 2;  // length of x
  const Corrupt cases[] = {
      {"bad magic", bad_magic},
      {"bad version", bad_version},
      {"H_out differs", bad_hout},
      {"x length", bad_count},
      {"truncated", good.substr(0, good.size() - 1)},
      {"trailing bytes", good + '\0'},
      {"empty", ""},
  };
  for (const Corrupt& c : cases) {
    const std::string p = write_temp("corrupt.bin", c.bytes);
    std::string why;
    EXPECT_FALSE(read_golden(p, &g, &why)) << c.what;
    EXPECT_FALSE(why.empty()) << c.what;
    std::remove(p.c_str());
  }
  EXPECT_FALSE(read_golden("/nonexistent/ctfuse.bin", &g, &error));
}

TEST(GoldenReader, ListsOnlyBinFilesSorted) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("ctfuse_test_dir_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  for (const char* name : {"b.bin", "a.bin", "notes.txt"}) std::ofstream(dir / name) << "x";
  const std::vector<std::string> files = list_golden_files(dir.string());
  EXPECT_EQ(files, (std::vector<std::string>{(dir / "a.bin").string(), (dir / "b.bin").string()}));
  std::filesystem::remove_all(dir);
  EXPECT_TRUE(list_golden_files(dir.string()).empty());
}

TEST(GoldenReader, GoldenDirHonoursEnvironmentThenExecutableDir) {
  const char* old = std::getenv("CTFUSE_GOLDEN_DIR");
  const std::string saved = old ? old : "";
  ::setenv("CTFUSE_GOLDEN_DIR", "/some/where", 1);
  EXPECT_EQ(golden_dir(), "/some/where");
  ::unsetenv("CTFUSE_GOLDEN_DIR");
  const std::string exe_dir = std::filesystem::read_symlink("/proc/self/exe").parent_path().string();
  EXPECT_EQ(golden_dir(), exe_dir + "/golden");
  if (old) ::setenv("CTFUSE_GOLDEN_DIR", saved.c_str(), 1);
}

}  // namespace
}  // namespace ctfuse
