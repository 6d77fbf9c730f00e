// The two epilogues of the implicit-GEMM mainloop. Both see the accumulators only
// through AccLayout (which pixel and channel each register holds), so a different
// mainloop (e.g. Hopper wgmma) can feed them unchanged.
#pragma once

#include <cstdint>

#include "implicit_gemm.cuh"
#include "reduce_ops.cuh"

namespace ctfuse {

// Output pixel of tile pixel m in phase (rho_h, rho_w); false when outside y.
template <typename P>
__device__ __forceinline__ bool output_pixel(const ConvTGeometry& g, int qh0, int qw0, int m, int rho_h,
                                             int rho_w, int* oh, int* ow) {
  *oh = (qh0 + m / P::MW) * g.stride_h + rho_h;
  *ow = (qw0 + m % P::MW) * g.stride_w + rho_w;
  return *oh < g.H_out && *ow < g.W_out;
}

// y = acc + conv_bias, stored NCHW. Each warp transposes its tile through shared memory,
// one n-subtile (8 channels) at a time, so that a store instruction writes 32 pixels of
// one phase row (stride s_w in y) instead of 8 pixels x 4 channels; phases are walked
// with rho_w innermost so the other half of each row arrives while it is still in L2.
template <typename P>
struct StoreEpilogue {
  static constexpr bool kRhoWOuter = false;
  struct Params {
    const float* conv_bias;  // [C_out] or null
    float* y;                // [N, C_out, H_out, W_out]
  };
  struct Shared {
    float tile[P::WARPS_M * P::WARPS_N][8][P::WM];  // a warp's 8 channels x WM pixels
  };
  static_assert(P::MW == 32 && P::WM % 32 == 0, "a warp's 32 lanes store one phase row");
  static_assert(sizeof(Shared) == store_epilogue_smem_bytes<P>(), "keep the policy's smem count exact");

  const Params& p;
  Shared& sh;
  const ConvTGeometry& g;
  int n, qh0, qw0;

  __device__ StoreEpilogue(const Params& params, Shared& shared, const ConvTArgs& a, int n_, int tile_h, int tile_w)
      : p(params), sh(shared), g(a.g), n(n_), qh0(tile_h * P::MH), qw0(tile_w * P::MW) {}

  __device__ void consume(const Accumulators<P>& acc, const AccLayout<P>& L, int rho_h, int rho_w, int n_tile) {
    float(&t)[8][P::WM] = sh.tile[threadIdx.x / 32];
    const int lane = threadIdx.x % 32;
    const int64_t plane = int64_t(g.H_out) * g.W_out;
#pragma unroll
    for (int j = 0; j < AccLayout<P>::NJ; ++j) {
#pragma unroll
      for (int i = 0; i < AccLayout<P>::MI; ++i)
#pragma unroll
        for (int v = 0; v < 4; ++v) t[2 * L.t + v % 2][L.pixel(i, v) - L.wm0] = acc[i][j][v];
      __syncwarp();
      const int co0 = n_tile * P::BN + L.wn0 + 8 * j;
      float bias[8];  // loaded up front: independent loads, not one per store
#pragma unroll
      for (int c = 0; c < 8; ++c) bias[c] = p.conv_bias && co0 + c < g.C_out ? __ldg(p.conv_bias + co0 + c) : 0.f;
#pragma unroll
      for (int q = 0; q < P::WM / 32; ++q) {
        const int m = L.wm0 + 32 * q + lane;  // tile pixel: row m / MW, column lane
        const int oh = (qh0 + m / P::MW) * g.stride_h + rho_h;
        const int ow = (qw0 + lane) * g.stride_w + rho_w;
        if (oh >= g.H_out || ow >= g.W_out) continue;
        float* y_px = p.y + (int64_t(n) * g.C_out + co0) * plane + int64_t(oh) * g.W_out + ow;
#pragma unroll
        for (int c = 0; c < 8; ++c)
          if (co0 + c < g.C_out) y_px[c * plane] = t[c][32 * q + lane] + bias[c];
      }
      __syncwarp();
    }
  }
  __device__ void phase_done(const AccLayout<P>&, int, int) {}
  __device__ void column_done(int) {}
};

// The fused op's epilogue: per output pixel min over all channels of (acc + conv_bias),
// then per output column the sum of those minima over the block's rows, in a fixed
// order, written as one partial per (n, block row, ow). y never leaves registers.
template <typename P>
struct MinSumEpilogue {
  static constexpr bool kRhoWOuter = true;
  struct Params {
    const float* conv_bias;  // [C_out] or null
    double* partial;         // [N, tiles_h, W_out]
  };
  struct Shared {
    float warp_min[P::WARPS_N][P::BM];
    double col_sum[P::MW];
  };
  static constexpr int MI = AccLayout<P>::MI;
  static_assert(sizeof(Shared) == min_sum_epilogue_smem_bytes<P>(), "keep the policy's smem count exact");

  const Params& p;
  Shared& sh;
  const ConvTGeometry& g;
  int n, tile_h, tiles_h, qh0, qw0;
  float run_min[MI][2];  // running minimum of this thread's pixels over channel tiles

  __device__ MinSumEpilogue(const Params& params, Shared& shared, const ConvTArgs& a, int n_, int tile_h_,
                            int tile_w)
      : p(params), sh(shared), g(a.g), n(n_), tile_h(tile_h_), tiles_h(a.tiles_h), qh0(tile_h_ * P::MH),
        qw0(tile_w * P::MW) {
    reset_min();
    for (int c = threadIdx.x; c < P::MW; c += P::kThreads) sh.col_sum[c] = 0.0;
  }

  __device__ void reset_min() {
#pragma unroll
    for (int i = 0; i < MI; ++i) run_min[i][0] = run_min[i][1] = pos_inf();
  }

  __device__ void consume(const Accumulators<P>& acc, const AccLayout<P>& L, int, int, int n_tile) {
    if ((n_tile + 1) * P::BN <= g.C_out)
      min_over_channels<false>(acc, L, n_tile);
    else
      min_over_channels<true>(acc, L, n_tile);  // the last tile of a C_out that is not a multiple of BN
  }

  // Min over this thread's channels of acc + conv_bias, then over the 4 lanes sharing its
  // pixels. The bias values are loaded first, as independent loads: a load per channel
  // inside the min loop serialised the epilogue on load latency. kMasked: channels past
  // C_out are skipped (a select, not a branch; acc + inf would not do: an Inf in x makes
  // a zero-padded channel's acc NaN).
  template <bool kMasked>
  __device__ __forceinline__ void min_over_channels(const Accumulators<P>& acc, const AccLayout<P>& L, int n_tile) {
    float bias[AccLayout<P>::NJ][2];
#pragma unroll
    for (int j = 0; j < AccLayout<P>::NJ; ++j)
#pragma unroll
      for (int vc = 0; vc < 2; ++vc) {
        const int co = n_tile * P::BN + L.channel(j, vc);
        bias[j][vc] = p.conv_bias ? __ldg(p.conv_bias + (kMasked ? min(co, g.C_out - 1) : co)) : 0.f;
      }
#pragma unroll
    for (int j = 0; j < AccLayout<P>::NJ; ++j)
#pragma unroll
      for (int vc = 0; vc < 2; ++vc) {
        const bool valid = !kMasked || n_tile * P::BN + L.channel(j, vc) < g.C_out;
#pragma unroll
        for (int i = 0; i < MI; ++i)
#pragma unroll
          for (int vr = 0; vr < 2; ++vr) {
            const float y = acc[i][j][2 * vr + vc] + bias[j][vc];
            run_min[i][vr] = nan_min(run_min[i][vr], valid ? y : pos_inf());
          }
      }
#pragma unroll
    for (int i = 0; i < MI; ++i)
#pragma unroll
      for (int vr = 0; vr < 2; ++vr) {
        float m = run_min[i][vr];
        m = nan_min(m, __shfl_xor_sync(0xffffffffu, m, 1));
        m = nan_min(m, __shfl_xor_sync(0xffffffffu, m, 2));
        run_min[i][vr] = m;
      }
  }

  __device__ void phase_done(const AccLayout<P>& L, int rho_h, int rho_w) {
    if (L.t == 0) {
#pragma unroll
      for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int vr = 0; vr < 2; ++vr) sh.warp_min[L.warp_n()][L.pixel(i, 2 * vr)] = run_min[i][vr];
    }
    reset_min();
    __syncthreads();
    // One thread per tile column: min over the warps' channel slices, sum over the
    // tile's rows in row order.
    for (int c = threadIdx.x; c < P::MW; c += P::kThreads) {
      double sum = sh.col_sum[c];
      for (int r = 0; r < P::MH; ++r) {
        const int m = r * P::MW + c;
        int oh, ow;
        if (!output_pixel<P>(g, qh0, qw0, m, rho_h, rho_w, &oh, &ow)) continue;
        float v = sh.warp_min[0][m];
#pragma unroll
        for (int wn = 1; wn < P::WARPS_N; ++wn) v = nan_min(v, sh.warp_min[wn][m]);
        sum += v;
      }
      sh.col_sum[c] = sum;
    }
    __syncthreads();
  }

  __device__ void column_done(int rho_w) {
    for (int c = threadIdx.x; c < P::MW; c += P::kThreads) {
      const int ow = (qw0 + c) * g.stride_w + rho_w;
      if (ow < g.W_out) p.partial[(int64_t(n) * tiles_h + tile_h) * g.W_out + ow] = sh.col_sum[c];
      sh.col_sum[c] = 0.0;
    }
    // Each col_sum entry is only ever touched by the same thread: no barrier needed.
  }
};

}  // namespace ctfuse
