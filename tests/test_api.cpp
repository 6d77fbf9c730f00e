// CPU tests (run on CI): the shape helper, argument validation of every entry point,
// and the 4090 limits of every tuning-table entry.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "ctfuse/ctfuse.h"
#include "implicit_gemm_policy.h"
#include "postop_policy.h"

namespace ctfuse {
namespace {

ConvTranspose2dParams benchmark_params() {
  ConvTranspose2dParams p;
  p.N = 16; p.C_in = 64; p.C_out = 128; p.H_in = 128; p.W_in = 128;
  p.kernel_h = p.kernel_w = 3;
  p.stride_h = p.stride_w = 2;
  p.pad_h = p.pad_w = 1;
  p.output_pad_h = p.output_pad_w = 1;
  return p;
}

TEST(Shape, BenchmarkConfiguration) {
  int64_t H = 0, W = 0;
  ASSERT_TRUE(conv_transpose2d_output_hw(benchmark_params(), &H, &W).ok());
  EXPECT_EQ(H, 256);
  EXPECT_EQ(W, 256);
}

TEST(Shape, NonSquareDilatedCropping) {
  ConvTranspose2dParams p;
  p.H_in = 5; p.W_in = 7;
  p.kernel_h = 3; p.kernel_w = 2;
  p.stride_h = 3; p.stride_w = 1;
  p.pad_h = 2; p.pad_w = 0;
  p.output_pad_h = 2;
  p.dilation_h = 1; p.dilation_w = 2;
  int64_t H = 0, W = 0;
  ASSERT_TRUE(conv_transpose2d_output_hw(p, &H, &W).ok());
  EXPECT_EQ(H, (5 - 1) * 3 - 4 + 2 + 2 + 1);  // 13
  EXPECT_EQ(W, (7 - 1) * 1 + 2 * 1 + 1);      // 9
}

TEST(Shape, OutputPaddingMayReachDilation) {
  ConvTranspose2dParams p;
  p.H_in = p.W_in = 4;
  p.kernel_h = p.kernel_w = 3;
  p.dilation_h = p.dilation_w = 3;
  p.output_pad_h = p.output_pad_w = 2;  // < max(stride 1, dilation 3): PyTorch accepts it
  EXPECT_TRUE(conv_transpose2d_output_hw(p, nullptr, nullptr).ok());
}

struct BadParams {
  const char* what;
  void (*mutate)(ConvTranspose2dParams&);
  const char* names;  // the message must mention this
};

// Every class of invalid parameter (kInvalidArgument from every entry point).
const BadParams kBadParams[] = {
    {"N = 0", [](ConvTranspose2dParams& p) { p.N = 0; }, "N"},
    {"N < 0", [](ConvTranspose2dParams& p) { p.N = -4; }, "N"},
    {"N > 2^31", [](ConvTranspose2dParams& p) { p.N = (int64_t(1) << 31) + 1; }, "N"},
    {"C_in < 0", [](ConvTranspose2dParams& p) { p.C_in = -3; }, "C_in"},
    {"C_in = 0", [](ConvTranspose2dParams& p) { p.C_in = 0; }, "C_in"},
    {"C_out = 0", [](ConvTranspose2dParams& p) { p.C_out = 0; }, "C_out"},
    {"C_out < 0", [](ConvTranspose2dParams& p) { p.C_out = -128; }, "C_out"},
    {"H_in = 0", [](ConvTranspose2dParams& p) { p.H_in = 0; }, "H_in"},
    {"H_in > 2^31", [](ConvTranspose2dParams& p) { p.H_in = int64_t(1) << 40; }, "H_in"},
    {"W_in < 0", [](ConvTranspose2dParams& p) { p.W_in = -1; }, "W_in"},
    {"kernel_h = 0", [](ConvTranspose2dParams& p) { p.kernel_h = 0; }, "kernel_h"},
    {"kernel_h < 0", [](ConvTranspose2dParams& p) { p.kernel_h = -3; }, "kernel_h"},
    {"kernel_w < 0", [](ConvTranspose2dParams& p) { p.kernel_w = -2; }, "kernel_w"},
    {"kernel_w > 1024", [](ConvTranspose2dParams& p) { p.kernel_w = 1025; }, "kernel_w"},
    {"stride_h = 0", [](ConvTranspose2dParams& p) { p.stride_h = 0; }, "stride_h"},
    {"stride_h < 0", [](ConvTranspose2dParams& p) { p.stride_h = -2; }, "stride_h"},
    {"stride_w < 0", [](ConvTranspose2dParams& p) { p.stride_w = -1; }, "stride_w"},
    {"stride_w > 1024", [](ConvTranspose2dParams& p) { p.stride_w = 4096; }, "stride_w"},
    {"dilation_h = 0", [](ConvTranspose2dParams& p) { p.dilation_h = 0; }, "dilation_h"},
    {"dilation_h < 0", [](ConvTranspose2dParams& p) { p.dilation_h = -1; }, "dilation_h"},
    {"dilation_w = 0", [](ConvTranspose2dParams& p) { p.dilation_w = 0; }, "dilation_w"},
    {"dilation_w > 1024", [](ConvTranspose2dParams& p) { p.dilation_w = 2000; }, "dilation_w"},
    {"pad_h < 0", [](ConvTranspose2dParams& p) { p.pad_h = -1; }, "pad_h"},
    {"pad_w < 0", [](ConvTranspose2dParams& p) { p.pad_w = -1; }, "pad_w"},
    {"pad_w > 2^31", [](ConvTranspose2dParams& p) { p.pad_w = int64_t(1) << 33; }, "pad_w"},
    {"output_pad_h = stride", [](ConvTranspose2dParams& p) { p.output_pad_h = 2; }, "output_pad_h"},
    {"output_pad_h < 0", [](ConvTranspose2dParams& p) { p.output_pad_h = -1; }, "output_pad_h"},
    {"output_pad_w < 0", [](ConvTranspose2dParams& p) { p.output_pad_w = -1; }, "output_pad_w"},
    {"output_pad_w > stride", [](ConvTranspose2dParams& p) { p.output_pad_w = 5; }, "output_pad_w"},
    {"output_pad_h = dilation > stride",
     [](ConvTranspose2dParams& p) { p.dilation_h = 3; p.output_pad_h = 3; }, "output_pad_h"},
    {"H_out <= 0", [](ConvTranspose2dParams& p) { p.H_in = 1; p.pad_h = 5; }, "H_out"},
    {"W_out <= 0", [](ConvTranspose2dParams& p) { p.W_in = 2; p.pad_w = 3; p.kernel_w = 1; }, "W_out"},
    {"H_out > 2^31", [](ConvTranspose2dParams& p) { p.H_in = int64_t(1) << 31; }, "H_out"},
};

// Valid by PyTorch's rules but beyond what the kernels index (kUnsupported, never a wrapped
// size): every size-taking entry point but the shape helper refuses them.
const BadParams kUnsupportedParams[] = {
    {"N = 2^31", [](ConvTranspose2dParams& p) { p.N = int64_t(1) << 31; }, "N"},
    {"C_out near 2^31", [](ConvTranspose2dParams& p) { p.C_out = (int64_t(1) << 31) - 100; }, "C_out"},
    // H_in itself past int, cropped back to a small H_out by the padding.
    {"H_in = 2^31, small H_out",
     [](ConvTranspose2dParams& p) { p.H_in = int64_t(1) << 31; p.stride_h = 1; p.output_pad_h = 0;
                                    p.pad_h = (int64_t(1) << 30) - 2; }, "H_in"},
    {"W_in = 2^31 - 1000, small W_out",
     [](ConvTranspose2dParams& p) { p.W_in = (int64_t(1) << 31) - 1000; p.stride_w = 1; p.output_pad_w = 0;
                                    p.pad_w = (int64_t(1) << 30) - 502; }, "W_in"},
    {"pad_h = 2^30", [](ConvTranspose2dParams& p) { p.pad_h = int64_t(1) << 30; p.H_in = int64_t(1) << 30; }, "pad_h"},
    {"x over 2^56 elements",
     [](ConvTranspose2dParams& p) { p.N = int64_t(1) << 30; p.C_in = int64_t(1) << 30; }, "x has"},
};

TEST(Shape, RejectsEveryBadParameter) {
  for (const BadParams& b : kBadParams) {
    SCOPED_TRACE(b.what);
    ConvTranspose2dParams p = benchmark_params();
    b.mutate(p);
    int64_t H = -7, W = -7;
    const Status st = conv_transpose2d_output_hw(p, &H, &W);
    EXPECT_EQ(st.code, StatusCode::kInvalidArgument);
    EXPECT_NE(std::strstr(st.message, b.names), nullptr) << st.message;
    EXPECT_EQ(H, -7);  // outputs untouched on failure
    EXPECT_EQ(W, -7);
  }
}

// The size queries and mainloop_in_use: a status naming the parameter, the output untouched.
void expect_queries_refuse(const ConvTranspose2dParams& p, StatusCode code, const char* names) {
  for (MathMode math : {MathMode::kTF32, MathMode::kFP32}) {
    size_t bytes = 12345;
    Status st = conv_transpose2d_workspace_size(p, math, &bytes);
    EXPECT_EQ(st.code, code) << "conv_transpose2d_workspace_size: " << st.message;
    EXPECT_NE(std::strstr(st.message, names), nullptr) << st.message;
    for (Path path : {Path::kAuto, Path::kFused, Path::kUnfused}) {
      st = forward_workspace_size(p, 3, ForwardOptions{math, GeluMode::kErf, path}, &bytes);
      EXPECT_EQ(st.code, code) << "forward_workspace_size: " << st.message;
      EXPECT_NE(std::strstr(st.message, names), nullptr) << st.message;
    }
    EXPECT_EQ(bytes, 12345u);
    for (MainloopKind kind : {MainloopKind::kAuto, MainloopKind::kPortable}) {
      const char* name = "unchanged";
      st = mainloop_in_use(p, math, kind, &name);
      EXPECT_EQ(st.code, code) << "mainloop_in_use: " << st.message;
      EXPECT_NE(std::strstr(st.message, names), nullptr) << st.message;
      EXPECT_STREQ(name, "unchanged");
    }
  }
}

TEST(Shape, EverySizeQueryRejectsEveryBadParameter) {
  for (const BadParams& b : kBadParams) {
    SCOPED_TRACE(b.what);
    ConvTranspose2dParams p = benchmark_params();
    b.mutate(p);
    expect_queries_refuse(p, StatusCode::kInvalidArgument, b.names);
  }
}

TEST(Shape, SizesBeyondTheKernelsAreUnsupportedNotWrapped) {
  for (const BadParams& b : kUnsupportedParams) {
    SCOPED_TRACE(b.what);
    ConvTranspose2dParams p = benchmark_params();
    b.mutate(p);
    ASSERT_TRUE(conv_transpose2d_output_hw(p, nullptr, nullptr).ok()) << "the case must be a valid shape";
    expect_queries_refuse(p, StatusCode::kUnsupported, b.names);
  }
}

// The post-op rejects bad arguments before touching memory, so host buffers can stand
// in for device ones here: they must come back unchanged.
class PostOpValidation : public ::testing::Test {
 protected:
  std::vector<float> y = std::vector<float>(2 * 3 * 4 * 5, 1.0f);
  std::vector<float> bias = std::vector<float>(3, 0.5f);
  std::vector<float> out = std::vector<float>(2 * 3 * 5, -123.0f);
  std::vector<float> s = std::vector<float>(2 * 5, -456.0f);
  Tensor4d d = make_nchw(2, 3, 4, 5);

  void expect_rejected(const Status& st, const char* names) {
    EXPECT_EQ(st.code, StatusCode::kInvalidArgument);
    EXPECT_NE(std::strstr(st.message, names), nullptr) << st.message;
    for (float v : out) ASSERT_EQ(v, -123.0f);
    for (float v : s) ASSERT_EQ(v, -456.0f);
  }
  Status call(const float* yp, const Tensor4d& desc, const float* b, int64_t blen, GeluMode g,
              float* o, float* sp) {
    return min_sum_gelu_bias(yp, desc, b, blen, g, o, sp, nullptr);
  }
};

TEST_F(PostOpValidation, NullPointers) {
  expect_rejected(call(nullptr, d, bias.data(), 3, GeluMode::kErf, out.data(), s.data()), "y is null");
  expect_rejected(call(y.data(), d, nullptr, 3, GeluMode::kErf, out.data(), s.data()), "bias is null");
  expect_rejected(call(y.data(), d, bias.data(), 3, GeluMode::kErf, nullptr, s.data()), "out is null");
}

TEST_F(PostOpValidation, BadSizesAndStrides) {
  for (int dim = 0; dim < 4; ++dim) {
    Tensor4d bad = d;
    bad.size[dim] = dim % 2 ? 0 : -1;
    expect_rejected(call(y.data(), bad, bias.data(), 3, GeluMode::kErf, out.data(), s.data()), "y_desc.size");
  }
  Tensor4d neg = d;
  neg.stride[2] = -5;
  expect_rejected(call(y.data(), neg, bias.data(), 3, GeluMode::kErf, out.data(), s.data()), "y_desc.stride");
  Tensor4d overlap = d;
  overlap.stride[1] = 1;  // C and W both step by one element
  expect_rejected(call(y.data(), overlap, bias.data(), 3, GeluMode::kErf, out.data(), s.data()), "overlap");
  Tensor4d huge = d;
  huge.stride[0] = int64_t{1} << 62;
  expect_rejected(call(y.data(), huge, bias.data(), 3, GeluMode::kErf, out.data(), s.data()), "y_desc");
}

TEST_F(PostOpValidation, BadBiasGeluAndAlignment) {
  expect_rejected(call(y.data(), d, bias.data(), 0, GeluMode::kErf, out.data(), s.data()), "bias_len");
  expect_rejected(call(y.data(), d, bias.data(), 3, static_cast<GeluMode>(7), out.data(), s.data()), "gelu");
  const float* misaligned = reinterpret_cast<const float*>(reinterpret_cast<const char*>(y.data()) + 2);
  expect_rejected(call(misaligned, d, bias.data(), 3, GeluMode::kErf, out.data(), s.data()), "aligned");
}

// forward and conv_transpose2d check everything before queueing work; host buffers stand
// in for device ones and must come back unchanged.
class ConvValidation : public ::testing::Test {
 protected:
  ConvTranspose2dParams p = benchmark_params();
  std::vector<float> x = std::vector<float>(64, 1.0f), w = std::vector<float>(64, 1.0f);
  std::vector<float> cb = std::vector<float>(8, 0.0f), bias = std::vector<float>(4, 0.0f);
  std::vector<float> out = std::vector<float>(64, -123.0f), s = std::vector<float>(64, -456.0f);
  std::vector<float> y = std::vector<float>(64, -789.0f);
  alignas(16) char ws[256] = {};
  ForwardOptions opt;

  void expect_untouched() {
    for (float v : out) ASSERT_EQ(v, -123.0f);
    for (float v : s) ASSERT_EQ(v, -456.0f);
    for (float v : y) ASSERT_EQ(v, -789.0f);
  }
  Status fwd(const ConvTranspose2dParams& pp, const float* xp, const float* wp, const float* bp, int64_t blen,
             const ForwardOptions& o, float* op, void* wsp, size_t ws_bytes) {
    return forward(pp, xp, wp, cb.data(), bp, blen, o, op, s.data(), wsp, ws_bytes, nullptr);
  }
};

TEST_F(ConvValidation, ForwardRejectsBadArguments) {
  size_t need = 0;
  ASSERT_TRUE(forward_workspace_size(p, 1, opt, &need).ok());
  ASSERT_GT(need, sizeof(ws));  // the benchmark needs far more than this buffer
  struct Case {
    const char* what;
    Status st;
    const char* names;
  };
  ConvTranspose2dParams bad = p;
  bad.stride_h = 0;
  ForwardOptions bad_math = opt;
  bad_math.math = static_cast<MathMode>(9);
  ForwardOptions bad_path = opt;
  bad_path.path = static_cast<Path>(5);
  ForwardOptions bad_mainloop = opt;
  bad_mainloop.mainloop = static_cast<MainloopKind>(4);
  ForwardOptions bad_gelu = opt;
  bad_gelu.gelu = static_cast<GeluMode>(2);
  const float* misaligned = reinterpret_cast<const float*>(reinterpret_cast<const char*>(x.data()) + 1);
  float* misaligned_out = reinterpret_cast<float*>(reinterpret_cast<char*>(y.data()) + 2);
  const Case cases[] = {
      {"bad params", fwd(bad, x.data(), w.data(), bias.data(), 1, opt, out.data(), ws, need), "stride_h"},
      {"null x", fwd(p, nullptr, w.data(), bias.data(), 1, opt, out.data(), ws, need), "x is null"},
      {"null weight", fwd(p, x.data(), nullptr, bias.data(), 1, opt, out.data(), ws, need), "weight is null"},
      {"null bias", fwd(p, x.data(), w.data(), nullptr, 1, opt, out.data(), ws, need), "bias is null"},
      {"null out", fwd(p, x.data(), w.data(), bias.data(), 1, opt, nullptr, ws, need), "out is null"},
      {"bias_len 0", fwd(p, x.data(), w.data(), bias.data(), 0, opt, out.data(), ws, need), "bias_len"},
      {"math", fwd(p, x.data(), w.data(), bias.data(), 1, bad_math, out.data(), ws, need), "options.math"},
      {"path", fwd(p, x.data(), w.data(), bias.data(), 1, bad_path, out.data(), ws, need), "options.path"},
      {"mainloop", fwd(p, x.data(), w.data(), bias.data(), 1, bad_mainloop, out.data(), ws, need), "options.mainloop"},
      {"gelu", fwd(p, x.data(), w.data(), bias.data(), 1, bad_gelu, out.data(), ws, need), "options.gelu"},
      {"bias_len < 0", fwd(p, x.data(), w.data(), bias.data(), -2, opt, out.data(), ws, need), "bias_len"},
      {"bias_len huge", fwd(p, x.data(), w.data(), bias.data(), int64_t(1) << 40, opt, out.data(), ws, need),
       "bias_len"},
      {"misaligned x", fwd(p, misaligned, w.data(), bias.data(), 1, opt, out.data(), ws, need), "x is not 4-byte"},
      {"misaligned weight", fwd(p, x.data(), misaligned, bias.data(), 1, opt, out.data(), ws, need),
       "weight is not 4-byte"},
      {"misaligned bias", fwd(p, x.data(), w.data(), misaligned, 1, opt, out.data(), ws, need), "bias is not 4-byte"},
      {"misaligned out", fwd(p, x.data(), w.data(), bias.data(), 1, opt, misaligned_out, ws, need),
       "out is not 4-byte"},
      {"misaligned conv_bias", forward(p, x.data(), w.data(), misaligned, bias.data(), 1, opt, out.data(), s.data(),
                                       ws, need, nullptr), "conv_bias is not 4-byte"},
      {"misaligned s", forward(p, x.data(), w.data(), cb.data(), bias.data(), 1, opt, out.data(), misaligned_out, ws,
                               need, nullptr), "s is not 4-byte"},
      {"null workspace", fwd(p, x.data(), w.data(), bias.data(), 1, opt, out.data(), nullptr, need), "workspace is null"},
      {"small workspace", fwd(p, x.data(), w.data(), bias.data(), 1, opt, out.data(), ws, need - 1), "workspace_bytes"},
      {"misaligned workspace", fwd(p, x.data(), w.data(), bias.data(), 1, opt, out.data(), ws + 4, need), "16-byte"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    EXPECT_EQ(c.st.code, StatusCode::kInvalidArgument);
    EXPECT_NE(std::strstr(c.st.message, c.names), nullptr) << c.st.message;
  }
  expect_untouched();
}

TEST_F(ConvValidation, ConvTranspose2dRejectsBadArguments) {
  size_t need = 0;
  ASSERT_TRUE(conv_transpose2d_workspace_size(p, MathMode::kTF32, &need).ok());
  ASSERT_GT(need, sizeof(ws));
  auto conv = [&](const float* xp, const float* wp, const float* cbp, float* yp, MathMode m, void* wsp, size_t bytes,
                  MainloopKind kind = MainloopKind::kAuto) {
    return conv_transpose2d(p, xp, wp, cbp, yp, m, wsp, bytes, nullptr, kind);
  };
  const float* misaligned = reinterpret_cast<const float*>(reinterpret_cast<const char*>(x.data()) + 1);
  float* misaligned_y = reinterpret_cast<float*>(reinterpret_cast<char*>(y.data()) + 2);
  ConvTranspose2dParams bad = p;
  bad.output_pad_w = 2;
  const float *xd = x.data(), *wd = w.data(), *cbd = cb.data();
  float* yd = y.data();
  const MathMode tf32 = MathMode::kTF32;
  struct Case {
    const char* what;
    Status st;
    const char* names;
  };
  const Case cases[] = {
      {"bad params", conv_transpose2d(bad, xd, wd, cbd, yd, tf32, ws, need, nullptr), "output_pad_w"},
      {"null x", conv(nullptr, wd, cbd, yd, tf32, ws, need), "x is null"},
      {"null weight", conv(xd, nullptr, cbd, yd, tf32, ws, need), "weight is null"},
      {"null y", conv(xd, wd, cbd, nullptr, tf32, ws, need), "y is null"},
      {"math", conv(xd, wd, cbd, yd, static_cast<MathMode>(3), ws, need), "math"},
      {"mainloop", conv(xd, wd, cbd, yd, tf32, ws, need, static_cast<MainloopKind>(2)), "mainloop"},
      {"misaligned x", conv(misaligned, wd, cbd, yd, tf32, ws, need), "x is not 4-byte"},
      {"misaligned weight", conv(xd, misaligned, cbd, yd, tf32, ws, need), "weight is not 4-byte"},
      {"misaligned conv_bias", conv(xd, wd, misaligned, yd, tf32, ws, need), "conv_bias is not 4-byte"},
      {"misaligned y", conv(xd, wd, cbd, misaligned_y, tf32, ws, need), "y is not 4-byte"},
      {"null workspace", conv(xd, wd, cbd, yd, tf32, nullptr, need), "workspace is null"},
      {"small workspace", conv(xd, wd, cbd, yd, tf32, ws, need - 1), "workspace_bytes"},
      {"misaligned workspace", conv(xd, wd, cbd, yd, tf32, ws + 8, need), "16-byte"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    EXPECT_EQ(c.st.code, StatusCode::kInvalidArgument);
    EXPECT_NE(std::strstr(c.st.message, c.names), nullptr) << c.st.message;
  }
  expect_untouched();
}

// Every bad parameter reaches the two launching entry points too.
TEST_F(ConvValidation, LaunchingEntryPointsRejectEveryBadParameter) {
  for (const BadParams& b : kBadParams) {
    SCOPED_TRACE(b.what);
    ConvTranspose2dParams bad = p;
    b.mutate(bad);
    Status st = conv_transpose2d(bad, x.data(), w.data(), cb.data(), y.data(), MathMode::kTF32, ws, sizeof(ws),
                                 nullptr);
    EXPECT_EQ(st.code, StatusCode::kInvalidArgument);
    EXPECT_NE(std::strstr(st.message, b.names), nullptr) << st.message;
    st = fwd(bad, x.data(), w.data(), bias.data(), 1, opt, out.data(), ws, sizeof(ws));
    EXPECT_EQ(st.code, StatusCode::kInvalidArgument);
    EXPECT_NE(std::strstr(st.message, b.names), nullptr) << st.message;
  }
  for (const BadParams& b : kUnsupportedParams) {
    SCOPED_TRACE(b.what);
    ConvTranspose2dParams bad = p;
    b.mutate(bad);
    EXPECT_EQ(conv_transpose2d(bad, x.data(), w.data(), cb.data(), y.data(), MathMode::kTF32, ws, sizeof(ws),
                               nullptr).code, StatusCode::kUnsupported);
    EXPECT_EQ(fwd(bad, x.data(), w.data(), bias.data(), 1, opt, out.data(), ws, sizeof(ws)).code,
              StatusCode::kUnsupported);
  }
  expect_untouched();
}

TEST(Workspace, SizeQueriesCheckTheirOwnArguments) {
  const ConvTranspose2dParams p = benchmark_params();
  size_t bytes = 99;
  EXPECT_EQ(conv_transpose2d_workspace_size(p, MathMode::kTF32, nullptr).code, StatusCode::kInvalidArgument);
  Status st = conv_transpose2d_workspace_size(p, static_cast<MathMode>(2), &bytes);
  EXPECT_EQ(st.code, StatusCode::kInvalidArgument);
  EXPECT_NE(std::strstr(st.message, "math"), nullptr) << st.message;
  EXPECT_EQ(forward_workspace_size(p, 1, ForwardOptions{}, nullptr).code, StatusCode::kInvalidArgument);
  st = forward_workspace_size(p, 0, ForwardOptions{}, &bytes);
  EXPECT_NE(std::strstr(st.message, "bias_len"), nullptr) << st.message;
  ForwardOptions o;
  o.gelu = static_cast<GeluMode>(-1);
  st = forward_workspace_size(p, 1, o, &bytes);
  EXPECT_EQ(st.code, StatusCode::kInvalidArgument);
  EXPECT_NE(std::strstr(st.message, "options.gelu"), nullptr) << st.message;
  o = ForwardOptions{};
  o.path = static_cast<Path>(3);
  EXPECT_NE(std::strstr(forward_workspace_size(p, 1, o, &bytes).message, "options.path"), nullptr);
  EXPECT_EQ(bytes, 99u);
}

TEST(MainloopInUse, ChecksArgumentsAndNamesTheMainloop) {
  const ConvTranspose2dParams p = benchmark_params();
  const char* name = "unchanged";
  EXPECT_EQ(mainloop_in_use(p, MathMode::kTF32, MainloopKind::kAuto, nullptr).code, StatusCode::kInvalidArgument);
  EXPECT_EQ(mainloop_in_use(p, MathMode::kTF32, static_cast<MainloopKind>(3), &name).code, StatusCode::kInvalidArgument);
  EXPECT_EQ(mainloop_in_use(p, static_cast<MathMode>(3), MainloopKind::kAuto, &name).code, StatusCode::kInvalidArgument);
  EXPECT_STREQ(name, "unchanged");
  // No device needed: these never run on wgmma (kAuto asks the device: see
  // Mainloop.WgmmaWhereBuiltAndSupported).
  for (MathMode math : {MathMode::kTF32, MathMode::kFP32}) {
    name = "unchanged";
    ASSERT_TRUE(mainloop_in_use(p, math, MainloopKind::kPortable, &name).ok());
    EXPECT_STREQ(name, "mma.sync");
  }
}

TEST(Workspace, HugeProblemsAreUnsupportedNotWrapped) {
  ConvTranspose2dParams p = benchmark_params();
  p.C_in = p.C_out = int64_t(1) << 30;  // weight would have 2^60 * 9 elements
  size_t bytes = 7;
  const Status st = forward_workspace_size(p, 1, ForwardOptions{}, &bytes);
  EXPECT_EQ(st.code, StatusCode::kUnsupported);
  EXPECT_NE(std::strstr(st.message, "weight"), nullptr) << st.message;
  EXPECT_EQ(bytes, 7u);
  p = benchmark_params();
  p.N = 256;
  p.H_in = p.W_in = int64_t(1) << 20;  // x: 2^54 elements, fine; y: 2^57, too many
  const Status sy = conv_transpose2d_workspace_size(p, MathMode::kTF32, &bytes);
  EXPECT_EQ(sy.code, StatusCode::kUnsupported);
  EXPECT_NE(std::strstr(sy.message, "y has"), nullptr) << sy.message;
}

TEST(Workspace, SizesAreSmallForFusedAndHoldYForUnfused) {
  const ConvTranspose2dParams p = benchmark_params();
  size_t fused = 0, unfused = 0, conv = 0;
  ASSERT_TRUE(forward_workspace_size(p, 1, ForwardOptions{}, &fused).ok());
  ASSERT_TRUE(forward_workspace_size(p, 1, ForwardOptions{MathMode::kTF32, GeluMode::kErf, Path::kUnfused}, &unfused).ok());
  ASSERT_TRUE(conv_transpose2d_workspace_size(p, MathMode::kTF32, &conv).ok());
  EXPECT_LT(fused, size_t(2) << 20);                     // packed weights + per-tile column sums
  EXPECT_GE(unfused, size_t(16) * 128 * 256 * 256 * 4);  // y itself
  EXPECT_LT(conv, size_t(1) << 20);
}

TEST(Status, CodeNames) {
  EXPECT_STREQ(status_code_name(StatusCode::kSuccess), "success");
  EXPECT_STREQ(status_code_name(StatusCode::kInvalidArgument), "invalid argument");
  EXPECT_STREQ(status_code_name(StatusCode::kUnsupported), "unsupported");
  EXPECT_STREQ(status_code_name(StatusCode::kCudaError), "CUDA error");
}

// Every tuning entry must fit the RTX 4090 (sm_89): <= 99 KB shared memory per block,
// <= 1024 threads per block, and at least one block resident within 100 KB and 1536
// threads per SM.
constexpr size_t k4090SmemPerBlock = 99 * 1024;
constexpr int k4090ThreadsPerSm = 1536;

template <typename P>
void expect_fits_4090(const char* name) {
  SCOPED_TRACE(name);
  EXPECT_LE(P::smem_bytes(), k4090SmemPerBlock);
  EXPECT_LE(P::threads(), 1024);
  EXPECT_LE(P::threads(), k4090ThreadsPerSm);
  EXPECT_EQ(P::threads() % 32, 0);
}

TEST(TuningTable, PostOpFits4090) {
  expect_fits_4090<PostOpW4>("PostOpW4");
  expect_fits_4090<PostOpW1>("PostOpW1");
  expect_fits_4090<PostOpC4>("PostOpC4");
  expect_fits_4090<PostOpC1>("PostOpC1");
  EXPECT_GE(PostOpW4::tile_w() * 4, 128) << "a W4 tile row should cover at least one 128-byte line";
}

// The implicit-GEMM table: mainloop stages plus the epilogue each entry serves, in the
// math modes it is used with (with_gemm_config in src/convt_dispatch.h).
template <typename P>
void expect_gemm_fits_4090(const char* name, MathMode math, EpilogueKind epi) {
  SCOPED_TRACE(name);
  EXPECT_LE(gemm_smem_bytes<P>(math, epi) + max_halo_smem_bytes<P>(), k4090SmemPerBlock);
  EXPECT_LE(block_threads<P>(), 1024);
  EXPECT_EQ(P::BM % 32, 0);
}

template <EpilogueKind kEpi>
void expect_table_fits_4090() {
  using T = GemmTable<kEpi>;
  SCOPED_TRACE(kEpi == EpilogueKind::kStore ? "store epilogue" : "min/sum epilogue");
  expect_gemm_fits_4090<typename T::TF32Wide>("TF32Wide", MathMode::kTF32, kEpi);
  expect_gemm_fits_4090<typename T::TF32WideHalo>("TF32WideHalo", MathMode::kTF32, kEpi);
  expect_gemm_fits_4090<typename T::TF32Narrow>("TF32Narrow", MathMode::kTF32, kEpi);
  expect_gemm_fits_4090<typename T::FP32Wide>("FP32Wide", MathMode::kFP32, kEpi);
  expect_gemm_fits_4090<typename T::FP32Narrow>("FP32Narrow", MathMode::kFP32, kEpi);
  // sm_90 only, but kept to the same limits.
  expect_gemm_fits_4090<typename T::TF32Wgmma>("TF32Wgmma", MathMode::kTF32, kEpi);
  expect_gemm_fits_4090<typename T::TF32WgmmaTma>("TF32WgmmaTma", MathMode::kTF32, kEpi);
  expect_gemm_fits_4090<typename T::TF32WgmmaTmaPairs>("TF32WgmmaTmaPairs", MathMode::kTF32, kEpi);
  expect_gemm_fits_4090<typename T::FP32Wgmma>("FP32Wgmma", MathMode::kFP32, kEpi);
  expect_gemm_fits_4090<typename T::FP32WgmmaTma>("FP32WgmmaTma", MathMode::kFP32, kEpi);
}

TEST(TuningTable, ImplicitGemmFits4090) {
  expect_table_fits_4090<EpilogueKind::kStore>();
  expect_table_fits_4090<EpilogueKind::kMinSum>();
}

}  // namespace
}  // namespace ctfuse
