// The two epilogues of the implicit-GEMM mainloop. Both see the accumulators only
// through AccLayout (which pixel and channel each register holds), so a different
// mainloop (e.g. Hopper wgmma) can feed them unchanged.
#pragma once

#include <cstdint>
#include <type_traits>

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

// Where the table says so (kBiasAtStart), both epilogues start a GEMM tile's accumulators
// at the conv bias of their channels (zero past C_out or without a bias): the tensor
// cores then add it along with the products, and the epilogue is left with the stores or
// the minimum alone. Otherwise they start at zero and add the bias themselves.
template <typename P, bool kAtStart>
__device__ __forceinline__ void start_accumulators(Accumulators<P>& acc, const AccLayout<P>& L, int n_tile,
                                                   const float* conv_bias, int C_out) {
  if constexpr (kAtStart) {
    // Pairs: the second half's channels are the first half's, loaded once. (Loading the
    // bias as float2 behind a uniform branch instead made ptxas serialise the mainloop's
    // wgmmas, C7515: keep these loads plain and predicated.)
    constexpr int kDistinctJ = P::kPhasePairs ? AccLayout<P>::NJ / 2 : AccLayout<P>::NJ;
#pragma unroll
    for (int j = 0; j < kDistinctJ; ++j)
#pragma unroll
      for (int vc = 0; vc < 2; ++vc) {
        const int co = n_tile * P::BN + L.channel(j, vc);
        const float b = conv_bias && co < C_out ? __ldg(conv_bias + co) : 0.f;
#pragma unroll
        for (int jj = j; jj < AccLayout<P>::NJ; jj += kDistinctJ)
#pragma unroll
          for (int i = 0; i < AccLayout<P>::MI; ++i) acc[i][jj][vc] = acc[i][jj][2 + vc] = b;
      }
  } else {
    Mainloop<P, MathMode::kTF32>::zero(acc);
  }
}

// y = acc (started at conv_bias, see kBiasAtStart), stored NCHW.
// stride_w = 2 (the common upsampling case): a phase row is every other element of a y
// row, so each phase stored on its own would write every 32-byte sector in two halves,
// which the GPU fills from DRAM and writes back (the H100 read 784 MB and wrote 997 MB
// for a 537 MB y). Instead the walk brings the rho_w = 0 and rho_w = 1 tiles of the same
// pixels one after the other; each thread parks its rho_w = 0 accumulators in shared
// memory in its own fragment order (one 16-byte store and load per fragment, no bank
// conflicts) and, when the partner is done, stores both interleaved straight from
// registers: a thread holds a channel's pixels in pairs (mma.sync: pixels 2g, 2g + 1, so
// 16 bytes of y) or singly (TMA-fed wgmma: 8 bytes), and a warp's store covers whole
// sectors.
// Column-phase pairs (P::kPhasePairs, stride_w = 2): the GEMM tile holds both phases, so
// the pair is stored straight from registers, nothing parked (store_phase_pairs).
// Other strides: each warp transposes its tile through shared memory, one n-subtile (8
// channels) at a time, so that a store instruction writes consecutive pixels of one
// phase row instead of 8 pixels x 4 channels (stride 1: whole y rows).
template <typename P>
struct StoreEpilogue {
  static constexpr EpilogueKind kKind = EpilogueKind::kStore;
  static constexpr int MI = AccLayout<P>::MI, NJ = AccLayout<P>::NJ;
  struct Params {
    const float* conv_bias;  // [C_out] or null
    float* y;                // [N, C_out, H_out, W_out]
  };
  static constexpr bool kParkInRegisters = ctfuse::kParkInRegisters<P>;
  static constexpr bool kHoldsRegisters = kParkInRegisters;
  // The cp.async-fed FP32 kernel, which also holds the parked tile in registers, spills
  // with the bias in its accumulators (96 bytes; W_in = 130: convt_fp32 845.7 -> 905.0 us),
  // so it adds the bias at the store instead.
  static constexpr bool kBiasAtStart = ctfuse::kBiasAtStart<P> && !(kParkInRegisters && !P::kTma);
  struct SharedNoParking {
    float tile[P::WARPS_M * P::WARPS_N][8][P::WM];  // a warp's 8 channels x WM pixels
  };
  struct SharedWithParking : SharedNoParking {
    float4 parked[P::WARPS_M * P::WARPS_N][MI][NJ][32];  // stride_w = 2: the rho_w = 0 fragments
  };
  using Shared = std::conditional_t<kParkInRegisters || P::kPhasePairs, SharedNoParking, SharedWithParking>;
  // The transposed store covers kLanesPerRow pixels of a phase row x 32 / kLanesPerRow channels.
  static constexpr int kLanesPerRow = P::WM < 32 ? P::WM : 32;
  static constexpr int kChannelGroups = 32 / kLanesPerRow;
  static_assert(P::MW % kLanesPerRow == 0 && P::WM % kLanesPerRow == 0 && 8 % kChannelGroups == 0,
                "a store instruction's pixels lie in one phase row");
  static_assert(sizeof(Shared) == store_epilogue_smem_bytes<P>(), "keep the policy's smem count exact");
  // Fragment pixels v/2 = 0, 1 are neighbours (mma.sync) or 8 apart (TMA-fed wgmma).
  static constexpr int kPairedRun = P::kTma ? 2 : 4;  // consecutive y floats a thread writes at once

  const Params& p;
  Shared& sh;
  const ConvTGeometry& g;
  ThreadGroup grp;
  int n, qh0, qw0;
  bool paired, vector_ok;  // stride_w = 2; and whole-run vector stores are aligned
  [[maybe_unused]] float held[kParkInRegisters ? MI : 1][kParkInRegisters ? NJ : 1][4];  // the parked fragments

  __device__ StoreEpilogue(const Params& params, Shared& shared, const ConvTArgs& a, int n_, int tile_h, int tile_w,
                           ThreadGroup group)
      : p(params), sh(shared), g(a.g), grp(group), n(n_), qh0(tile_h * P::MH), qw0(tile_w * P::MW), paired(a.g.stride_w == 2),
        vector_ok(a.g.W_out % kPairedRun == 0 &&
                  (reinterpret_cast<uintptr_t>(params.y) & (sizeof(float) * kPairedRun - 1)) == 0) {}

  __device__ void start(Accumulators<P>& acc, const AccLayout<P>& L, GemmTile gt) const {
    start_accumulators<P, kBiasAtStart>(acc, L, gt.n_tile, p.conv_bias, g.C_out);
  }

  __device__ void consume(const Accumulators<P>& acc, const AccLayout<P>& L, GemmTile gt) {
    if constexpr (P::kPhasePairs)
      store_phase_pairs(acc, L, gt);
    else if (!paired)
      store_transposed(acc, L, gt);
    else if (gt.rho_w == 0)
      park(acc, L);
    else
      store_pairs(acc, L, gt);
  }

 private:
  // !kBiasAtStart: the bias is added at the store.
  __device__ float bias(int co) const {
    return !kBiasAtStart && p.conv_bias && co < g.C_out ? __ldg(p.conv_bias + co) : 0.f;
  }
  __device__ static float plus_bias(float v, float b) {
    if constexpr (kBiasAtStart)
      return v;
    else
      return v + b;
  }

  // A thread's run of consecutive y floats from column ow on (ow inside y): one vector
  // store where runs are aligned (vector_ok), else those inside y one by one.
  template <int kRun>
  __device__ void store_run(float* dst, int ow, const float (&v)[kRun]) const {
    static_assert(kRun == 2 || kRun == 4, "8- or 16-byte runs");
    if (vector_ok) {
      if constexpr (kRun == 4)
        *reinterpret_cast<float4*>(dst) = make_float4(v[0], v[1], v[2], v[3]);
      else
        *reinterpret_cast<float2*>(dst) = make_float2(v[0], v[1]);
    } else {
#pragma unroll
      for (int k = 0; k < kRun; ++k)
        if (ow + k < g.W_out) dst[k] = v[k];
    }
  }

  __device__ void park(const Accumulators<P>& acc, const AccLayout<P>&) {
    const int warp = grp.warp(), lane = grp.lane();
#pragma unroll
    for (int i = 0; i < MI; ++i)
#pragma unroll
      for (int j = 0; j < NJ; ++j) {
        if constexpr (kParkInRegisters) {
#pragma unroll
          for (int v = 0; v < 4; ++v) held[i][j][v] = acc[i][j][v];
        } else {
          sh.parked[warp][i][j][lane] = make_float4(acc[i][j][0], acc[i][j][1], acc[i][j][2], acc[i][j][3]);
        }
      }
  }

  // y[.., 2 qw + {0, 1}] = (parked, acc) for each of this thread's (channel, pixel).
  __device__ void store_pairs(const Accumulators<P>& acc, const AccLayout<P>& L, GemmTile gt) {
    const int warp = grp.warp(), lane = grp.lane();
    const int64_t plane = int64_t(g.H_out) * g.W_out;
    float* y_n = p.y + int64_t(n) * g.C_out * plane;
#pragma unroll
    for (int j = 0; j < NJ; ++j) {
      const int co0 = gt.n_tile * P::BN + L.channel(j, 0);  // this thread's channels: co0, co0 + 1
      const float b[2] = {bias(co0), bias(co0 + 1)};
#pragma unroll
      for (int i = 0; i < MI; ++i) {
        float even[4];
        if constexpr (kParkInRegisters) {
#pragma unroll
          for (int v = 0; v < 4; ++v) even[v] = held[i][j][v];
        } else {
          const float4 q = sh.parked[warp][i][j][lane];
          even[0] = q.x; even[1] = q.y; even[2] = q.z; even[3] = q.w;
        }
#pragma unroll
        for (int vc = 0; vc < 2; ++vc) {
          if (co0 + vc >= g.C_out) continue;
          // mma.sync: pixels v/2 = 0, 1 are neighbours, one run of 4; TMA: two runs of 2.
#pragma unroll
          for (int run = 0; run < 4 / kPairedRun; ++run) {
            const int m = L.pixel(i, 2 * run + vc);
            const int oh = (qh0 + m / P::MW) * g.stride_h + gt.rho_h;
            const int ow = 2 * (qw0 + m % P::MW);
            if (oh >= g.H_out || ow >= g.W_out) continue;
            float* dst = y_n + (co0 + vc) * plane + int64_t(oh) * g.W_out + ow;
            float v[kPairedRun];
#pragma unroll
            for (int k = 0; k < kPairedRun / 2; ++k) {
              const int e = 2 * (run + k) + vc;  // fragment element of the k-th pixel of the run
              v[2 * k] = plus_bias(even[e], b[vc]);
              v[2 * k + 1] = plus_bias(acc[i][j][e], b[vc]);
            }
            store_run(dst, ow, v);
          }
        }
      }
    }
  }

  // Pairs: accumulator column j < BN is channel j at ow = 2q, column BN + j the same
  // channel at 2q + 1; a warp's store instruction covers 8 pairs (64 bytes) of 4 channels.
  __device__ void store_phase_pairs(const Accumulators<P>& acc, const AccLayout<P>& L, GemmTile gt) {
    constexpr int kHalf = NJ / 2;
    if constexpr (kBiasAtStart) {
      const bool whole = vector_ok && (gt.n_tile + 1) * P::BN <= g.C_out &&
                         (qh0 + P::MH - 1) * g.stride_h + gt.rho_h < g.H_out && 2 * (qw0 + P::MW) <= g.W_out;
      if (whole) return store_whole_phase_pairs(acc, L, gt);
    }
    const int64_t plane = int64_t(g.H_out) * g.W_out;
    float* y_n = p.y + int64_t(n) * g.C_out * plane;
#pragma unroll
    for (int j = 0; j < kHalf; ++j)
#pragma unroll
      for (int vc = 0; vc < 2; ++vc) {
        const int co = gt.n_tile * P::BN + L.channel(j, vc);
        if (co >= g.C_out) continue;
        const float b = bias(co);
#pragma unroll
        for (int i = 0; i < MI; ++i)
#pragma unroll
          for (int vr = 0; vr < 2; ++vr) {
            const int v = 2 * vr + vc, m = L.pixel(i, v);
            const int oh = (qh0 + m / P::MW) * g.stride_h + gt.rho_h;
            const int ow = 2 * (qw0 + m % P::MW);
            if (oh >= g.H_out || ow >= g.W_out) continue;
            float* dst = y_n + co * plane + int64_t(oh) * g.W_out + ow;
            const float pair[2] = {plus_bias(acc[i][j][v], b), plus_bias(acc[i][kHalf + j][v], b)};
            store_run(dst, ow, pair);
          }
      }
  }

  // The tile lies wholly inside y (the common case): no bounds, and a thread's 64 stores
  // step through two running pointers (channels 2t and 2t + 1 of its pixel; its second
  // pixel, 8 phase columns on, is 16 floats further) by 8 channels per n-subtile. The
  // general path above works each address out from scratch and checks it: at the
  // benchmark shape that was as many instructions as the tile's mainloop. Streaming
  // stores (st.global.cs): this kernel does not read y, so its lines go first from L2
  // (H200, same call: convt_tf32 273.6 -> 267.8 us; unfused_tf32, whose post-op reads y
  // next, 411.7 -> 406.2).
  __device__ void store_whole_phase_pairs(const Accumulators<P>& acc, const AccLayout<P>& L, GemmTile gt) {
    constexpr int kHalf = NJ / 2;
    static_assert(MI == 1 && P::kTma, "one m64 subtile; fragment pixels g and g + 8 (AccLayout)");
    static_assert(P::MW % 16 == 0 && P::WM == 16, "a warp's pixels g, g + 8 lie in one phase row");
    const int64_t plane = int64_t(g.H_out) * g.W_out;
    const int m = L.pixel(0, 0);
    const int oh = (qh0 + m / P::MW) * g.stride_h + gt.rho_h, ow = 2 * (qw0 + m % P::MW);
    float* even_channel = p.y + (int64_t(n) * g.C_out + gt.n_tile * P::BN + L.channel(0, 0)) * plane +
                          int64_t(oh) * g.W_out + ow;
    float* odd_channel = even_channel + plane;
    constexpr int kSecondPixel = 2 * 8;  // y floats from pixel g's pair to pixel g + 8's
#pragma unroll
    for (int j = 0; j < kHalf; ++j) {
      __stcs(reinterpret_cast<float2*>(even_channel), make_float2(acc[0][j][0], acc[0][kHalf + j][0]));
      __stcs(reinterpret_cast<float2*>(even_channel + kSecondPixel), make_float2(acc[0][j][2], acc[0][kHalf + j][2]));
      __stcs(reinterpret_cast<float2*>(odd_channel), make_float2(acc[0][j][1], acc[0][kHalf + j][1]));
      __stcs(reinterpret_cast<float2*>(odd_channel + kSecondPixel), make_float2(acc[0][j][3], acc[0][kHalf + j][3]));
      even_channel += 8 * plane;
      odd_channel += 8 * plane;
    }
  }

  __device__ void store_transposed(const Accumulators<P>& acc, const AccLayout<P>& L, GemmTile gt) {
    float(&t)[8][P::WM] = sh.tile[grp.warp()];
    const int lane = grp.lane();
    const int64_t plane = int64_t(g.H_out) * g.W_out;
#pragma unroll
    for (int j = 0; j < NJ; ++j) {
#pragma unroll
      for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int v = 0; v < 4; ++v) t[2 * L.t + v % 2][L.pixel(i, v) - L.wm0] = acc[i][j][v];
      __syncwarp();
      const int co0 = gt.n_tile * P::BN + L.wn0 + 8 * j;
      float b[8 / kChannelGroups];  // loaded up front: independent loads, not one per store
#pragma unroll
      for (int cc = 0; cc < 8 / kChannelGroups; ++cc) b[cc] = bias(co0 + cc * kChannelGroups + lane / kLanesPerRow);
#pragma unroll
      for (int q = 0; q < P::WM / kLanesPerRow; ++q) {
        const int mw = kLanesPerRow * q + lane % kLanesPerRow;  // pixel within the warp's tile
        const int m = L.wm0 + mw;                                // tile pixel: row m / MW
        const int oh = (qh0 + m / P::MW) * g.stride_h + gt.rho_h;
        const int ow = (qw0 + m % P::MW) * g.stride_w + gt.rho_w;
        if (oh >= g.H_out || ow >= g.W_out) continue;
        float* y_px = p.y + (int64_t(n) * g.C_out + co0) * plane + int64_t(oh) * g.W_out + ow;
#pragma unroll
        for (int cc = 0; cc < 8 / kChannelGroups; ++cc) {
          const int c = cc * kChannelGroups + lane / kLanesPerRow;
          if (co0 + c < g.C_out) y_px[c * plane] = plus_bias(t[c][mw], b[cc]);
        }
      }
      __syncwarp();
    }
  }
};

// The fused op's epilogue: per output pixel min over all channels of (acc + conv_bias),
// then per output column the sum of those minima over the block's rows, in a fixed
// order, written as one partial per (n, block row, ow). y never leaves registers.
// Where a warp holds all of a GEMM tile's channels (min_sum_in_registers: the wgmma
// entries), a pixel's minimum is complete in the registers of its lanes, and each
// thread adds its pixels' minima over a column's phases (rho_h) there too; the block
// meets once per column (rho_w) to sum the rows. With channels split over warps, the
// minima meet in shared memory after every phase.
template <typename P>
struct MinSumEpilogue {
  static constexpr EpilogueKind kKind = EpilogueKind::kMinSum;
  static constexpr bool kHoldsRegisters = false;  // a few running minima and sums only
  static constexpr bool kSumInRegisters = min_sum_in_registers<P>();
  struct Params {
    const float* conv_bias;  // [C_out] or null
    double* partial;         // [N, tiles_h, W_out]
  };
  struct SharedPerPhase {
    float warp_min[P::WARPS_N][P::BM];
    double col_sum[P::MW];
  };
  struct SharedPerColumn {
    double pixel_sum[2][P::BM];  // by column parity: one barrier per column
  };
  using Shared = std::conditional_t<kSumInRegisters, SharedPerColumn, SharedPerPhase>;
  static constexpr int MI = AccLayout<P>::MI;
  static_assert(sizeof(Shared) == min_sum_epilogue_smem_bytes<P>(), "keep the policy's smem count exact");

  const Params& p;
  Shared& sh;
  const ConvTGeometry& g;
  ThreadGroup grp;
  int n, tile_h, tiles_h, qh0, qw0, n_tiles;
  float run_min[MI][2];  // running minimum of this thread's pixels over channel tiles
  [[maybe_unused]] double pixel_sum[kSumInRegisters ? MI : 1][2];  // kSumInRegisters: over the column's phases

  __device__ MinSumEpilogue(const Params& params, Shared& shared, const ConvTArgs& a, int n_, int tile_h_,
                            int tile_w, ThreadGroup group)
      : p(params), sh(shared), g(a.g), grp(group), n(n_), tile_h(tile_h_), tiles_h(a.tiles_h), qh0(tile_h_ * P::MH),
        qw0(tile_w * P::MW), n_tiles(PackedWeights<P>::n_tiles(a.g)) {
    reset_min();
    if constexpr (kSumInRegisters) {
      reset_sums();
    } else {
      for (int c = grp.tid; c < P::MW; c += P::kThreads) sh.col_sum[c] = 0.0;
    }
  }

  __device__ void start(Accumulators<P>& acc, const AccLayout<P>& L, GemmTile gt) const {
    start_accumulators<P, kBiasAtStart<P>>(acc, L, gt.n_tile, p.conv_bias, g.C_out);
  }

  __device__ void reset_min() {
#pragma unroll
    for (int i = 0; i < MI; ++i) run_min[i][0] = run_min[i][1] = pos_inf();
  }
  __device__ void reset_sums() {
#pragma unroll
    for (int i = 0; i < MI; ++i) pixel_sum[i][0] = pixel_sum[i][1] = 0.0;
  }

  // The walk (TileWalk) brings a phase's channel tiles one after another, and a rho_w's
  // phases one after another.
  __device__ void consume(const Accumulators<P>& acc, const AccLayout<P>& L, GemmTile gt) {
    if ((gt.n_tile + 1) * P::BN <= g.C_out)
      min_over_channels<false>(acc, L, gt.n_tile);
    else
      min_over_channels<true>(acc, L, gt.n_tile);  // the last tile of a C_out that is not a multiple of BN
    if (gt.n_tile + 1 < n_tiles) return;
    if constexpr (kSumInRegisters) {
      phase_done_in_registers(L, gt.rho_h, gt.rho_w);
      if (gt.rho_h + 1 == g.stride_h) column_done_from_registers(L, gt.rho_w);
    } else {
      phase_done(L, gt.rho_h, gt.rho_w);
      if (gt.rho_h + 1 == g.stride_h) column_done(gt.rho_w);
    }
  }

  // Min over this thread's channels of acc + conv_bias (the bias already in acc with
  // kBiasAtStart), then over the 4 lanes sharing its pixels. The bias values are loaded
  // first, as independent loads: a load per channel inside the min loop serialised the
  // epilogue on load latency. kMasked: channels past C_out are skipped (a select, not a
  // branch; acc + inf would not do: an Inf in x makes a zero-padded channel's acc NaN).
  template <bool kMasked>
  __device__ __forceinline__ void min_over_channels(const Accumulators<P>& acc, const AccLayout<P>& L, int n_tile) {
    [[maybe_unused]] float bias[AccLayout<P>::NJ][2];
    if constexpr (!kBiasAtStart<P>) {
#pragma unroll
      for (int j = 0; j < AccLayout<P>::NJ; ++j)
#pragma unroll
        for (int vc = 0; vc < 2; ++vc) {
          const int co = n_tile * P::BN + L.channel(j, vc);
          bias[j][vc] = p.conv_bias ? __ldg(p.conv_bias + (kMasked ? min(co, g.C_out - 1) : co)) : 0.f;
        }
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
            float y = acc[i][j][2 * vr + vc];
            if constexpr (!kBiasAtStart<P>) y += bias[j][vc];
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

  // kSumInRegisters: the minima of this thread's pixels are complete; add those that land
  // in y to their sums over the column's phases.
  __device__ void phase_done_in_registers(const AccLayout<P>& L, int rho_h, int rho_w) {
#pragma unroll
    for (int i = 0; i < MI; ++i)
#pragma unroll
      for (int vr = 0; vr < 2; ++vr) {
        int oh, ow;
        if (output_pixel<P>(g, qh0, qw0, L.pixel(i, 2 * vr), rho_h, rho_w, &oh, &ow))
          pixel_sum[i][vr] += run_min[i][vr];
      }
    reset_min();
  }

  // Then, once per column, the per-pixel sums meet in shared memory and one thread per
  // tile column adds its rows in row order.
  __device__ void column_done_from_registers(const AccLayout<P>& L, int rho_w) {
    double(&sums)[P::BM] = sh.pixel_sum[rho_w & 1];
    if (L.t == 0) {
#pragma unroll
      for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int vr = 0; vr < 2; ++vr) sums[L.pixel(i, 2 * vr)] = pixel_sum[i][vr];
    }
    reset_sums();
    // One barrier: the next column writes the other buffer, and the one after it comes
    // after this next column's barrier (or after the block tile's closing barrier, which
    // both kernels have).
    grp.sync();
    for (int c = grp.tid; c < P::MW; c += P::kThreads) {
      const int ow = (qw0 + c) * g.stride_w + rho_w;
      if (ow >= g.W_out) continue;
      double sum = 0.0;
      for (int r = 0; r < P::MH; ++r) sum += sums[r * P::MW + c];
      p.partial[(int64_t(n) * tiles_h + tile_h) * g.W_out + ow] = sum;
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
    grp.sync();
    // One thread per tile column: min over the warps' channel slices, sum over the
    // tile's rows in row order.
    for (int c = grp.tid; c < P::MW; c += P::kThreads) {
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
    grp.sync();
  }

  __device__ void column_done(int rho_w) {
    for (int c = grp.tid; c < P::MW; c += P::kThreads) {
      const int ow = (qw0 + c) * g.stride_w + rho_w;
      if (ow < g.W_out) p.partial[(int64_t(n) * tiles_h + tile_h) * g.W_out + ow] = sh.col_sum[c];
      sh.col_sum[c] = 0.0;
    }
    // Each col_sum entry is only ever touched by the same thread: no barrier needed.
  }
};

}  // namespace ctfuse
