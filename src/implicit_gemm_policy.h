// Tile shapes and pipeline depth of the implicit-GEMM mainloop: plain data, separate
// from the algorithm (implicit_gemm.cuh) and the launch (convt.cu, forward.cu).
//
// GEMM view of one output phase: rows = phase pixels (a block takes MH x MW of them,
// BM in all), columns = output channels (BN per tile; a block walks every column tile),
// reduction = input channels x the phase's taps, BK at a time.
// Every entry must fit the RTX 4090 (sm_89): <= 99 KB shared memory per block, and
// registers for one block per SM (64K); tests/test_api.cpp checks the table.
#pragma once

#include <cstddef>

#include "ctfuse/types.h"

namespace ctfuse {

// The tensor-core instruction the mainloop is built on.
enum class MmaEngine {
  kMmaSync,   // mma.sync m16n8k8: sm_80 and later, the RTX 4090 included
  kWgmma,     // wgmma m64n128k8, one warpgroup (4 warps) per instruction: sm_90a only
  kWgmmaTma,  // wgmma, with x and the weights brought in by the TMA unit (sm_90a; x rows
              // 16-byte aligned): no per-thread copies at all
};

template <int MH_, int MW_, int BN_, int BK_, int STAGES_, int WARPS_M_, int WARPS_N_, int MIN_BLOCKS_ = 1,
          MmaEngine ENGINE_ = MmaEngine::kMmaSync, bool PHASE_PAIRS_ = false>
struct ImplicitGemmPolicy {
  static constexpr int kMinBlocksPerSM = MIN_BLOCKS_;  // __launch_bounds__: caps registers
  static constexpr MmaEngine kEngine = ENGINE_;
  static constexpr bool kWgmma = ENGINE_ != MmaEngine::kMmaSync;
  static constexpr bool kTma = ENGINE_ == MmaEngine::kWgmmaTma;
  // Column-phase pairs (stride_w = 2 only, store epilogue): the GEMM tile holds both column
  // phases of its pixels, rho_w = 0 in accumulator columns [0, BN) and rho_w = 1 in
  // [BN, 2 BN), so a thread ends with y[co][oh][2q] and y[co][oh][2q + 1] side by side
  // and writes them as one 8-byte store: whole sectors, nothing parked. Its reduction
  // runs over the input-column offsets d of both phases' taps; where only one phase has a
  // tap at d, only that half is multiplied (an n128 wgmma on half the accumulators), so
  // no product with the weight of a tap a phase lacks is made (an Inf in x stays out of the
  // other phase). Rows are phase-grid pixels (q).
  static constexpr bool kPhasePairs = PHASE_PAIRS_;
  static constexpr int MH = MH_, MW = MW_;  // phase-pixel rows x columns of a block tile
  static constexpr int BM = MH * MW;
  static constexpr int BN = BN_, BK = BK_, STAGES = STAGES_;
  static constexpr int kAccN = PHASE_PAIRS_ ? 2 * BN_ : BN_;  // accumulator (and packed weight) columns
  static constexpr int WARPS_M = WARPS_M_, WARPS_N = WARPS_N_;
  static constexpr int kThreads = 32 * WARPS_M * WARPS_N;
  static constexpr int WM = BM / WARPS_M, WN = kAccN / WARPS_N;  // warp tile

  // A sits in shared memory k-major ([k][pixel], BM floats a row) with the pixel index
  // XOR-swizzled by 8 * (k % 4) (see Mainloop::plan), so the 8-byte fragment loads of a
  // half-warp (4 k's x 4 pixel pairs) and the copies of a warp (32 pixels of one k) both
  // hit 32 distinct banks without padding. B is staged as one packed block
  // (PackedWeights), read lane-contiguously.
  static constexpr int A_STRIDE = BM;
  // TMA policies: A is MH/2 boxes of [BK][2 rows][MW + 4 columns] (x from a 16-byte
  // aligned column, so a tap's shift of 0-3 columns stays inside the box).
  static constexpr int kTmaBoxW = MW + 4;
  static constexpr int kAFloats = kTma ? BK * MH * kTmaBoxW : BK * A_STRIDE;
  static constexpr bool kHaloFeed = false;  // see HaloFed

  static_assert(kWgmma ? WM % 16 == 0 : WM % 32 == 0,
                "a warp's rows come in 16-pixel m-subtiles (mma.sync: in pairs, see Mainloop::mma_stage)");
  static_assert(WN % 16 == 0 && BN % 16 == 0, "B fragments come in pairs of n-subtiles");
  static_assert(!kWgmma || (WN == kAccN && BN == 128 && WARPS_M % 4 == 0),
                "wgmma: each warpgroup (4 warps along M) covers all 128 columns (m64n128k8; pairs: twice)");
  static_assert(!PHASE_PAIRS_ || (ENGINE_ == MmaEngine::kWgmmaTma && WM == 16),
                "column-phase pairs: TMA-fed wgmma, one m64 x 2 BN accumulator per warpgroup");
  static_assert(!kTma || (MW == 32 && MH % 2 == 0 && BK <= 256),
                "TMA boxes of x are 36 columns x 2 rows x BK channels, read as 32 pixels per row");
  static_assert(BK % 8 == 0, "BK is a multiple of the mma's k = 8");
  static_assert(kThreads % BM == 0 || BM % kThreads == 0, "A loads: whole pixels per thread");
  static_assert(BK % (kThreads < BM ? 1 : kThreads / BM) == 0, "A loads: whole k rows per thread");
  static_assert(MW % 16 == 0, "a 16-pixel m-subtile half lies in one phase row");
  static_assert(BM % 32 == 0, "the A swizzle permutes within 32-pixel groups");
  static constexpr int kARowStep = kThreads < BM ? 1 : kThreads / BM;
  static_assert((kARowStep & (kARowStep - 1)) == 0, "A copy rows step by a power of two (Mainloop::plan)");
};

// The portable mainloop fed from a halo tile (mma.sync, TF32): at the start of a block
// tile its threads read the block's whole halo of x (tap_offsets in convt_geometry.cuh),
// every input channel, round it to TF32 once and store it pixel-major ([row][column]
// [channel]), so that every k-step of every phase and tap reads the same tile at its own
// offset, each A fragment with one ldmatrix. The per-k-step stages hold the weights only.
// Where the copy feed gathers x 4 bytes at a time for every tap of every phase and
// rounds each fragment in every warp that reads it (two per fragment here), this reads
// each element once per block tile (1.3x for the halo) and rounds it once.
// A pixel's 64 channels are 16 chunks of 4 (16 bytes); chunk q of halo column c sits at
// chunk q ^ (c % 8), so the 8 consecutive pixels of an ldmatrix hit 8 distinct 16-byte
// bank groups. Used where the halo fits (halo_fits): C_in <= kHaloChannels and at most
// kHaloMaxPixels halo pixels.
template <typename Base>
struct HaloFed : Base {
  static constexpr bool kHaloFeed = true;
  static constexpr int kAFloats = 0;  // the stages hold B only; the halo follows the epilogue's smem
  static constexpr int kHaloChannels = 64, kHaloMaxPixels = 256;
  static constexpr int kHaloLoadBatch = 25;  // see Mainloop::load_halo
  static_assert(Base::kEngine == MmaEngine::kMmaSync && !Base::kPhasePairs, "the halo feed is mma.sync's");
  static_assert(Base::BK == 32, "the one weight-block depth the halo feed has been tested and measured with");
  static_assert(kHaloChannels % Base::BK == 0 && (kHaloChannels / 4) % (Base::kThreads / 32) == 0,
                "halo load: each warp takes whole 4-channel chunks");
};

// Stage size in floats for a math mode (FP32 stages a second, "small" weight block).
template <typename P>
constexpr size_t stage_floats(MathMode m) {
  return size_t(P::kAFloats) + (m == MathMode::kFP32 ? 2 : 1) * size_t(P::BK) * P::kAccN;
}

// Warp-specialised persistent kernel (implicit_gemm.cuh): a consumer warpgroup plus a
// producer warpgroup that hands every k-step to the TMA unit, into a ring of STAGES
// stages guarded by full/empty mbarriers; no block-wide barrier per k-step. TF32, TMA
// feed only. The producer is a whole warpgroup (one thread works) only so that it can
// give its registers to the consumer (setmaxnreg acts on warpgroups): with a single
// producer warp, ptxas capped the 160-thread block at 168 registers for two blocks per
// SM and the consumer spilled 220 bytes (fused_tf32 247.6 us against 194.8).
template <typename P>
constexpr bool kWarpSpecialized = false;
constexpr int kProducerThreads = 128;
constexpr int kProducerRegisters = 24;
template <typename P>
constexpr int block_threads() {
  return kWarpSpecialized<P> ? P::kThreads + kProducerThreads : P::kThreads;
}
// Registers a thread: at launch (kMinBlocksPerSM blocks in an SM's 64K, in steps of 8),
// and the consumer's after the producer has handed over all but kProducerRegisters of
// its own (ptxas compiles the consumer's code for that count: 232 at two blocks per SM).
template <typename P>
constexpr int kLaunchRegisters = (65536 / (P::kMinBlocksPerSM * block_threads<P>())) / 8 * 8;
template <typename P>
constexpr int kConsumerRegisters =
    (kLaunchRegisters<P> + (kLaunchRegisters<P> - kProducerRegisters) * kProducerThreads / P::kThreads) / 8 * 8;

// The most shared memory a halo-fed entry's halo takes (halo_smem_bytes in
// implicit_gemm.cuh is a problem's own); 0 for the other entries.
template <typename P>
constexpr size_t max_halo_smem_bytes() {
  if constexpr (P::kHaloFeed)
    return sizeof(float) * size_t(P::kHaloMaxPixels) * P::kHaloChannels;
  else
    return 0;
}

// The TMA pipeline's per-stage mbarriers (full; and empty when warp-specialised) and, in
// the classic kernel, its column shifts follow the stages; the stages start on a 128-byte
// boundary, as TMA destinations must (up to 128 bytes of padding).
template <typename P>
constexpr size_t tma_control_bytes() {
  return P::kTma ? 16 * (((kWarpSpecialized<P> ? 16 : 12) * P::STAGES + 15) / 16) : 0;
}
template <typename P>
constexpr size_t tma_barrier_bytes() {
  return P::kTma ? 128 + tma_control_bytes<P>() : 0;
}

template <typename P>
constexpr size_t mainloop_smem_bytes(MathMode m) {
  return sizeof(float) * P::STAGES * stage_floats<P>(m) + tma_barrier_bytes<P>();
}

// The two epilogues (epilogues.cuh); each has its own entries in the table below.
enum class EpilogueKind {
  kStore,   // y = acc + conv bias, stored (conv_transpose2d, the unfused path)
  kMinSum,  // min over channels, sum over rows: y is never stored (the fused forward)
};

// The store epilogue holds, for stride_w = 2, the whole rho_w = 0 tile until its rho_w = 1
// partner is done (so y is written in whole sectors): in shared memory, or, for the
// entries that specialise this to true, in each thread's registers (no smem, but the
// tile's registers stay live through the partner's mainloop).
template <typename P>
constexpr bool kParkInRegisters = false;

// Whether an entry's epilogue starts the accumulators at the conv bias (the tensor cores
// add it with the products) or adds it at the end. H200, benchmark shape, same call: at
// start, convt_tf32 382.5 -> 352.4 us, fused_tf32 214.3 -> 207.6, fused_fp32 506.8 ->
// 492.4, convt_fp32 612.9 -> 594.4, fused_tf32_mma_sync 310.0 -> 305.6; but the narrow
// entries of the first benchmark version (C_in = 3: one k-step per GEMM tile, so the bias
// loads sit right before it) lose (convt 38.8 -> 43.2, fused 42.5 -> 43.9), and so does
// the mma.sync store entry (convt_tf32_mma_sync 752.9 -> 824.8), which is specialised
// below. See also StoreEpilogue::kBiasAtStart.
template <typename P>
constexpr bool kBiasAtStart = P::BN > 64;

// Shared memory of the two epilogues (epilogues.cuh static_asserts that they match). The
// store epilogue holds a warp's 8-channel transpose and maybe the parked tile.
template <typename P>
constexpr size_t store_epilogue_smem_bytes() {
  return sizeof(float) *
         (P::WARPS_M * P::WARPS_N * 8 * P::WM + (kParkInRegisters<P> || P::kPhasePairs ? 0 : P::BM * P::BN));
}
// The min/sum epilogue sums a column's phases in registers where a warp holds all of a
// tile's channels (see MinSumEpilogue): the wgmma entries. The narrow mma.sync entries
// could too, but it costs them 18 registers (122 -> 140: one 256-thread block per SM
// where there were two).
template <typename P>
constexpr bool min_sum_in_registers() {
  return P::kWgmma && P::WARPS_N == 1;
}
template <typename P>
constexpr size_t min_sum_epilogue_smem_bytes() {
  return min_sum_in_registers<P>() ? sizeof(double) * 2 * P::BM
                                   : sizeof(float) * P::WARPS_N * P::BM + sizeof(double) * P::MW;
}
template <typename P>
constexpr size_t epilogue_smem_bytes(EpilogueKind e) {
  return e == EpilogueKind::kStore ? store_epilogue_smem_bytes<P>() : min_sum_epilogue_smem_bytes<P>();
}
// A block's dynamic shared memory: the stages, then the epilogue's.
template <typename P>
constexpr size_t gemm_smem_bytes(MathMode m, EpilogueKind e) {
  return mainloop_smem_bytes<P>(m) + epilogue_smem_bytes<P>(e);
}

// --- The table ---------------------------------------------------------------------
// TF32, C_out > 64, mma.sync (every GPU but sm_90). Fused op at the benchmark shape on
// the H100, 2026-11-25 (build/exp sweep, median of 20, no L2 scrub, before the epilogue's
// bias loads were fixed):  256x128 bk16 s3: 410 us | 256x128 bk16 s4: 412 | 256x128 bk32
// s2: 388 | 128x128 bk32 s3: 378 | 128x128 bk32 s2: 350 | 128x128 bk16 s4: 386 | 64x128
// bk32 s3: 512. Two stages leave more L1 for the re-read x lines (two 64 KB blocks per SM
// on the H100; one on the 4090).
using GemmTF32Wide = ImplicitGemmPolicy<4, 32, 128, 32, 2, 2, 2>;
using GemmTF32WideHalo = HaloFed<GemmTF32Wide>;
// TF32, C_out > 64 on sm_90 (H100/H200): wgmma, one warpgroup of 128 threads per block,
// 128 pixels x 128 channels (two m64n128k8 per k8 step), two blocks per SM whose
// barriers and epilogues interleave. Fused op at the benchmark shape, H100, 2026-11-25
// (build/exp sweeps, median of 20, no L2 scrub):
//  - cp.async feed (W_in % 4 != 0 or an unaligned x): this 273 us | bk32 s3: 279 |
//    256x128 (2 warpgroups) bk32 s2: 280 | 256x128 bk16 s4: 309 | bk16 s4, 3 blocks: 300;
//    mma.sync entry above in the same run: 315.
//  - TMA feed: this 244 us | bk32 s3 (104 KB, over the 4090 limit): 241 | 256x128 bk32 s2:
//    263 | bk16 s4: 289 | bk64 s2, one block per SM: 352.
using GemmTF32Wgmma = ImplicitGemmPolicy<4, 32, 128, 32, 2, 4, 1, 2, MmaEngine::kWgmma>;
// TMA feed, fused op: warp-specialised (a producer warpgroup beside the consumer), BK 16 x
// 5 stages (89 KB), two blocks per SM. Fused op at the benchmark shape, H200, 2026-12-03
// (bench, median of 30, same call, twice): this 182.3 / 181.9 us | bk16 s4 184.0 / 184.7 |
// bk8 s8 205.4 | the classic kernel (the cp.async entry's shape, bk32 s2) 194.9 / 195.0;
// an earlier call: warp-specialised bk32 s2 203.9 / 204.2.
using GemmTF32WgmmaTma = ImplicitGemmPolicy<4, 32, 128, 16, 5, 4, 1, 2, MmaEngine::kWgmmaTma>;
template <>
constexpr bool kWarpSpecialized<GemmTF32WgmmaTma> = true;
// TF32, C_out <= 64 (e.g. the benchmark's first version, C_out = 16): 256 x 32 tiles.
using GemmTF32Narrow = ImplicitGemmPolicy<8, 32, 32, 16, 4, 8, 1>;
// FP32 (3xTF32): warp tiles of 32 x 32, since the split operands and the per-stage
// partial accumulator (see Mainloop::mma) double the fragment registers; big and small
// weight blocks are both staged.
using GemmFP32Wide = ImplicitGemmPolicy<4, 32, 64, 16, 3, 4, 2>;
using GemmFP32Narrow = ImplicitGemmPolicy<8, 32, 32, 16, 3, 8, 1>;
// FP32 (3xTF32), C_out > 64 on sm_90: wgmma, three m64n128k8 per k8 step into a per-stage
// partial accumulator, so one warpgroup holds 64 pixels (64 + 64 accumulator registers a
// thread); two blocks per SM, 84 KB. Fused op at the benchmark shape, H200, 2026-12-02
// (bench, median of 30): this 601.8 us | bk16 s3 (the store entry below) 708.6: the
// tensor pipe drains once per stage, so deeper stages pay.
using GemmFP32Wgmma = ImplicitGemmPolicy<2, 32, 128, 32, 2, 4, 1, 2, MmaEngine::kWgmma>;
using GemmFP32WgmmaTma = ImplicitGemmPolicy<2, 32, 128, 32, 2, 4, 1, 2, MmaEngine::kWgmmaTma>;

// The store epilogue's entries (conv_transpose2d, unfused path): a block holds a whole
// BM x BN tile of the rho_w = 0 phase until its partner is computed (TF32: in shared
// memory; FP32: in registers, see below), so its tiles are half the fused ones' (64
// pixels x 128 channels = 32 KB).
// mma.sync: 8 warps of 32 x 32, 76 KB (two blocks per SM on the H100, one on the 4090).
// Its registers are capped at 128 (two blocks per SM): uncapped, ptxas gave it 135 on
// sm_90 after the phase table came in, one block per SM, and convt_tf32_mma_sync went
// 615.1 -> 727.3 us (H200).
using GemmTF32WideStore = ImplicitGemmPolicy<2, 32, 128, 16, 3, 2, 4, 2>;
// wgmma: one warpgroup, 73 KB, three blocks per SM. conv_transpose2d TF32 at the benchmark
// shape, H200, 2026-12-02 (bench, median of 30): this 419.5 us | bk32 s2 (84 KB, two
// blocks per SM) 450.3.
using GemmTF32WgmmaStore = ImplicitGemmPolicy<2, 32, 128, 16, 3, 4, 1, 3, MmaEngine::kWgmma>;
using GemmTF32WgmmaTmaStore = ImplicitGemmPolicy<2, 32, 128, 16, 3, 4, 1, 3, MmaEngine::kWgmmaTma>;
// stride_w = 2, TMA feed: column-phase pairs on the warp-specialised kernel, as the fused
// entry but with 64 phase pixels x (2 x 128) accumulator columns a block. conv_transpose2d
// TF32 at the benchmark shape, H200, 2026-12-03 (bench, median of 30, same call): this
// 305.4 / 305.6 us | bk8 s8 344.5 | bk32 s2 358.9 | one block per SM with two consumer warpgroups of
// m64n256 (128 pixels a block, each weight block serving both): bk16 s3 355.9, bk8 s7
// 365.4 | the 64-pixel tiles parked in shared memory (GemmTF32WgmmaTmaStore) 355.3-356.5.
// Later the same day, with lean wgmma descriptors, one commit per halves branch and the
// whole-tile store (StoreEpilogue::store_whole_phase_pairs): 278.4 / 279.7 us.
using GemmTF32WgmmaTmaPairs = ImplicitGemmPolicy<2, 32, 128, 16, 4, 4, 1, 2, MmaEngine::kWgmmaTma, true>;
template <>
constexpr bool kWarpSpecialized<GemmTF32WgmmaTmaPairs> = true;
// FP32 wgmma: the fused entries themselves (BK 32 x 2 stages, 84 KB), with the rho_w = 0
// tile parked in registers (the 32 KB it would take in shared memory do not fit beside
// them within the 4090's 99 KB; the mainloop then keeps fewer k8 steps in flight, see
// Mainloop's kLeanRegisters): two blocks per SM. conv_transpose2d FP32 at the benchmark
// shape, H200, 2026-12-02 (bench, median of 30, same call, before kLeanRegisters, which
// took the TMA-fed 709.3 to 685.8): TMA feed: this 709.3 us | bk16 s3 parked in shared memory (97 KB) 750.7
// | bk16 s3 parked in registers 737.0; cp.async feed (W_in = 130): this 982.6 | bk16 s3 in
// shared memory 1023.6. Registers do not pay for TF32's entries above, which would lose
// their third block per SM: bk32 s2 460.7 and bk16 s3 482.1 against 404.9.
using GemmFP32WgmmaStore = GemmFP32Wgmma;
using GemmFP32WgmmaTmaStore = GemmFP32WgmmaTma;
template <>
constexpr bool kParkInRegisters<GemmFP32WgmmaStore> = true;
template <>
constexpr bool kParkInRegisters<GemmFP32WgmmaTmaStore> = true;
template <>
constexpr bool kBiasAtStart<GemmTF32WideStore> = false;
// C_out <= 64, either math mode: 128 x 32 tiles.
using GemmNarrowStore = ImplicitGemmPolicy<4, 32, 32, 16, 3, 4, 1>;

// Which entry each epilogue takes, by math mode, mainloop and width (C_out <= 64 is
// narrow); convt_dispatch.h's with_gemm_config picks from here.
template <EpilogueKind>
struct GemmTable;
template <>
struct GemmTable<EpilogueKind::kMinSum> {
  using TF32Wide = GemmTF32Wide;
  using TF32WideHalo = GemmTF32WideHalo;
  using TF32Wgmma = GemmTF32Wgmma;
  using TF32WgmmaTma = GemmTF32WgmmaTma;
  using TF32WgmmaTmaPairs = GemmTF32WgmmaTma;  // the min/sum epilogue takes the phases one by one
  using TF32Narrow = GemmTF32Narrow;
  using FP32Wide = GemmFP32Wide;
  using FP32Wgmma = GemmFP32Wgmma;
  using FP32WgmmaTma = GemmFP32WgmmaTma;
  using FP32Narrow = GemmFP32Narrow;
};
template <>
struct GemmTable<EpilogueKind::kStore> {
  using TF32Wide = GemmTF32WideStore;
  using TF32WideHalo = GemmTF32WideStore;  // the store epilogue has no halo entry
  using TF32Wgmma = GemmTF32WgmmaStore;
  using TF32WgmmaTma = GemmTF32WgmmaTmaStore;
  using TF32WgmmaTmaPairs = GemmTF32WgmmaTmaPairs;  // stride_w = 2
  using TF32Narrow = GemmNarrowStore;
  using FP32Wide = GemmFP32Wide;
  using FP32Wgmma = GemmFP32WgmmaStore;
  using FP32WgmmaTma = GemmFP32WgmmaTmaStore;
  using FP32Narrow = GemmNarrowStore;
};

}  // namespace ctfuse
