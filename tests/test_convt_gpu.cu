// GPU tests of ctfuse::conv_transpose2d against the float64 scatter-form reference:
// named edge cases plus fresh random problems each run, both math modes, every element
// of y checked (normwise bound and the a-priori elementwise bound of SPEC.md), y
// poisoned before each run; and the PyTorch golden files.
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "conv_cases.h"
#include "convt_dispatch.h"
#include "ctfuse/ctfuse.h"
#include "implicit_gemm.cuh"
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

// y is written `y_offset` floats into its buffer (to take y's alignment away), with
// `y_offset` poisoned floats before and after it, which must stay untouched.
ConvResult run_conv(const ConvTranspose2dParams& p, const std::vector<float>& x, const std::vector<float>& w,
                    const std::vector<float>& cb, MathMode math, MainloopKind mainloop, int y_offset = 0) {
  int64_t H = 0, W = 0;
  conv_transpose2d_output_hw(p, &H, &W);
  size_t ws_bytes = 0;
  ConvResult r;
  r.st = conv_transpose2d_workspace_size(p, math, &ws_bytes);
  if (!r.st.ok()) return r;
  const size_t count = size_t(p.N * p.C_out * H * W);
  DeviceBuffer<float> dx(x), dw(w), dcb(cb), dy(count + 2 * y_offset);
  DeviceBuffer<char> ws(ws_bytes);
  dy.fill(testing::poison_value());
  r.st = conv_transpose2d(p, dx.get(), dw.get(), cb.empty() ? nullptr : dcb.get(), dy.get() + y_offset, math,
                          ws.get(), ws_bytes, nullptr, mainloop);
  const cudaError_t e = cudaDeviceSynchronize();
  if (r.st.ok() && e != cudaSuccess) r.st = Status{StatusCode::kCudaError, cudaGetErrorString(e), e};
  const std::vector<float> all = dy.download();
  for (int i = 0; i < y_offset; ++i) {
    EXPECT_TRUE(testing::is_poison(all[i])) << "written before y: " << i;
    EXPECT_TRUE(testing::is_poison(all[y_offset + count + i])) << "written after y: " << i;
  }
  r.y.assign(all.begin() + y_offset, all.begin() + y_offset + count);
  return r;
}

// Normwise and a-priori elementwise checks of y; `unit` is the per-product error unit.
void check_y(const ConvTranspose2dParams& p, const std::vector<float>& x, const std::vector<float>& w,
             const std::vector<float>& cb, MathMode math, MainloopKind mainloop, int y_offset = 0) {
  const ConvResult r = run_conv(p, x, w, cb, math, mainloop, y_offset);
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
  MainloopKind mainloop;
};

using testing::mode_name;

std::vector<ConvCase> all_cases() {
  std::vector<ConvCase> cases;
  std::vector<ConvTranspose2dParams> ps = testing::edge_cases();
  const std::vector<ConvTranspose2dParams> rnd = testing::random_cases(testing::test_seed() ^ 0xc0ffee, 16);
  ps.insert(ps.end(), rnd.begin(), rnd.end());
  // Both math modes run on both mainloops (they differ on sm_90: wgmma and mma.sync).
  for (size_t i = 0; i < ps.size(); ++i)
    for (MathMode math : {MathMode::kTF32, MathMode::kFP32})
      for (MainloopKind mainloop : {MainloopKind::kAuto, MainloopKind::kPortable})
        cases.push_back({ps[i], math, i % 5 != 3, mainloop});
  return cases;
}

// gtest prints parameters with this (instead of raw bytes).
void PrintTo(const ConvCase& c, std::ostream* os) {
  *os << testing::describe(c.p) << " " << mode_name(c.math, c.mainloop) << (c.with_bias ? " +bias" : "");
}

class ConvT : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvT, MatchesFloat64Reference) {
  CTFUSE_REQUIRE_GPU();
  const ConvCase& c = GetParam();
  const uint64_t seed = testing::test_seed() ^ std::hash<std::string>{}(testing::describe(c.p));
  SCOPED_TRACE(testing::describe(c.p) + " " + mode_name(c.math, c.mainloop) + " seed=" + std::to_string(seed));
  const testing::ProblemData d = testing::make_data(c.p, 1, seed, false);
  check_y(c.p, d.x, d.weight, c.with_bias ? d.conv_bias : std::vector<float>{}, c.math, c.mainloop);
}

INSTANTIATE_TEST_SUITE_P(Problems, ConvT, ::testing::ValuesIn(all_cases()),
                         [](const ::testing::TestParamInfo<ConvCase>& info) {
                           return std::to_string(info.index) + "_" +
                                  testing::mode_test_name(info.param.math, info.param.mainloop);
                         });

// The PyTorch golden files: y to the TF32/FP32 bounds, NaN/Inf where PyTorch has them.
TEST(ConvTGolden, MatchesPyTorch) {
  CTFUSE_REQUIRE_GPU();
  const std::vector<std::string> files = ref::list_golden_files(ref::golden_dir());
  ASSERT_FALSE(files.empty());
  const std::pair<MathMode, MainloopKind> modes[] = {{MathMode::kTF32, MainloopKind::kAuto},
                                                     {MathMode::kTF32, MainloopKind::kPortable},
                                                     {MathMode::kFP32, MainloopKind::kAuto},
                                                     {MathMode::kFP32, MainloopKind::kPortable}};
  for (const std::string& f : files)
    for (const auto& [math, mainloop] : modes) {
      SCOPED_TRACE(f + " " + mode_name(math, mainloop));
      ref::GoldenCase g;
      std::string err;
      ASSERT_TRUE(ref::read_golden(f, &g, &err)) << err;
      const ConvResult r = run_conv(g.p, g.x, g.weight, g.conv_bias, math, mainloop);
      ASSERT_TRUE(r.st.ok()) << r.st.message;
      EXPECT_LE(ref::normwise_rel_error(r.y.data(), g.y.data(), g.y.size()), math == MathMode::kTF32 ? 2e-3 : 2e-6);
    }
}

// NaN and Inf weights where C_out > 64, on every mainloop: the implicit GEMM multiplies
// taps outside the input by zeros (0 * inf = NaN) where PyTorch skips them, so y must come
// from the definition (nonfinite_fallback.cuh), whichever kernel computed it first (the
// golden file's NaN weight has C_out = 6, which none of the wide kernels runs). On sm_90,
// W_in = 12 takes the warp-specialised column-pair kernel, W_in = 13 the cp.async-fed
// one; the portable mainloop is mma.sync.
TEST(ConvTNonfiniteWeights, EveryMainloopWritesYFromTheDefinition) {
  CTFUSE_REQUIRE_GPU();
  for (int64_t w_in : {12, 13})
    for (MathMode math : {MathMode::kTF32, MathMode::kFP32})
      for (MainloopKind mainloop : {MainloopKind::kAuto, MainloopKind::kPortable}) {
        const ConvTranspose2dParams p = testing::make_params(2, 24, 130, 7, w_in, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1);
        const uint64_t seed = testing::test_seed() ^ uint64_t(w_in);
        SCOPED_TRACE(testing::describe(p) + " " + mode_name(math, mainloop) + " seed=" + std::to_string(seed));
        testing::ProblemData d = testing::make_data(p, 1, seed, false);
        auto weight_at = [&](int64_t ci, int64_t co, int64_t kh, int64_t kw) -> float& {
          return d.weight[size_t(((ci * p.C_out + co) * p.kernel_h + kh) * p.kernel_w + kw)];
        };
        weight_at(3, 100, 0, 2) = std::nanf("");                              // a corner tap: border outputs skip it
        weight_at(5, 7, 1, 1) = std::numeric_limits<float>::infinity();       // the centre tap
        weight_at(20, 129, 2, 0) = -std::numeric_limits<float>::infinity();  // the last channel tile
        check_y(p, d.x, d.weight, d.conv_bias, math, mainloop);
      }
}

// The packed weight blocks (CPU-checkable, so CI runs this): every layout is a bijection
// of the BK x BN block (pairs: BK x 2 BN), and the wgmma one is exactly what the shared-memory descriptor of
// Mainloop::wgmma_stage describes: 8 x 16-byte core matrices, 128 bytes apart along K,
// 256 along N, one k8 slice after another.
template <typename P>
void expect_packing_is_a_bijection(const char* name) {
  SCOPED_TRACE(name);
  using PW = PackedWeights<P>;
  std::vector<int> seen(size_t(PW::kBlockFloats), 0);
  for (int k = 0; k < P::BK; ++k)
    for (int n = 0; n < P::kAccN; ++n) {
      const int off = PW::offset_in_block(k, n);
      ASSERT_TRUE(off >= 0 && off < PW::kBlockFloats) << "k=" << k << " n=" << n;
      ++seen[size_t(off)];
      if constexpr (P::kWgmma) {
        const uint32_t bytes = (k / 8) * PW::kWgmmaK8Bytes + (n / 8) * PW::kWgmmaNStrideBytes +
                               ((k % 8) / 4) * PW::kWgmmaKStrideBytes + (n % 8) * 16 + (k % 4) * 4;
        EXPECT_EQ(uint32_t(off) * 4, bytes) << "k=" << k << " n=" << n;
      }
    }
  for (int c : seen) EXPECT_EQ(c, 1);
}

template <EpilogueKind kEpi>
void expect_table_packings_are_bijections() {
  using T = GemmTable<kEpi>;
  SCOPED_TRACE(kEpi == EpilogueKind::kStore ? "store epilogue" : "min/sum epilogue");
  expect_packing_is_a_bijection<typename T::TF32Wide>("TF32Wide");
  expect_packing_is_a_bijection<typename T::TF32Narrow>("TF32Narrow");
  expect_packing_is_a_bijection<typename T::FP32Wide>("FP32Wide");
  expect_packing_is_a_bijection<typename T::FP32Narrow>("FP32Narrow");
  expect_packing_is_a_bijection<typename T::TF32Wgmma>("TF32Wgmma");
  expect_packing_is_a_bijection<typename T::TF32WgmmaTma>("TF32WgmmaTma");
  expect_packing_is_a_bijection<typename T::TF32WgmmaTmaPairs>("TF32WgmmaTmaPairs");
  expect_packing_is_a_bijection<typename T::FP32Wgmma>("FP32Wgmma");
  expect_packing_is_a_bijection<typename T::FP32WgmmaTma>("FP32WgmmaTma");
}

TEST(PackedWeights, LayoutsMatchTheirReaders) {
  expect_table_packings_are_bijections<EpilogueKind::kStore>();
  expect_table_packings_are_bijections<EpilogueKind::kMinSum>();
}

// The edge case meant to make a packing block take several slices of the weights does so
// for every table entry it can run on (CPU-checkable).
TEST(PackedWeights, AnEdgeCaseStridesThePackingGrid) {
  const ConvTranspose2dParams p = testing::edge_cases().back();
  ConvTGeometry g;
  ASSERT_TRUE(make_geometry(p, &g).ok());
  for (MathMode math : {MathMode::kTF32, MathMode::kFP32})
    for (MmaEngine e : {MmaEngine::kMmaSync, MmaEngine::kWgmma, MmaEngine::kWgmmaTma})
      for (EpilogueKind epi : {EpilogueKind::kStore, EpilogueKind::kMinSum})
        EXPECT_GT(with_gemm_config(g, math, e, epi, [&](auto c) { return pack_slices<typename decltype(c)::P>(g); }),
                  kMaxPackBlocks)
            << testing::describe(p);
}

// The halo feed's extent (tap_offsets; CPU-checkable): for many kernel, stride, padding
// and dilation values, the range it gives is exactly the range of the input offsets of
// every tap of every output residue, found by trying each tap.
TEST(HaloFeed, TapOffsetsSpanEveryTap) {
  for (int kernel = 1; kernel <= 7; ++kernel)
    for (int stride = 1; stride <= 4; ++stride)
      for (int dil = 1; dil <= 3; ++dil)
        for (int pad = 0; pad <= kernel; ++pad) {
          const ConvTranspose2dParams p = testing::make_params(1, 1, 1, 1, 8, 1, kernel, 1, stride, 0, pad, 0, 0, 1, dil);
          ConvTGeometry g{};
          if (!make_geometry(p, &g).ok()) continue;
          int lo = 1 << 30, hi = -(1 << 30);
          for (int rho = 0; rho < stride; ++rho)
            for (int k = 0; k < kernel; ++k)
              if (((rho + pad - k * dil) % stride + stride) % stride == 0) {
                const int d = (rho + pad - k * dil) / stride;  // exact
                lo = std::min(lo, d);
                hi = std::max(hi, d);
              }
          const TapOffsets t = tap_offsets_w(g);
          EXPECT_EQ(t.min, lo) << testing::describe(p);
          EXPECT_EQ(t.span, hi - lo) << testing::describe(p);
        }
}

// Which problems the portable min/sum mainloop runs on the halo feed: the benchmark's
// (a 5 x 33-pixel halo of 64 channels), not C_in > 64 nor a halo over kHaloMaxPixels;
// and the forward tests' edge cases reach both feeds (CPU-checkable).
TEST(HaloFeed, TakesTheProblemsItFits) {
  using P = GemmTable<EpilogueKind::kMinSum>::TF32WideHalo;
  ConvTGeometry g{};
  ASSERT_TRUE(make_geometry(testing::make_params(16, 64, 128, 128, 128, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1), &g).ok());
  EXPECT_TRUE(halo_fits<P>(g));
  const HaloShape h = halo_shape<P>(g);
  EXPECT_EQ(h.dih_min, 0); EXPECT_EQ(h.diw_min, 0); EXPECT_EQ(h.rows, 5); EXPECT_EQ(h.cols, 33);
  EXPECT_EQ(halo_smem_bytes<P>(g), size_t(5 * 33 * 64 * 4));
  ASSERT_TRUE(make_geometry(testing::make_params(1, 65, 128, 8, 8, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1), &g).ok());
  EXPECT_FALSE(halo_fits<P>(g));  // C_in > 64
  ASSERT_TRUE(make_geometry(testing::make_params(1, 8, 128, 8, 8, 5, 5, 1, 1, 2, 2, 0, 0, 1, 1), &g).ok());
  EXPECT_FALSE(halo_fits<P>(g));  // 8 x 36 pixels
  EXPECT_FALSE(halo_fits<GemmTable<EpilogueKind::kStore>::TF32WideHalo>(g));
  int halo = 0, copies = 0;
  for (const ConvTranspose2dParams& p : testing::edge_cases()) {
    if (p.C_out <= 64) continue;
    ASSERT_TRUE(make_geometry(p, &g).ok());
    (halo_fits<P>(g) ? halo : copies) += 1;
  }
  EXPECT_GE(halo, 10);
  EXPECT_GE(copies, 2);
}

// The column-pair table of stride_w = 2 (w_pair_entry; CPU-checkable): the benchmark's
// k = 3, pad 1 as worked out by hand, then for many kernel, padding and dilation values
// every tap of both column phases appears exactly once, at its own input offset, with
// offsets strictly falling.
TEST(PhasePairs, TableListsEveryColumnTapOnce) {
  ConvTGeometry g{};
  auto geometry = [&](int kernel_w, int pad_w, int dil_w) {
    const ConvTranspose2dParams p = testing::make_params(1, 1, 1, 1, 8, 1, kernel_w, 1, 2, 0, pad_w, 0, 0, 1, dil_w);
    ASSERT_TRUE(make_geometry(p, &g).ok());
  };
  geometry(3, 1, 1);
  ASSERT_EQ(g.w_pairs, 2);
  const int4 e0 = w_pair_entry(g, 0), e1 = w_pair_entry(g, 1);
  EXPECT_EQ(e0.x, 1); EXPECT_EQ(e0.y, -1); EXPECT_EQ(e0.z, 0);  // ow = 2q + 1 reads q + 1 through kw = 0
  EXPECT_EQ(e1.x, 0); EXPECT_EQ(e1.y, 1); EXPECT_EQ(e1.z, 2);   // both phases read q
  for (int kernel_w = 1; kernel_w <= 7; ++kernel_w)
    for (int dil_w = 1; dil_w <= 4; ++dil_w)
      for (int pad_w = 0; pad_w <= 4; ++pad_w) {
        SCOPED_TRACE("kernel_w=" + std::to_string(kernel_w) + " pad_w=" + std::to_string(pad_w) +
                     " dil_w=" + std::to_string(dil_w));
        geometry(kernel_w, pad_w, dil_w);
        std::vector<int> seen(2 * kernel_w, 0);
        for (int u = 0; u < g.w_pairs; ++u) {
          const int4 e = w_pair_entry(g, u);
          EXPECT_TRUE(e.y >= 0 || e.z >= 0) << "u=" << u;
          if (u > 0) EXPECT_LT(e.x, w_pair_entry(g, u - 1).x);
          const int kw[2] = {e.y, e.z};
          for (int r = 0; r < 2; ++r)
            if (kw[r] >= 0) {
              ASSERT_LT(kw[r], kernel_w);
              ++seen[2 * kw[r] + r];
              const int num = r + pad_w - kw[r] * dil_w;  // ow + pad - kw dil = 2 (q + d)
              EXPECT_EQ(((num % 2) + 2) % 2, 0);
              EXPECT_EQ(num / 2, e.x);
            }
        }
        // Tap kw serves the phase r with r + pad - kw dil even, and only that one.
        for (int kw = 0; kw < kernel_w; ++kw)
          for (int r = 0; r < 2; ++r)
            EXPECT_EQ(seen[2 * kw + r], ((r + pad_w - kw * dil_w) % 2 + 2) % 2 == 0 ? 1 : 0)
                << "kw=" << kw << " r=" << r;
      }
}

// The column-pair store entry (stride_w = 2, TMA-fed wgmma on sm_90) stores whole tiles
// through running pointers where y is 8-byte aligned and W_out even, edge tiles with
// their bounds checked, and one float at a time where y is only 4-byte aligned: each
// way, on tiles cut by every edge (rows, columns, and the second channel tile of C_out =
// 130), nothing written outside y. (Elsewhere every way is the same store, run here too.)
TEST(ConvTStorePaths, EveryAlignmentOfY) {
  CTFUSE_REQUIRE_GPU();
  const ConvTranspose2dParams even_w = testing::make_params(2, 24, 130, 7, 12, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1);  // W_out 24
  const ConvTranspose2dParams odd_w = testing::make_params(2, 24, 130, 7, 12, 3, 3, 2, 2, 1, 1, 0, 0, 1, 1);   // W_out 23
  for (const ConvTranspose2dParams& p : {even_w, odd_w})
    for (int y_offset : {0, 1, 2, 4}) {
      const uint64_t seed = testing::test_seed() ^ (uint64_t(y_offset) << 32) ^ uint64_t(p.output_pad_w);
      SCOPED_TRACE(testing::describe(p) + " y_offset=" + std::to_string(y_offset) + " seed=" + std::to_string(seed));
      const testing::ProblemData d = testing::make_data(p, 1, seed, false);
      check_y(p, d.x, d.weight, d.conv_bias, MathMode::kTF32, MainloopKind::kAuto, y_offset);
    }
}

// On sm_90 with sm_90a code built in (the default), C_out > 64 runs on wgmma,
// fed by TMA when W_in % 4 == 0 (x rows 16-byte aligned), else by cp.async: the tests
// above then cover all three mainloops. Elsewhere everything is mma.sync.
TEST(Mainloop, WgmmaWhereBuiltAndSupported) {
  CTFUSE_REQUIRE_GPU();
#ifndef CTFUSE_HAVE_SM90A
  GTEST_SKIP() << "this build has no sm_90a code: every device runs mma.sync";
#endif
  int device = 0, major = 0, minor = 0;
  CUDA_ASSERT(cudaGetDevice(&device));
  CUDA_ASSERT(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  CUDA_ASSERT(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
  const ConvTranspose2dParams wide = testing::make_params(2, 64, 128, 16, 16, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1);
  const ConvTranspose2dParams wide_odd_w = testing::make_params(2, 64, 128, 16, 18, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1);
  const ConvTranspose2dParams narrow = testing::make_params(2, 64, 64, 16, 16, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1);
  const bool hopper = major == 9 && minor == 0;
  const char* name = nullptr;
  ASSERT_TRUE(mainloop_in_use(wide, MathMode::kTF32, MainloopKind::kAuto, &name).ok());
  EXPECT_STREQ(name, hopper ? "wgmma+TMA" : "mma.sync");
  ASSERT_TRUE(mainloop_in_use(wide_odd_w, MathMode::kTF32, MainloopKind::kAuto, &name).ok());
  EXPECT_STREQ(name, hopper ? "wgmma" : "mma.sync");
  ASSERT_TRUE(mainloop_in_use(wide, MathMode::kTF32, MainloopKind::kPortable, &name).ok());
  EXPECT_STREQ(name, "mma.sync");
  ASSERT_TRUE(mainloop_in_use(wide, MathMode::kFP32, MainloopKind::kAuto, &name).ok());
  EXPECT_STREQ(name, hopper ? "wgmma+TMA" : "mma.sync");
  ASSERT_TRUE(mainloop_in_use(wide, MathMode::kFP32, MainloopKind::kPortable, &name).ok());
  EXPECT_STREQ(name, "mma.sync");
  ASSERT_TRUE(mainloop_in_use(narrow, MathMode::kTF32, MainloopKind::kAuto, &name).ok());
  EXPECT_STREQ(name, "mma.sync");
}

}  // namespace
}  // namespace ctfuse
