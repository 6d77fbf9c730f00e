// The one mainloop: a transposed convolution as per-phase implicit GEMMs on tensor
// cores (mma.sync m16n8k8 TF32), fed by a cp.async multi-stage pipeline, with a
// pluggable epilogue. convt.cu plugs in "add bias, store y"; forward.cu plugs in
// "add bias, min over channels, sum over rows", so y is never stored.
//
// A block owns one image n and an MH x MW tile of the phase grid (Qh, Qw), and walks
//   for rho_w, for rho_h (every output phase), for each tile of BN output channels:
//     acc = sum over the phase's taps and C_in of x_tap[pixel, ci] * w_tap[ci, co]
//     epilogue.consume(acc)
// The producer runs STAGES-1 k-steps ahead of the consumer along that same sequence,
// across phase and channel-tile boundaries, so loads keep flowing while an epilogue runs.
//
// Fragments without transposes: both operands sit in shared memory k-major ([k][pixel],
// [k][channel]), which is how they arrive from NCHW x and the packed weights. The mma
// reduces over k in any order and its rows and columns can be relabelled freely, so a
// thread's four A rows are taken as 4 consecutive pixels and its B columns as 4
// consecutive channels: every fragment is one 16-byte shared load, conflict-free.
//   A: pixel 32P + 4g + 2s + h  <->  m-subtile 2P+s, row g + 8h       (g = lane/4)
//   B: channel 32G + 4g + j     <->  n-subtile 4G+j, column g
//   accumulator (i, j, v): pixel 32(i/2) + 4g + 2(i%2) + v/2,
//                          channel 32(j/4) + 8t + 4(v%2) + j%4         (t = lane%4)
#pragma once

#include <cstdint>

#include "convt_geometry.cuh"
#include "implicit_gemm_policy.h"
#include "ptx.cuh"

namespace ctfuse {

struct ConvTOperands {
  const float* x;        // [N, C_in, H_in, W_in]
  const float* w_big;    // packed weights, TF32-rounded: [kh][kw][C_in][co_pad]
  const float* w_small;  // FP32 mode: tf32(w - w_big), same layout; else null
};

// Where a thread's accumulators live in the block tile; the epilogues see only this.
template <typename P>
struct AccLayout {
  static constexpr int MI = P::WM / 16;  // m-subtiles per warp
  static constexpr int NJ = P::WN / 8;   // n-subtiles per warp

  int wm0, wn0, g, t;

  __device__ explicit AccLayout(int warp, int lane)
      : wm0((warp / P::WARPS_N) * P::WM), wn0((warp % P::WARPS_N) * P::WN), g(lane / 4), t(lane % 4) {}

  __device__ int pixel(int i, int v) const { return wm0 + 32 * (i / 2) + 4 * g + 2 * (i % 2) + v / 2; }
  __device__ int channel(int j, int v) const { return wn0 + 32 * (j / 4) + 8 * t + 4 * (v % 2) + j % 4; }
  __device__ int warp_n() const { return wn0 / P::WN; }
};

template <typename P>
using Accumulators = float[AccLayout<P>::MI][AccLayout<P>::NJ][4];

// Position in the (phase, channel tile, tap, input-channel chunk) sequence.
struct KStep {
  int rho_w, rho_h, n_tile, tap, chunk;
  PhaseTaps taps;
};

// The block's walk, shared by producer and consumer so they cannot disagree.
struct TileWalk {
  const ConvTGeometry* g;
  int n_tiles, chunks;

  __device__ bool phase_valid(const KStep& s) const { return s.rho_w < g->stride_w; }

  // First k-step at or after phase (rho_w, rho_h), skipping phases without taps.
  __device__ KStep first_from(int rho_w, int rho_h) const {
    KStep s{rho_w, rho_h, 0, 0, 0, {}};
    for (; s.rho_w < g->stride_w; ++s.rho_w, s.rho_h = 0)
      for (; s.rho_h < g->stride_h; ++s.rho_h) {
        s.taps = phase_taps(*g, s.rho_h, s.rho_w);
        if (s.taps.count() > 0) return s;
      }
    return s;  // exhausted: rho_w == stride_w
  }

  __device__ void advance(KStep& s) const {
    if (++s.chunk < chunks) return;
    s.chunk = 0;
    if (++s.tap < s.taps.count()) return;
    s.tap = 0;
    if (++s.n_tile < n_tiles) return;
    s = s.rho_h + 1 < g->stride_h ? first_from(s.rho_w, s.rho_h + 1) : first_from(s.rho_w + 1, 0);
  }
};

template <typename P, MathMode kMath>
struct Mainloop {
  static constexpr int kStageFloats = int(stage_floats<P>(kMath));
  static constexpr int kBFloats = P::BK * P::B_STRIDE;

  const ConvTGeometry& g;
  const ConvTOperands& op;
  float* smem;  // STAGES x [A: BK x A_STRIDE][B big: BK x B_STRIDE][B small (FP32)]
  int n, qh0, qw0;

  __device__ float* stage_a(int s) const { return smem + s * kStageFloats; }
  __device__ float* stage_b(int s) const { return stage_a(s) + P::BK * P::A_STRIDE; }

  // Issues the copies of one k-step into `stage`: A = x at the tap's shifted pixels
  // (4-byte copies: a tap's shift breaks 16-byte alignment), B = packed weights.
  __device__ void load(const KStep& s, int stage) const {
    const Tap tap = tap_of(g, s.taps, s.tap);
    const int ci0 = s.chunk * P::BK;
    float* a = stage_a(stage);
    constexpr int kPixelsPerPass = P::kThreads < P::BM ? P::kThreads : P::BM;
    constexpr int kRowsPerPass = P::kThreads / kPixelsPerPass;
#pragma unroll
    for (int mp = 0; mp < P::BM; mp += kPixelsPerPass) {
      const int m = mp + threadIdx.x % kPixelsPerPass;
      const int ih = qh0 + m / P::MW + tap.dih;
      const int iw = qw0 + m % P::MW + tap.diw;
      const bool in_image = ih >= 0 && ih < g.H_in && iw >= 0 && iw < g.W_in;
      const int64_t plane = int64_t(g.H_in) * g.W_in;
      const float* src = op.x + (int64_t(n) * g.C_in + ci0) * plane + int64_t(ih) * g.W_in + iw;
#pragma unroll
      for (int k = threadIdx.x / kPixelsPerPass; k < P::BK; k += kRowsPerPass) {
        const bool valid = in_image && ci0 + k < g.C_in;
        ptx::cp_async_4(a + k * P::A_STRIDE + m, valid ? src + k * plane : op.x, valid);
      }
    }
    const int co0 = s.n_tile * P::BN;
    constexpr int kVecPerRow = P::BN / 4;
    const int64_t row0 = packed_weight_row(g, tap.kh, tap.kw, ci0);
    for (int e = threadIdx.x; e < P::BK * kVecPerRow; e += P::kThreads) {
      const int k = e / kVecPerRow, c = (e % kVecPerRow) * 4;
      const bool valid = ci0 + k < g.C_in && co0 + c < g.co_pad;
      const int64_t off = (row0 + k) * g.co_pad + co0 + c;
      float* dst = stage_b(stage) + k * P::B_STRIDE + c;
      ptx::cp_async_16(dst, valid ? op.w_big + off : op.w_big, valid);
      if constexpr (kMath == MathMode::kFP32)
        ptx::cp_async_16(dst + kBFloats, valid ? op.w_small + off : op.w_small, valid);
    }
  }

  // acc += the stage's A x B for this warp's tile.
  __device__ void mma(int stage, const AccLayout<P>& L, Accumulators<P>& acc) const {
    if constexpr (kMath == MathMode::kFP32) {
      // The tensor cores' fp32 accumulation is not IEEE round-to-nearest: summing every
      // product of a long K into one fragment loses ~2^-23 of |acc| per mma. Accumulating
      // one stage in a fresh fragment and adding it with an FADD keeps 3xTF32 at fp32
      // accuracy (measured on the H100: y error 1.4e-6 -> see bench/RESULTS.md).
      Accumulators<P> part;
      zero(part);
      mma_stage(stage, L, part);
#pragma unroll
      for (int i = 0; i < AccLayout<P>::MI; ++i)
#pragma unroll
        for (int j = 0; j < AccLayout<P>::NJ; ++j)
#pragma unroll
          for (int v = 0; v < 4; ++v) acc[i][j][v] += part[i][j][v];
    } else {
      mma_stage(stage, L, acc);
    }
  }

  __device__ static void zero(Accumulators<P>& acc) {
#pragma unroll
    for (int i = 0; i < AccLayout<P>::MI; ++i)
#pragma unroll
      for (int j = 0; j < AccLayout<P>::NJ; ++j)
#pragma unroll
        for (int v = 0; v < 4; ++v) acc[i][j][v] = 0.f;
  }

 private:
  __device__ void mma_stage(int stage, const AccLayout<P>& L, Accumulators<P>& acc) const {
    constexpr int MI = AccLayout<P>::MI, NJ = AccLayout<P>::NJ;
    const float* a_s = stage_a(stage);
    const float* b_s = stage_b(stage);
#pragma unroll
    for (int k8 = 0; k8 < P::BK; k8 += 8) {
      uint32_t a[MI][4], b[NJ][2];
      // FP32 mode (3xTF32): a = a_big + a_lo, w = b + b_lo, acc += a_lo*b + a_mid*b_lo + a*b,
      // where a_mid = a_big except 0 for a non-finite a (inf * a zero b_lo would be NaN).
      [[maybe_unused]] uint32_t a_lo[MI][4], a_mid[MI][4], b_lo[NJ][2];
#pragma unroll
      for (int p = 0; p < MI / 2; ++p) {
        const float4 k0 = *reinterpret_cast<const float4*>(a_s + (k8 + L.t) * P::A_STRIDE + L.wm0 + 32 * p + 4 * L.g);
        const float4 k4 = *reinterpret_cast<const float4*>(a_s + (k8 + L.t + 4) * P::A_STRIDE + L.wm0 + 32 * p + 4 * L.g);
        const float v[2][4] = {{k0.x, k0.y, k4.x, k4.y}, {k0.z, k0.w, k4.z, k4.w}};
#pragma unroll
        for (int s = 0; s < 2; ++s)
#pragma unroll
          for (int r = 0; r < 4; ++r) {
            const uint32_t big = ptx::tf32_round(v[s][r]);
            a[2 * p + s][r] = big;
            if constexpr (kMath == MathMode::kFP32) {
              const bool finite = isfinite(v[s][r]);
              a_lo[2 * p + s][r] = finite ? ptx::tf32_round(v[s][r] - __uint_as_float(big)) : 0u;
              a_mid[2 * p + s][r] = finite ? big : 0u;
            }
          }
      }
#pragma unroll
      for (int q = 0; q < NJ / 4; ++q) {
        const int col = L.wn0 + 32 * q + 4 * L.g;
        const uint4 k0 = *reinterpret_cast<const uint4*>(b_s + (k8 + L.t) * P::B_STRIDE + col);
        const uint4 k4 = *reinterpret_cast<const uint4*>(b_s + (k8 + L.t + 4) * P::B_STRIDE + col);
        b[4 * q + 0][0] = k0.x; b[4 * q + 1][0] = k0.y; b[4 * q + 2][0] = k0.z; b[4 * q + 3][0] = k0.w;
        b[4 * q + 0][1] = k4.x; b[4 * q + 1][1] = k4.y; b[4 * q + 2][1] = k4.z; b[4 * q + 3][1] = k4.w;
        if constexpr (kMath == MathMode::kFP32) {
          const uint4 s0 = *reinterpret_cast<const uint4*>(b_s + kBFloats + (k8 + L.t) * P::B_STRIDE + col);
          const uint4 s4 = *reinterpret_cast<const uint4*>(b_s + kBFloats + (k8 + L.t + 4) * P::B_STRIDE + col);
          b_lo[4 * q + 0][0] = s0.x; b_lo[4 * q + 1][0] = s0.y; b_lo[4 * q + 2][0] = s0.z; b_lo[4 * q + 3][0] = s0.w;
          b_lo[4 * q + 0][1] = s4.x; b_lo[4 * q + 1][1] = s4.y; b_lo[4 * q + 2][1] = s4.z; b_lo[4 * q + 3][1] = s4.w;
        }
      }
#pragma unroll
      for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int j = 0; j < NJ; ++j) {
          if constexpr (kMath == MathMode::kFP32) {  // 3xTF32: small terms first
            ptx::mma_tf32(acc[i][j], a_lo[i], b[j]);
            ptx::mma_tf32(acc[i][j], a_mid[i], b_lo[j]);
          }
          ptx::mma_tf32(acc[i][j], a[i], b[j]);
        }
    }
  }
};

// Everything a kernel launch needs besides the epilogue's own parameters.
struct ConvTArgs {
  ConvTGeometry g;
  ConvTOperands op;
  int tiles_h, tiles_w;  // block tiles over the phase grid: ceil(QH / MH), ceil(QW / MW)
};

// Epilogue interface (see epilogues.cuh):
//   struct E { struct Params; struct Shared;
//     __device__ E(const Params&, Shared&, const ConvTArgs&, int n, int tile_h, int tile_w);
//     __device__ void consume(const Accumulators<P>&, const AccLayout<P>&, int rho_h, int rho_w, int n_tile);
//     __device__ void phase_done(const AccLayout<P>&, int rho_h, int rho_w);  // all channel tiles consumed
//     __device__ void column_done(int rho_w); };          // every phase with this rho_w done
template <typename P, MathMode kMath, typename Epilogue>
__global__ void __launch_bounds__(P::kThreads, 1)
    convt_implicit_gemm_kernel(ConvTArgs args, typename Epilogue::Params ep) {
  extern __shared__ float4 smem_f4[];
  float* smem = reinterpret_cast<float*>(smem_f4);
  auto& ep_shared = *reinterpret_cast<typename Epilogue::Shared*>(smem + P::STAGES * stage_floats<P>(kMath));
  const ConvTGeometry& g = args.g;
  const AccLayout<P> L(threadIdx.x / 32, threadIdx.x % 32);
  const TileWalk walk{&g, (g.C_out + P::BN - 1) / P::BN, (g.C_in + P::BK - 1) / P::BK};
  const int64_t tiles = int64_t(g.N) * args.tiles_h * args.tiles_w;

  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int tile_w = int(tile % args.tiles_w);
    const int tile_h = int((tile / args.tiles_w) % args.tiles_h);
    const int n = int(tile / (int64_t(args.tiles_w) * args.tiles_h));
    const Mainloop<P, kMath> ml{g, args.op, smem, n, tile_h * P::MH, tile_w * P::MW};
    Epilogue epi(ep, ep_shared, args, n, tile_h, tile_w);

    // Prologue: fill STAGES-1 stages.
    KStep next = walk.first_from(0, 0);
#pragma unroll
    for (int s = 0; s < P::STAGES - 1; ++s) {
      if (walk.phase_valid(next)) {
        ml.load(next, s);
        walk.advance(next);
      }
      ptx::cp_async_commit();
    }

    int consumed = 0;
    for (int rho_w = 0; rho_w < g.stride_w; ++rho_w) {
      for (int rho_h = 0; rho_h < g.stride_h; ++rho_h) {
        const PhaseTaps taps = phase_taps(g, rho_h, rho_w);
        const int ksteps = taps.count() * walk.chunks;
        for (int n_tile = 0; n_tile < walk.n_tiles; ++n_tile) {
          Accumulators<P> acc;
          Mainloop<P, kMath>::zero(acc);
          for (int k = 0; k < ksteps; ++k, ++consumed) {
            ptx::cp_async_wait<P::STAGES - 2>();
            __syncthreads();  // the stage is visible to all; the previous one is free
            if (walk.phase_valid(next)) {
              ml.load(next, (consumed + P::STAGES - 1) % P::STAGES);
              walk.advance(next);
            }
            ptx::cp_async_commit();
            ml.mma(consumed % P::STAGES, L, acc);
          }
          epi.consume(acc, L, rho_h, rho_w, n_tile);
        }
        epi.phase_done(L, rho_h, rho_w);
      }
      epi.column_done(rho_w);
    }
    ptx::cp_async_wait<0>();
    __syncthreads();  // the next tile's prologue overwrites the stages
  }
}

}  // namespace ctfuse
