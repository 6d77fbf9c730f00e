// The one mainloop: a transposed convolution as per-phase implicit GEMMs on tensor
// cores, with a pluggable epilogue. convt.cu plugs in "add bias, store y"; forward.cu
// plugs in "add bias, min over channels, sum over rows", so y is never stored.
// The policy (implicit_gemm_policy.h) picks the instruction set and the feed:
//  - mma.sync m16n8k8 TF32 fed by a cp.async multi-stage pipeline (every GPU);
//  - the same with A from a halo tile of x loaded once per block tile (HaloFed: the
//    min/sum epilogue's TF32 entry where the halo fits);
//  - wgmma m64n128k8 (sm_90a) with the same cp.async feed;
//  - wgmma fed by the TMA unit: thread 0 issues each k-step's x boxes and weight block,
//    and an mbarrier per stage replaces the cp.async groups;
//  - the same, warp-specialised (kWarpSpecialized): a producer warpgroup issues the
//    copies into a ring of stages, the consumer warpgroup only waits and computes.
//
// A block owns one image n and an MH x MW tile of the phase grid (Qh, Qw), and walks
//   for every GEMM tile (output phase (rho_h, rho_w) x a tile of BN output channels),
//   in the order its epilogue asks for (TileWalk):
//     acc = sum over the phase's taps and C_in of x_tap[pixel, ci] * w_tap[ci, co]
//     epilogue.consume(acc)
// The producer runs STAGES-1 k-steps ahead of the consumer along that same sequence,
// across GEMM-tile boundaries, so loads keep flowing while an epilogue runs.
// FP32 mode (3xTF32) splits x and the weights into TF32 big and small parts and adds
// three products per step on either instruction set.
//
// Operand layouts, chosen so that fragments come from conflict-free shared loads with
// no register shuffling:
//  - A (x) arrives k-major ([ci][pixel], as NCHW x is) through 4-byte cp.async (a tap's
//    shift breaks 16-byte alignment; the TMA feed instead loads boxes from the aligned
//    column before the tap and shifts when reading). The mma reduces over k in any order and its rows
//    can be relabelled, so m-subtile i takes pixel 16i + 2g as row g and the
//    next pixel as row g + 8 (g = lane/4, t = lane%4): a fragment is two 8-byte loads,
//    (pixels 2g, 2g+1) at k = t and at k = t + 4.
//  - Halo feed: A is the block tile's halo of x, [pixel][channel] and TF32-rounded as it is
//    loaded; an ldmatrix gives a thread its whole fragment (rows g, g + 8 are pixels
//    16i + g and 16i + g + 8, as with TMA).
//  - B (weights) is repacked once per call (pack_weights_kernel) into exactly the order
//    the fragments want, so a 16-byte load gives one lane both registers of two n-subtiles.
//  - wgmma (sm_90a) takes the same A fragments from registers, so its accumulators come
//    out in the same layout; B is read by the tensor cores straight from shared memory.
// Accumulator (i, j, v) of a thread: pixel wm0 + 16i + 2g + v/2 (TMA-fed wgmma and the
// halo feed: the natural wm0 + 16i + g + 8(v/2)), channel wn0 + 8j + 2t + v%2.
#pragma once

#include <cstdint>

#include <cuda.h>  // CUtensorMap (a plain struct: no driver library is linked)

#include "convt_geometry.cuh"
#include "implicit_gemm_policy.h"
#include "ptx.cuh"

namespace ctfuse {

// ---- B: the packed weights -----------------------------------------------------------
// Blocks of BK x BN (zero-padded past C_in and C_out), indexed [kh][kw][chunk][n_tile].
// Column-phase pairs (P::kPhasePairs): blocks of BK x 2 BN indexed [kh][u][chunk][n_tile],
// u an entry of the pair table (w_pair_entry), columns [0, BN) the rho_w = 0 tap at its
// offset and [BN, 2 BN) the rho_w = 1 tap (zero where a phase has none).
// Inside a block, element (k, n) sits where its reader wants it:
//  - mma.sync: where lane g*4+t of the warp reading n-subtiles (2np, 2np+1) finds it,
//    [k/8][n/16][lane][(n/8)%2][k%8/4], so one 16-byte load fills two fragments;
//  - wgmma: in the K-major, unswizzled core-matrix layout the shared-memory descriptor
//    describes, [k/8][n/8][k%8/4][n%8][k%4]: 8 x 4 core matrices of 128 contiguous bytes,
//    128 bytes apart along K and 256 along N (see Mainloop::wgmma_stage).
template <typename P>
struct PackedWeights {
  static constexpr int kBlockFloats = P::BK * P::kAccN;
  static constexpr uint32_t kWgmmaKStrideBytes = 128, kWgmmaNStrideBytes = 256;
  static constexpr uint32_t kWgmmaK8Bytes = P::kAccN * 8 * sizeof(float);  // one k8 slice of a block
  static constexpr uint32_t kWgmmaHalfBytes = P::BN * 8 * sizeof(float);   // pairs: one phase's half of it

  __host__ __device__ static int chunks(const ConvTGeometry& g) { return (g.C_in + P::BK - 1) / P::BK; }
  __host__ __device__ static int n_tiles(const ConvTGeometry& g) { return (g.C_out + P::BN - 1) / P::BN; }
  __host__ __device__ static int taps_w(const ConvTGeometry& g) { return P::kPhasePairs ? g.w_pairs : g.kernel_w; }
  __host__ __device__ static int64_t blocks(const ConvTGeometry& g) {
    return int64_t(g.kernel_h) * taps_w(g) * chunks(g) * n_tiles(g);
  }
  __host__ __device__ static int64_t floats(const ConvTGeometry& g) { return blocks(g) * kBlockFloats; }
  // kw: the tap, or for pairs the pair-table entry u.
  __host__ __device__ static int64_t block(const ConvTGeometry& g, int kh, int kw, int chunk, int n_tile) {
    return ((int64_t(kh) * taps_w(g) + kw) * chunks(g) + chunk) * n_tiles(g) + n_tile;
  }
  // The phase table (PhaseTable) follows the packed weights (pack_weights_kernel).
  __host__ __device__ static int64_t floats_with_phase_table(const ConvTGeometry& g) {
    return floats(g) + 4 * int64_t(phase_table_entries(g));
  }
  __host__ __device__ static PhaseTable phase_table(const float* packed, const ConvTGeometry& g) {
    return PhaseTable{reinterpret_cast<const int4*>(packed + floats(g)), g.stride_h, g.stride_w};
  }

  __host__ __device__ static int offset_in_block(int k, int n) {
    if constexpr (P::kWgmma) {
      return ((((k / 8) * (P::kAccN / 8) + n / 8) * 2 + (k % 8) / 4) * 8 + n % 8) * 4 + k % 4;
    } else {
      const int lane = (n % 8) * 4 + k % 4;
      return (((k / 8) * (P::BN / 16) + n / 16) * 32 + lane) * 4 + ((n / 8) % 2) * 2 + (k % 8) / 4;
    }
  }
};

// w [C_in, C_out, kh, kw] -> packed, TF32-rounded once here so the weight fragments need
// no conversion; FP32 mode also stores the rounding residual (3xTF32's small part).
// A block packs one slice of kPackThreads elements of a weight block (BK x kAccN) at a
// time, one element a thread, striding over the slices past the grid (kMaxPackBlocks);
// the slice's tap, chunk, channel tile and pair entry are the same for all its threads.
// At the benchmark shape (576 blocks) the kernel is launch and DRAM latency: 4.8 us in
// ncu, as with the per-element indexing before it. Each block also records whether it
// read a NaN or Inf (nonfinite_fallback.cuh).
constexpr int kPackThreads = 256;
template <typename P>
constexpr int kPackSlicesPerBlock = (PackedWeights<P>::kBlockFloats + kPackThreads - 1) / kPackThreads;
template <typename P>
__host__ __device__ int64_t pack_slices(const ConvTGeometry& g) {
  return PackedWeights<P>::blocks(g) * kPackSlicesPerBlock<P>;
}

template <typename P, MathMode kMath>
__global__ void __launch_bounds__(kPackThreads)
    pack_weights_kernel(ConvTGeometry g, const float* __restrict__ w, float* __restrict__ big,
                        float* __restrict__ small, int* __restrict__ nonfinite_flags) {
  ptx::allow_next_grid();  // the GEMM: resident and waiting when the packing ends
  using PW = PackedWeights<P>;
  if (blockIdx.x == 0) {
    int4* table = reinterpret_cast<int4*>(big + PW::floats(g));
    for (int e = threadIdx.x; e < phase_table_entries(g); e += kPackThreads) table[e] = phase_table_entry(g, e);
  }
  int saw_nonfinite = 0;
  for (int64_t slice = blockIdx.x; slice < pack_slices<P>(g); slice += gridDim.x) {
    const int64_t b = slice / kPackSlicesPerBlock<P>;
    const int r = int(slice % kPackSlicesPerBlock<P>) * kPackThreads + int(threadIdx.x);
    if (r >= PW::kBlockFloats) continue;
    int64_t rest = b;  // PackedWeights::block's index, taken apart from its fastest digit on
    const int n_tile = int(rest % PW::n_tiles(g));
    rest /= PW::n_tiles(g);
    const int chunk = int(rest % PW::chunks(g));
    rest /= PW::chunks(g);
    const int u = int(rest % PW::taps_w(g));
    const int kh = int(rest / PW::taps_w(g));
    const int k = r / P::kAccN, n = r % P::kAccN;
    int kw = u;
    if constexpr (P::kPhasePairs) {  // u is a pair-table entry: the tap of column n's phase
      const int4 pair = w_pair_entry(g, u);
      kw = n < P::BN ? pair.y : pair.z;
    }
    const int ci = chunk * P::BK + k, co = n_tile * P::BN + n % P::BN;
    float v = 0.f;
    if (ci < g.C_in && co < g.C_out && kw >= 0) v = w[((int64_t(ci) * g.C_out + co) * g.kernel_h + kh) * g.kernel_w + kw];
    const float hi = __uint_as_float(ptx::tf32_round(v));
    saw_nonfinite |= !isfinite(hi);  // also a finite weight that rounds up to inf
    const int64_t dst = b * PW::kBlockFloats + PW::offset_in_block(k, n);
    big[dst] = hi;
    if constexpr (kMath == MathMode::kFP32) small[dst] = isfinite(v) ? __uint_as_float(ptx::tf32_round(v - hi)) : 0.f;
  }
  saw_nonfinite = __syncthreads_or(saw_nonfinite);
  if (threadIdx.x == 0) nonfinite_flags[blockIdx.x] = saw_nonfinite;
}

struct ConvTOperands {
  const float* x;        // [N, C_in, H_in, W_in]
  const float* w_big;    // PackedWeights<P>, TF32-rounded
  const float* w_small;  // FP32 mode: the residuals, same layout; else null
};

// ---- The halo feed's tile (HaloFed) --------------------------------------------------
// Where a block tile's halo starts relative to its first phase pixel, and its extent.
struct HaloShape {
  int dih_min, diw_min, rows, cols;
};
template <typename P>
__host__ __device__ HaloShape halo_shape(const ConvTGeometry& g) {
  const TapOffsets h = tap_offsets_h(g), w = tap_offsets_w(g);
  return {h.min, w.min, P::MH + h.span, P::MW + w.span};
}
// Whether a problem runs on P's halo feed (else on the copy feed of the policy HaloFed
// derives from), and the halo's shared memory.
template <typename P>
bool halo_fits(const ConvTGeometry& g) {
  if constexpr (!P::kHaloFeed) {
    return false;
  } else {
    const HaloShape h = halo_shape<P>(g);
    return g.C_in <= P::kHaloChannels && int64_t(h.rows) * h.cols <= P::kHaloMaxPixels;
  }
}
template <typename P>
size_t halo_smem_bytes(const ConvTGeometry& g) {
  if constexpr (!P::kHaloFeed) {
    return 0;
  } else {
    const HaloShape h = halo_shape<P>(g);
    return sizeof(float) * size_t(h.rows) * size_t(h.cols) * P::kHaloChannels;
  }
}

// ---- The threads that compute one tile ------------------------------------------------
// The whole block (the classic kernel), or the consumer warpgroup of the warp-specialised kernel,
// which meets at its own named barrier. Epilogues index and synchronise through this.
struct ThreadGroup {
  int tid;      // thread index within the group
  int barrier;  // 0: __syncthreads; else the group's named barrier
  int size;

  __device__ static ThreadGroup block() { return {int(threadIdx.x), 0, int(blockDim.x)}; }
  __device__ int warp() const { return tid / 32; }
  __device__ int lane() const { return tid % 32; }
  __device__ void sync() const {
    if (barrier == 0)
      __syncthreads();
    else
      ptx::named_barrier_sync(barrier, size);
  }
};

// ---- Where a thread's accumulators live; the epilogues see only this ------------------
template <typename P>
struct AccLayout {
  static constexpr int MI = P::WM / 16;  // m-subtiles per warp
  static constexpr int NJ = P::WN / 8;   // n-subtiles per warp

  int wm0, wn0, g, t;

  __device__ explicit AccLayout(int warp, int lane)
      : wm0((warp / P::WARPS_N) * P::WM), wn0((warp % P::WARPS_N) * P::WN), g(lane / 4), t(lane % 4) {}

  __device__ int pixel(int i, int v) const {
    return P::kTma || P::kHaloFeed ? wm0 + 16 * i + g + 8 * (v / 2) : wm0 + 16 * i + 2 * g + v / 2;
  }
  __device__ int channel(int j, int v) const { return wn0 + 8 * j + 2 * t + v % 2; }
  __device__ int warp_n() const { return wn0 / P::WN; }
};

template <typename P>
using Accumulators = float[AccLayout<P>::MI][AccLayout<P>::NJ][4];

// ---- The walk over (GEMM tile, tap, input-channel chunk) ------------------------------
// A block computes s_h x s_w x n_tiles GEMM tiles (one per phase and channel tile), in
// the order its epilogue needs (EpilogueKind):
//  - kMinSum: rho_w, then rho_h, then the channel tile: a pixel's channel minimum is
//    complete after its phase's last channel tile, a column's row sum after its rho_w's
//    last phase;
//  - kStore: rho_h, then the channel tile, then rho_w: the rho_w phases of one output
//    row region come one after the other, so the epilogue can interleave them and write
//    y in whole sectors. Column-phase pairs (P::kPhasePairs): one GEMM tile per rho_h
//    and channel tile holds both rho_w phases.
struct GemmTile {
  int rho_h, rho_w, n_tile;
};

struct KStep {
  GemmTile t;
  bool done;  // past the last GEMM tile
  int ti, tj, chunk;
  PhaseTaps taps;
  int kh, kw, dih, diw;  // the current tap (pairs: kw is the pair-table entry) and its input offset
  int halves;            // pairs: bit r set if column phase rho_w = r has a tap here; else 3
};

// Shared by producer and consumer, so they cannot disagree. No divisions: GEMM tiles and
// taps advance by counters, taps by a fixed kernel step and input shift (see
// convt_geometry.cuh). Column-phase pairs (kPairs): a GEMM tile covers both column
// phases (its rho_w is 0), and its column taps are the pair table's entries.
template <EpilogueKind kOrder, bool kPairs = false>
struct TileWalk {
  const ConvTGeometry* g;
  int n_tiles, chunks;
  PhaseTable phases;

  __device__ PhaseTaps taps(GemmTile t) const {
    PhaseTaps p = phases.taps(t.rho_h, t.rho_w);
    if constexpr (kPairs) p.nw = g->w_pairs;
    return p;
  }
  // The k-steps of GEMM tile t.
  __device__ int ksteps(GemmTile t) const { return taps(t).count() * chunks; }

  // The GEMM tile after `t` in the walk order; false after the last one.
  __device__ bool next_tile(GemmTile& t) const {
    if constexpr (kOrder == EpilogueKind::kMinSum) {
      if (++t.n_tile < n_tiles) return true;
      t.n_tile = 0;
      if (++t.rho_h < g->stride_h) return true;
      t.rho_h = 0;
      return ++t.rho_w < g->stride_w;
    } else {
      if (!kPairs && ++t.rho_w < g->stride_w) return true;
      t.rho_w = 0;
      if (++t.n_tile < n_tiles) return true;
      t.n_tile = 0;
      return ++t.rho_h < g->stride_h;
    }
  }
  __device__ bool valid(const KStep& s) const { return !s.done; }

  // First k-step of GEMM tile `t` or a later one, skipping phases without taps.
  __device__ KStep first_from(GemmTile t) const {
    KStep s{};
    s.t = t;
    do {
      s.taps = taps(s.t);
      if (s.taps.count() > 0) {
        s.kh = s.taps.kh0; s.dih = s.taps.dih0;
        first_column_tap(s);
        return s;
      }
    } while (next_tile(s.t));
    s.done = true;
    return s;
  }

  __device__ void first_column_tap(KStep& s) const {
    if constexpr (kPairs) {
      column_pair(s);
    } else {
      s.kw = s.taps.kw0; s.diw = s.taps.diw0; s.halves = 3;
    }
  }
  __device__ void column_pair(KStep& s) const {  // pairs: entry s.tj of the table
    const int4 e = phases.w_pair(s.tj);
    s.kw = s.tj; s.diw = e.x; s.halves = (e.y >= 0 ? 1 : 0) | (e.z >= 0 ? 2 : 0);
  }

  __device__ void advance(KStep& s) const {
    if (++s.chunk < chunks) return;
    s.chunk = 0;
    if (++s.tj < s.taps.nw) {
      if constexpr (kPairs)
        column_pair(s);
      else {
        s.kw += g->tap_step_w; s.diw -= g->diw_step;
      }
      return;
    }
    s.tj = 0;
    first_column_tap(s);
    if (++s.ti < s.taps.nh) { s.kh += g->tap_step_h; s.dih -= g->dih_step; return; }
    GemmTile t = s.t;
    if (next_tile(t))
      s = first_from(t);
    else
      s.done = true;
  }
};

// ---- Producer and warp-level MMA ------------------------------------------------------
// kLeanRegisters: the epilogue keeps registers live through the mainloop (the store
// epilogue's parked tile, kParkInRegisters), so FP32 wgmma retires each k8 step's A
// operands before issuing the next (see wgmma_stage).
template <typename P, MathMode kMath, bool kLeanRegisters = false>
struct Mainloop {
  static constexpr int kAFloats = P::kAFloats;
  static constexpr int kBFloats = PackedWeights<P>::kBlockFloats;
  static constexpr int kStageFloats = int(stage_floats<P>(kMath));
  // TF32 wgmma fed by TMA with one warpgroup per block: a stage's wgmmas may run on into
  // the next k-step; finish_tile() waits for them before the epilogue reads the
  // accumulators. H200, 2026-12-02, same call: convt_tf32 416.8 -> 402.8 us, fused_tf32
  // 248.3 -> 245.8. Not for the cp.async feed, whose copies are spread over the k8 steps
  // and then come later: fused_tf32 at W_in = 130 went 352.1 -> 369.4.
  static constexpr bool kDeferDrain = P::kTma && kMath == MathMode::kTF32 && P::WARPS_M * P::WARPS_N == 4;
  // A copies: each thread owns kPixels pixels (one per pass) and the k rows k0 + r*kKStep.
  static constexpr int kPixelsPerPass = P::kThreads < P::BM ? P::kThreads : P::BM;
  static constexpr int kPasses = P::BM / kPixelsPerPass;
  static constexpr int kKStep = P::kThreads / kPixelsPerPass;
  static constexpr int kRows = P::BK / kKStep;

  const ConvTGeometry& g;
  const ConvTOperands& op;
  float* smem;  // STAGES x [A: kAFloats][B: packed block][B small (FP32)]
  uint32_t smem_u32;  // its shared-memory address
  int n, qh0, qw0;
  const CUtensorMap* x_map;  // kTma: x as the TMA unit sees it
  uint64_t* bars;            // kTma: one mbarrier per stage, after the stages
  int* shifts;               // kTma: per stage, the tap's column shift inside the box (0-3)
  float* halo;               // kHaloFeed: the block tile's halo of x (HaloFed)
  HaloShape hs;              // kHaloFeed: its shape

  __device__ float* stage_a(int s) const { return smem + s * kStageFloats; }
  __device__ float* stage_b(int s) const { return stage_a(s) + kAFloats; }
  static constexpr uint32_t kFloatBytes = sizeof(float);  // 32-bit shared-memory address arithmetic
  __device__ uint32_t stage_a_addr(int s) const { return smem_u32 + kFloatBytes * s * kStageFloats; }
  __device__ uint32_t stage_b_addr(int s) const { return stage_a_addr(s) + kFloatBytes * kAFloats; }

  // The copies of one k-step, worked out once and then issued in slices between the
  // mma's k8 steps (so the scheduler can overlap them with tensor-core work). A copy
  // whose element does not exist (outside the image, past C_in, or no k-step left) is
  // zero-filled by cp.async itself (source size 0: nothing is read).
  struct LoadPlan {
    const float* src[kPasses];  // x at row k0 of this thread's pixel in each pass
    uint32_t dst[kPasses][4];   // its shared-memory columns (addresses), one per k % 4 swizzle
    bool in_image[kPasses];
    int k_valid;                // rows r*kKStep < k_valid exist
    int64_t plane;
    const float* b_src;
    uint32_t b_dst;
    bool active;
  };

  __device__ LoadPlan plan(const KStep& s, bool active, int stage) const {
    LoadPlan lp;
    const int ci0 = s.chunk * P::BK;
    const int k0 = threadIdx.x / kPixelsPerPass;
    lp.plane = int64_t(g.H_in) * g.W_in;
    lp.k_valid = active ? g.C_in - ci0 - k0 : 0;
    lp.active = active;
    const float* x_n = op.x + (int64_t(n) * g.C_in + ci0 + k0) * lp.plane;
#pragma unroll
    for (int pass = 0; pass < (P::kHaloFeed ? 0 : kPasses); ++pass) {
      const int m = pass * kPixelsPerPass + threadIdx.x % kPixelsPerPass;
      const int ih = qh0 + m / P::MW + s.dih;
      const int iw = qw0 + m % P::MW + s.diw;
      lp.in_image[pass] = unsigned(ih) < unsigned(g.H_in) && unsigned(iw) < unsigned(g.W_in);
      lp.src[pass] = x_n + int64_t(ih) * g.W_in + iw;
      // Row k = k0 + r*kKStep lands in column m ^ 8*(k % 4); as k0 < kKStep (a power of
      // two), k % 4 = (k0 % 4) ^ (r*kKStep % 4): at most 4 distinct columns per thread.
#pragma unroll
      for (int j = 0; j < 4; ++j)
        lp.dst[pass][j] = stage_a_addr(stage) + kFloatBytes * (k0 * P::A_STRIDE + ((m ^ (8 * (k0 & 3))) ^ (8 * j)));
    }
    lp.b_src = active ? op.w_big + PackedWeights<P>::block(g, s.kh, s.kw, s.chunk, s.t.n_tile) * kBFloats : op.w_big;
    lp.b_dst = stage_b_addr(stage);
    return lp;
  }

  // Issues the A copies of rows [part, part+1) * kRows / kParts.
  template <int kParts>
  __device__ void issue_a(const LoadPlan& lp, int part) const {
    static_assert(kRows % kParts == 0, "A rows split evenly over the mma's k8 steps");
#pragma unroll
    for (int pass = 0; pass < (P::kHaloFeed ? 0 : kPasses); ++pass)  // halo feed: A is loaded per block tile
#pragma unroll
      for (int rr = 0; rr < kRows / kParts; ++rr) {
        const int r = part * (kRows / kParts) + rr;
        const bool valid = lp.in_image[pass] && r * kKStep < lp.k_valid;
        ptx::cp_async_4(lp.dst[pass][(r * kKStep) & 3] + kFloatBytes * r * kKStep * P::A_STRIDE,
                        lp.src[pass] + r * kKStep * lp.plane, valid);
      }
  }

  __device__ void issue_b(const LoadPlan& lp) const {
    constexpr int kBCopies = (kBFloats + 4 * P::kThreads - 1) / (4 * P::kThreads);
#pragma unroll
    for (int i = 0; i < kBCopies; ++i) {
      const int e = (i * P::kThreads + int(threadIdx.x)) * 4;
      if (kBFloats % (4 * P::kThreads) != 0 && e >= kBFloats) break;
      ptx::cp_async_16(lp.b_dst + kFloatBytes * e, lp.b_src + e, lp.active);
      if constexpr (kMath == MathMode::kFP32)
        ptx::cp_async_16(lp.b_dst + kFloatBytes * (kBFloats + e), lp.b_src + (op.w_small - op.w_big) + e,
                         lp.active);
    }
  }

  // ---- The halo feed (HaloFed) ------------------------------------------------------
  // Reads the block tile's halo of x into `halo`, rounded to TF32, in the layout HaloFed
  // describes; elements outside the image or past C_in are zeros. Lane (col, c4) of warp
  // w takes channel 4 * chunk + c4 of chunks w, w + kWarps, ... at halo columns col, col +
  // 8, ...: a warp's load reads 4 channels x 8 consecutive columns, and its stores hit 32
  // distinct banks. Plain loads, through registers to be rounded, P::kHaloLoadBatch
  // (row, 8-column block) pairs at a time, all in flight together; at the benchmark shape
  // one batch is the whole halo (H200, fused_tf32_mma_sync 279-281.5 us; batches of 8 and
  // 16 pairs 286 and 290; a row at a time 281, or 291 with the address rebuilt per row and
  // channel: bench/RESULTS.md, thirteenth session).
  __device__ void load_halo() const {
    constexpr int kC = P::kHaloChannels, kWarps = P::kThreads / 32, kBatch = P::kHaloLoadBatch;
    constexpr int kChunks = (kC / 4) / kWarps;  // channel chunks a thread loads
    const int lane = int(threadIdx.x) % 32, warp = int(threadIdx.x) / 32;
    const int col = lane % 8, c4 = lane / 8;
    const int64_t plane = int64_t(g.H_in) * g.W_in;
    const float* x_n = op.x + int64_t(n) * g.C_in * plane;
    const float* src[kChunks];
    bool channel_ok[kChunks];
    int dst[kChunks];  // float offset inside a pixel
#pragma unroll
    for (int q = 0; q < kChunks; ++q) {
      const int chunk = warp + kWarps * q, ci = 4 * chunk + c4;
      channel_ok[q] = ci < g.C_in;
      src[q] = x_n + int64_t(channel_ok[q] ? ci : 0) * plane;
      dst[q] = 4 * (chunk ^ col) + c4;
    }
    const int col_blocks = (hs.cols + 7) / 8;
    int r = 0, c = col;  // this lane's next (halo row, halo column)
    for (int left = hs.rows * col_blocks; left > 0; left -= kBatch) {
      float v[kBatch][kChunks];
      int pixel[kBatch];
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        const int ih = qh0 + hs.dih_min + r, iw = qw0 + hs.diw_min + c;
        const bool in_halo = b < left && c < hs.cols;
        const bool ok = in_halo && unsigned(ih) < unsigned(g.H_in) && unsigned(iw) < unsigned(g.W_in);
        const int64_t off = int64_t(ih) * g.W_in + iw;
#pragma unroll
        for (int q = 0; q < kChunks; ++q) v[b][q] = ok && channel_ok[q] ? __ldg(src[q] + off) : 0.f;
        pixel[b] = in_halo ? r * hs.cols + c : -1;
        c += 8;
        if (c - col >= 8 * col_blocks) { c = col; ++r; }
      }
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        if (pixel[b] < 0) continue;
#pragma unroll
        for (int q = 0; q < kChunks; ++q)
          halo[pixel[b] * kC + dst[q]] = __uint_as_float(ptx::tf32_round_operand(v[b][q]));
      }
    }
  }

  // ---- The TMA pipeline (kTma): thread 0 hands each k-step to the TMA unit: A as MH/2
  // boxes of [BK][2 rows][36 columns] of x starting at the 16-byte aligned column at or
  // before the tap's first one (out-of-image and past-C_in elements arrive as zeros), B
  // as one bulk copy; both complete the stage's mbarrier. The consumer reads pixel
  // columns from the stage's shift (0-3) on.
  struct TmaPlan {
    int w0, h0, c0;  // x coordinates of the first box (w0 a multiple of 4)
    int shift;       // first tap column - w0
    const float* b_src;
    int stage;
    bool active;
    int halves;  // pairs: the column phases whose weights are copied (KStep::halves)
  };
  static constexpr int kBoxFloats = P::kTmaBoxW * 2 * P::BK;
  static constexpr int kBBlocks = kMath == MathMode::kFP32 ? 2 : 1;  // big, and small in FP32 mode
  static constexpr uint32_t kTmaStageBytes = sizeof(float) * (kAFloats + kBBlocks * kBFloats);
  static constexpr uint32_t kTmaHalfBytes = PackedWeights<P>::kWgmmaHalfBytes;

  // The tap's first column relative to the 16-byte aligned column its boxes start at.
  __device__ int tma_shift(const KStep& s) const { return (qw0 + s.diw) & 3; }

  __device__ TmaPlan tma_plan(const KStep& s, bool active, int stage) const {
    const int w = qw0 + s.diw;
    return {w & ~3,       qh0 + s.dih, s.chunk * P::BK, tma_shift(s),
            op.w_big + PackedWeights<P>::block(g, s.kh, s.kw, s.chunk, s.t.n_tile) * kBFloats,
            stage, active, s.halves};
  }

  __device__ void issue_tma(const TmaPlan& tp) const {
    if (threadIdx.x != 0 || !tp.active) return;
    shifts[tp.stage] = tp.shift;  // read after the barrier that follows this stage's wait
    tma_copy(tp);
  }
  // The copies themselves, by the calling thread: A's boxes, then the weights.
  __device__ void tma_copy(const TmaPlan& tp) const {
    uint64_t* bar = bars + tp.stage;
    // Pairs at an offset where only one column phase has a tap: only that phase's half of
    // each k8 slice of the weights is copied (the consumer multiplies only that half).
    const bool one_half = P::kPhasePairs && tp.halves != 3;
    ptx::mbarrier_arrive_expect_tx(
        bar, one_half ? uint32_t(sizeof(float) * kAFloats + kTmaHalfBytes * (P::BK / 8)) : kTmaStageBytes);
#pragma unroll
    for (int b = 0; b < P::MH / 2; ++b)
      ptx::tma_load_4d(stage_a(tp.stage) + b * kBoxFloats, x_map, tp.w0, tp.h0 + 2 * b, tp.c0, n, bar);
    if (one_half) {
      const int half = tp.halves == 1 ? 0 : P::BN * 8;
#pragma unroll
      for (int k8 = 0; k8 < P::BK / 8; ++k8)
        ptx::bulk_load(stage_b(tp.stage) + k8 * P::kAccN * 8 + half, tp.b_src + k8 * P::kAccN * 8 + half,
                       kTmaHalfBytes, bar);
      return;
    }
    ptx::bulk_load(stage_b(tp.stage), tp.b_src, sizeof(float) * kBFloats, bar);
    if constexpr (kMath == MathMode::kFP32)
      ptx::bulk_load(stage_b(tp.stage) + kBFloats, tp.b_src + (op.w_small - op.w_big), sizeof(float) * kBFloats, bar);
  }

  // The copies of one k-step, in the form the consumer issues them (mma()).
  __device__ auto next_plan(const KStep& s, bool active, int stage) const {
    if constexpr (P::kTma)
      return tma_plan(s, active, stage);
    else
      return plan(s, active, stage);
  }

  // Loads a whole k-step at once (the prologue).
  __device__ void load(const KStep& s, bool active, int stage) const {
    if constexpr (P::kTma) {
      issue_tma(tma_plan(s, active, stage));
    } else {
      const LoadPlan lp = plan(s, active, stage);
      issue_a<1>(lp, 0);
      issue_b(lp);
    }
  }

  // Ends the copies of one k-step (cp.async: a commit group; TMA: the mbarrier does it).
  __device__ static void commit() {
    if constexpr (!P::kTma) ptx::cp_async_commit();
  }

  // Waits for the stage the consumer reads next (then a __syncthreads makes it visible
  // to all, for cp.async). `phases` holds each stage's mbarrier parity.
  __device__ void wait(int stage, uint32_t& phases) const {
    if constexpr (P::kTma) {
      ptx::mbarrier_wait(bars + stage, (phases >> stage) & 1u);
      phases ^= 1u << stage;
    } else {
      ptx::cp_async_wait<P::STAGES - 2>();
      // wgmma reads B through the async proxy; cp.async wrote it through the generic one.
      if constexpr (P::kWgmma) ptx::fence_proxy_async();
    }
  }

  // Before the stages are reused by another tile.
  __device__ static void drain() {
    if constexpr (!P::kTma) ptx::cp_async_wait<0>();
  }

  // acc += the stage's A x B for this warp's tile, issuing the next stage's copies
  // (`lp`) in between. TMA feed: the stage's column shift is `shift`, or, if negative,
  // what issue_tma left in shared memory; pairs: `halves` as in KStep.
  // Halo feed: `step` is the k-step of this stage.
  template <typename Plan>
  __device__ void mma(int stage, const AccLayout<P>& L, Accumulators<P>& acc, const Plan& lp, int shift = -1,
                      int halves = 3, const KStep* step = nullptr) const {
    if constexpr (kMath == MathMode::kTF32) {
      if constexpr (P::kWgmma)
        wgmma_stage(stage, L, acc, lp, shift, halves);
      else
        mma_stage(stage, L, acc, lp, step);
    } else {
      // The tensor cores' fp32 accumulation is not IEEE round-to-nearest: summing every
      // product of a long K into one fragment loses ~2^-23 of |acc| per mma (3xTF32 gave
      // 1.4e-6 on y that way on the H100). Accumulating one stage in a fresh fragment and
      // adding it with an FADD keeps 3xTF32 at fp32 accuracy. (wgmma starts the fragment
      // itself: its first product of the stage ignores the old contents.)
      Accumulators<P> part;
      if constexpr (P::kWgmma) {
        wgmma_stage(stage, L, part, lp);
      } else {
        zero(part);
        mma_stage(stage, L, part, lp);
      }
#pragma unroll
      for (int i = 0; i < AccLayout<P>::MI; ++i)
#pragma unroll
        for (int j = 0; j < AccLayout<P>::NJ; ++j)
#pragma unroll
          for (int v = 0; v < 4; ++v) acc[i][j][v] += part[i][j][v];
    }
  }

  // Before the accumulators of a GEMM tile are read.
  __device__ static void finish_tile() {
    if constexpr (kDeferDrain) ptx::wgmma_wait<0>();
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
  // A fragment values as the tensor cores take them. TF32: rounded to nearest. FP32
  // (3xTF32): x = big + lo with big = tf32(x), lo = tf32(x - big), and mid = big except 0
  // for a non-finite x (inf * a zero small weight would be NaN; lo is 0 there too); the
  // products are lo*w_big + mid*w_small + big*w_big.
  struct AOperand {
    uint32_t big[4];
    [[maybe_unused]] uint32_t lo[4], mid[4];
  };
  __device__ static AOperand split_a(const float (&v)[4]) {
    AOperand a;
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      if constexpr (kMath == MathMode::kFP32) {
        a.big[r] = ptx::tf32_round(v[r]);  // the exact TF32 number: lo subtracts it
        const bool finite = isfinite(v[r]);
        a.lo[r] = finite ? ptx::tf32_round(v[r] - __uint_as_float(a.big[r])) : 0u;
        a.mid[r] = finite ? a.big[r] : 0u;
      } else {
        a.big[r] = ptx::tf32_round_operand(v[r]);
      }
    }
    return a;
  }

  // sm_90a: per k8 step each warp loads and rounds its A fragments (the same fragment
  // layout as mma.sync), then the warpgroup issues one m64n128k8 per m-subtile with B
  // read from the stage by descriptor. All k8 steps of a stage are queued on the tensor
  // cores without waiting in between (each has its own A registers; waiting for the step
  // before, as a register-reusing loop would, cost 2.5%). With kDeferDrain the stage's
  // wgmmas stay in flight until the next k-step, which retires them before it writes A
  // registers or copies into this stage; otherwise (FP32, whose per-stage part is read
  // right after) the stage is drained before returning.
  template <typename Plan>
  __device__ void wgmma_stage(int stage, const AccLayout<P>& L, Accumulators<P>& acc, const Plan& lp,
                              int shift = -1, [[maybe_unused]] int halves = 3) const {
    constexpr int MI = AccLayout<P>::MI;
    using PW = PackedWeights<P>;
    // Where this thread's fragment values (m-subtile i, k = t) sit:
    //  - cp.async: [k][pixel], the pixel XOR-swizzled by 8 * (k % 4); rows g and g + 8
    //    are pixels 2g and 2g + 1 (one 8-byte load);
    //  - TMA: boxes of [k][2 rows][36 columns]; rows g and g + 8 are pixels g and g + 8
    //    (AccLayout), read one by one from column pixel + shift. With 72 floats per k,
    //    the 32 lanes (k = t, pixel g) hit 32 distinct banks.
    constexpr int kRowK = P::kTma ? 2 * P::kTmaBoxW : P::A_STRIDE;  // floats from k to k + 1
    const float* a_frag[MI];
#pragma unroll
    for (int i = 0; i < MI; ++i) {
      if constexpr (P::kTma) {
        const int m = L.wm0 + 16 * i + L.g, row = m / P::MW;
        a_frag[i] = stage_a(stage) + (row / 2) * kBoxFloats + L.t * kRowK + (row % 2) * P::kTmaBoxW + m % P::MW +
                    (shift >= 0 ? shift : shifts[stage]);
      } else {
        a_frag[i] = stage_a(stage) + L.t * P::A_STRIDE + ((L.wm0 + 16 * i + 2 * L.g) ^ (8 * L.t));
      }
    }
    const uint64_t b_stage_desc =
        ptx::wgmma_desc(stage_b_addr(stage), PW::kWgmmaKStrideBytes, PW::kWgmmaNStrideBytes);
    // This k8 step's share of the next k-step's copies (into the stage read before this one).
    auto issue_copies = [&](int k8) {
      if constexpr (P::kTma) {
        if (k8 == 0) issue_tma(lp);
      } else {
        issue_a<P::BK / 8>(lp, k8 / 8);
        if (k8 == 0) issue_b(lp);
      }
    };
    auto load_a = [&](int k8, AOperand(&a)[MI]) {
#pragma unroll
      for (int i = 0; i < MI; ++i) {
        const float* p = a_frag[i] + k8 * kRowK;
        float v[4];  // rows g, g + 8 at k = t, then at k = t + 4
        if constexpr (P::kTma) {
          v[0] = p[0]; v[1] = p[8]; v[2] = p[4 * kRowK]; v[3] = p[4 * kRowK + 8];
        } else {
          const float2 lo = *reinterpret_cast<const float2*>(p);
          const float2 hi = *reinterpret_cast<const float2*>(p + 4 * kRowK);
          v[0] = lo.x; v[1] = lo.y; v[2] = hi.x; v[3] = hi.y;
        }
        a[i] = split_a(v);
      }
    };
    // A wgmma reads its A registers asynchronously: PTX leaves writing them before a wait
    // that retires it undefined, and ptxas 13.0 does not guard it (reading the next
    // stage's fragments while this one's last wgmma was still queued gave wrong results
    // under load). So each k8 step's fragments have registers of their own, kept live
    // (keep_alive) until a wait has retired its wgmma; with the deferred drain the stage
    // first retires the stage before and then reads all its fragments at once.
    AOperand a_stage[P::BK / 8][MI];
    if constexpr (kDeferDrain) {
      ptx::wgmma_wait<0>();
#pragma unroll
      for (int k8 = 0; k8 < P::BK; k8 += 8) load_a(k8, a_stage[k8 / 8]);
    }
#pragma unroll
    for (int k8 = 0; k8 < P::BK; k8 += 8) {
      if constexpr (!kDeferDrain) issue_copies(k8);
      AOperand(&a)[MI] = a_stage[k8 / 8];
      if constexpr (!kDeferDrain) load_a(k8, a);
      const uint32_t k8_bytes = (k8 / 8) * PW::kWgmmaK8Bytes;
      const uint64_t b_desc = ptx::wgmma_desc_plus(b_stage_desc, k8_bytes);
      ptx::wgmma_fence();
      if constexpr (P::kPhasePairs) {
        // Each column phase with a tap at this offset: an m64n128k8 on its half of the
        // accumulators and of the weight slice (a half without a tap was not even
        // copied). Both halves take the same A fragment. (One m64n256k8 instead needs
        // its 128 accumulators within the 128 registers a thread has at launch with two
        // 256-thread blocks per SM, which ptxas refuses.)
        static_assert(MI == 1 && kMath == MathMode::kTF32, "pairs: one m64 x 2 BN accumulator, TF32");
        auto& half0 = reinterpret_cast<float(&)[16][4]>(acc[0][0]);
        auto& half1 = reinterpret_cast<float(&)[16][4]>(acc[0][16]);
        // Each branch commits its own group: after an optional wgmma, ptxas has no
        // wgmma to tag with the commit and issues an empty one for it.
        const uint64_t b_half1 = ptx::wgmma_desc_plus(b_stage_desc, k8_bytes + PW::kWgmmaHalfBytes);
        if (halves == 3) {
          ptx::wgmma_m64n128k8_tf32(half0, a[0].big, b_desc, true);
          ptx::wgmma_m64n128k8_tf32(half1, a[0].big, b_half1, true);
          ptx::wgmma_commit();
        } else if (halves == 1) {
          ptx::wgmma_m64n128k8_tf32(half0, a[0].big, b_desc, true);
          ptx::wgmma_commit();
        } else {
          ptx::wgmma_m64n128k8_tf32(half1, a[0].big, b_half1, true);
          ptx::wgmma_commit();
        }
      } else {
#pragma unroll
        for (int i = 0; i < MI; ++i) {
          if constexpr (kMath == MathMode::kFP32) {  // small terms first; acc is a fresh per-stage part (mma())
            const uint64_t b_small_desc = ptx::wgmma_desc_plus(b_stage_desc, sizeof(float) * kBFloats + k8_bytes);
            ptx::wgmma_m64n128k8_tf32(acc[i], a[i].lo, b_desc, k8 > 0);
            ptx::wgmma_m64n128k8_tf32(acc[i], a[i].mid, b_small_desc, true);
          }
          ptx::wgmma_m64n128k8_tf32(acc[i], a[i].big, b_desc, true);
        }
        ptx::wgmma_commit();
      }
      // Deferred drain: the stage before this one was retired above, so its copies may
      // go now. Classic kernel: the warpgroup is the whole block, and its loads of that
      // stage came before this k-step's block barrier; warp-specialised: the consumer
      // releases that stage to the producer after this returns.
      if constexpr (kDeferDrain) issue_copies(k8);
      // FP32 with a register-holding epilogue: at most two k8 steps in flight, so the A
      // operands of only two (24 registers) stay live. H200, conv_transpose2d FP32 (its
      // parked tile is 64 registers): 712.3 -> 685.8 us, 56 bytes of spills gone; the
      // fused FP32 kernel, which holds no tile, loses with it (604.9 -> 621.5).
      if constexpr (kMath == MathMode::kFP32 && kLeanRegisters)
        if (k8 > 0) {
          ptx::wgmma_wait<1>();
          keep_alive(a_stage[k8 / 8 - 1]);
        }
    }
    if constexpr (!kDeferDrain) {
      ptx::wgmma_wait<0>();
#pragma unroll
      for (int j = kMath == MathMode::kFP32 && kLeanRegisters ? P::BK / 8 - 1 : 0; j < P::BK / 8; ++j)
        keep_alive(a_stage[j]);
    }
  }

  // An empty asm that reads `a`: its registers cannot be reused before this point.
  __device__ static void keep_alive(const AOperand (&a)[AccLayout<P>::MI]) {
#pragma unroll
    for (int i = 0; i < AccLayout<P>::MI; ++i)
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        asm volatile("" ::"r"(a[i].big[r]));
        if constexpr (kMath == MathMode::kFP32) asm volatile("" ::"r"(a[i].lo[r]), "r"(a[i].mid[r]));
      }
  }

  __device__ void mma_stage(int stage, const AccLayout<P>& L, Accumulators<P>& acc, const LoadPlan& lp,
                            [[maybe_unused]] const KStep* step = nullptr) const {
    constexpr int MI = AccLayout<P>::MI, NJ = AccLayout<P>::NJ;
    // Fragment rows k8+t and k8+t+4 both have k % 4 = t: columns swizzled by 8t.
    const float* a_row = stage_a(stage) + L.t * P::A_STRIDE + L.wm0;
    const int col0 = (2 * L.g) ^ (8 * L.t), col1 = (16 + 2 * L.g) ^ (8 * L.t);
    // Halo feed: this lane gives ldmatrix the row address of pixel wm0 + 16i + r + 8(j % 2)
    // (shifted by the tap), channels 4(j / 2) to 4(j / 2) + 3 of each k8 group, for matrix
    // j = lane / 8 and row r = lane % 8.
    [[maybe_unused]] uint32_t halo_a[MI];
    [[maybe_unused]] int halo_chunk = 0, halo_swizzle = 0;
    if constexpr (P::kHaloFeed) {
      constexpr int kC = P::kHaloChannels;
      const int lane = L.g * 4 + L.t, j = lane / 8, r = lane % 8;
      const int dcol = step->diw - hs.diw_min;
      const int pix = (step->dih - hs.dih_min) * hs.cols + dcol + r + 8 * (j % 2);
#pragma unroll
      for (int i = 0; i < MI; ++i) {
        const int m0 = L.wm0 + 16 * i;
        halo_a[i] = ptx::smem_addr(halo) + kFloatBytes * kC * (pix + (m0 / P::MW) * hs.cols + m0 % P::MW);
      }
      halo_chunk = step->chunk * (P::BK / 4) + j / 2;  // + 2 per k8 group
      halo_swizzle = (r + dcol) & 7;                   // the halo column's, as 16 and 8 keep it
    }
    const float* b_s = stage_b(stage) + ((L.wn0 / 16) * 32 + L.g * 4 + L.t) * 4;
#pragma unroll
    for (int k8 = 0; k8 < P::BK; k8 += 8) {
      issue_a<P::BK / 8>(lp, k8 / 8);
      if (k8 == 0) issue_b(lp);
      AOperand a[MI];
      uint32_t b[NJ][2];
      [[maybe_unused]] uint32_t b_lo[NJ][2];  // FP32 mode: the small weights
#pragma unroll
      for (int i = 0; i < MI; ++i) {
        if constexpr (P::kHaloFeed) {  // already rounded
          ptx::ldmatrix_x4(a[i].big, halo_a[i] + 16 * ((halo_chunk + 2 * (k8 / 8)) ^ halo_swizzle));
        } else {
          const float* p = a_row + k8 * P::A_STRIDE + 32 * (i / 2) + (i % 2 ? col1 : col0);
          const float2 lo = *reinterpret_cast<const float2*>(p);                     // k = t
          const float2 hi = *reinterpret_cast<const float2*>(p + 4 * P::A_STRIDE);  // k = t + 4
          a[i] = split_a({lo.x, lo.y, hi.x, hi.y});
        }
      }
#pragma unroll
      for (int np = 0; np < NJ / 2; ++np) {
        const int off = ((k8 / 8) * (P::BN / 16) + np) * 128;
        const uint4 v = *reinterpret_cast<const uint4*>(b_s + off);
        b[2 * np][0] = v.x; b[2 * np][1] = v.y; b[2 * np + 1][0] = v.z; b[2 * np + 1][1] = v.w;
        if constexpr (kMath == MathMode::kFP32) {
          const uint4 w = *reinterpret_cast<const uint4*>(b_s + kBFloats + off);
          b_lo[2 * np][0] = w.x; b_lo[2 * np][1] = w.y; b_lo[2 * np + 1][0] = w.z; b_lo[2 * np + 1][1] = w.w;
        }
      }
#pragma unroll
      for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int j = 0; j < NJ; ++j) {
          if constexpr (kMath == MathMode::kFP32) {  // 3xTF32: small terms first
            ptx::mma_tf32(acc[i][j], a[i].lo, b[j]);
            ptx::mma_tf32(acc[i][j], a[i].mid, b_lo[j]);
          }
          ptx::mma_tf32(acc[i][j], a[i].big, b[j]);
        }
    }
  }
};

// Everything a kernel launch needs besides the epilogue's own parameters.
struct ConvTArgs {
  ConvTGeometry g;
  ConvTOperands op;
  int tiles_h, tiles_w;  // block tiles over the phase grid: ceil(QH / MH), ceil(QW / MW)

  struct BlockTile {
    int n, tile_h, tile_w;
  };
  // Block tiles in all: N images x tiles_h x tiles_w.
  __host__ __device__ int64_t tiles() const { return int64_t(g.N) * tiles_h * tiles_w; }
  // Block tile number `tile` (0 .. N * tiles_h * tiles_w), image-major.
  __device__ BlockTile block_tile(int64_t tile) const {
    return {int(tile / (int64_t(tiles_w) * tiles_h)), int((tile / tiles_w) % tiles_h), int(tile % tiles_w)};
  }
};

// Epilogue interface (see epilogues.cuh):
//   struct E { struct Params; struct Shared; static constexpr EpilogueKind kKind;
//     static constexpr bool kHoldsRegisters;  // state kept in registers across GEMM tiles
//     __device__ E(const Params&, Shared&, const ConvTArgs&, int n, int tile_h, int tile_w, ThreadGroup);
//     __device__ void start(Accumulators<P>&, const AccLayout<P>&, GemmTile);  // initial values
//     __device__ void consume(const Accumulators<P>&, const AccLayout<P>&, GemmTile); };
// consume() sees the GEMM tiles in the walk order of kKind (TileWalk), every one of them,
// phases without taps included (their accumulators are what start() set).
template <typename P, MathMode kMath, typename Epilogue>
__device__ __forceinline__ void convt_implicit_gemm(const ConvTArgs& args, const typename Epilogue::Params& ep,
                                                    const CUtensorMap* x_map, const PhaseTable& phase_table) {
  extern __shared__ float4 smem_f4[];
  // TMA policies start the stages at the next 128-byte boundary (mainloop_smem_bytes
  // counts the padding); their mbarriers and shifts follow the stages.
  float* smem = reinterpret_cast<float*>(smem_f4);
  if constexpr (P::kTma) smem += (128 - (ptx::smem_addr(smem) & 127)) % 128 / sizeof(float);
  float* stages_end = smem + P::STAGES * stage_floats<P>(kMath);
  auto& ep_shared = *reinterpret_cast<typename Epilogue::Shared*>(reinterpret_cast<char*>(stages_end) +
                                                                  tma_control_bytes<P>());
  uint64_t* bars = P::kTma ? reinterpret_cast<uint64_t*>(stages_end) : nullptr;
  int* shifts = P::kTma ? reinterpret_cast<int*>(bars + P::STAGES) : nullptr;
  float* halo = reinterpret_cast<float*>(&ep_shared + 1);  // kHaloFeed: after the epilogue's smem
  [[maybe_unused]] HaloShape halo_sh{};
  if constexpr (P::kHaloFeed) halo_sh = halo_shape<P>(args.g);
  static_assert(!P::kHaloFeed || kMath == MathMode::kTF32, "the halo holds TF32-rounded x");
  if constexpr (P::kTma) {
    if (threadIdx.x == 0)
      for (int s = 0; s < P::STAGES; ++s) ptx::mbarrier_init(bars + s, 1);
    __syncthreads();
  }
  const uint32_t smem_u32 = ptx::smem_addr(smem);
  uint32_t phases = 0;  // kTma: the parity each stage's mbarrier completes next
  const ConvTGeometry& g = args.g;
  const AccLayout<P> L(threadIdx.x / 32, threadIdx.x % 32);
  const TileWalk<Epilogue::kKind> walk{&g, PackedWeights<P>::n_tiles(g), PackedWeights<P>::chunks(g),
                                       phase_table};
  const int64_t tiles = args.tiles();
  static_assert(!P::kPhasePairs, "column-phase pairs run on the warp-specialised kernel");

  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const auto [n, tile_h, tile_w] = args.block_tile(tile);
    using ML = Mainloop<P, kMath, Epilogue::kHoldsRegisters>;
    const ML ml{g, args.op, smem, smem_u32, n, tile_h * P::MH, tile_w * P::MW, x_map, bars, shifts, halo, halo_sh};
    Epilogue epi(ep, ep_shared, args, n, tile_h, tile_w, ThreadGroup::block());

    // Prologue: fill STAGES-1 stages.
    KStep next = walk.first_from(GemmTile{0, 0, 0});
    [[maybe_unused]] KStep current = next;  // halo feed: the k-step the consumer computes
#pragma unroll
    for (int s = 0; s < P::STAGES - 1; ++s) {
      const bool active = walk.valid(next);
      ml.load(next, active, s);
      if (active) walk.advance(next);
      ml.commit();
    }
    if constexpr (P::kHaloFeed) ml.load_halo();  // visible to all after the first k-step's barrier

    int stage = 0;  // the stage the consumer reads next
    GemmTile gt{0, 0, 0};
    do {
      const int ksteps = walk.ksteps(gt);
      Accumulators<P> acc;
      epi.start(acc, L, gt);
      for (int k = 0; k < ksteps; ++k) {
        ml.wait(stage, phases);
        __syncthreads();  // this stage is visible to all; the one before it is free
        const bool active = walk.valid(next);
        ml.mma(stage, L, acc, ml.next_plan(next, active, stage == 0 ? P::STAGES - 1 : stage - 1), -1, 3, &current);
        ml.commit();
        if (active) walk.advance(next);
        if constexpr (P::kHaloFeed) walk.advance(current);
        stage = stage + 1 == P::STAGES ? 0 : stage + 1;
      }
      ml.finish_tile();
      epi.consume(acc, L, gt);
    } while (walk.next_tile(gt));
    ml.drain();
    __syncthreads();  // the next tile's prologue overwrites the stages
  }
}

// ---- The warp-specialised persistent kernel (kWarpSpecialized policies: sm_90a, TMA, TF32)
// The classic kernel's block waits at a __syncthreads every k-step, and its thread 0
// issues the TMA copies between its own wgmmas. Here a block is one consumer warpgroup
// (warps 0-3) plus a producer warpgroup (warps 4-7), which hands its registers to the
// consumer, and is persistent over tiles. The producer's first thread walks the k-steps of the block's
// tiles and hands each to the TMA unit as soon as its stage is empty, running on into
// the next tile while the consumer runs its epilogue. The consumer waits for a stage to
// be full, issues its wgmmas, and releases the stage before it once those are done (its
// A fragments are in registers by then, and B has been read): no block-wide barrier.
template <typename P, MathMode kMath, typename Epilogue>
__device__ __forceinline__ void convt_implicit_gemm_warp_specialized(const ConvTArgs& args,
                                                                  const typename Epilogue::Params& ep,
                                                                  const CUtensorMap* x_map,
                                                                  const PhaseTable& phase_table) {
  static_assert(P::kTma && kMath == MathMode::kTF32 && P::kThreads == 128, "TF32, TMA, one consumer warpgroup");
  using ML = Mainloop<P, kMath, Epilogue::kHoldsRegisters>;
  static_assert(ML::kDeferDrain, "a consumer releases a stage once the k-step after it has waited for its wgmmas");
  static_assert(kLaunchRegisters<P> >= kProducerRegisters && kConsumerRegisters<P> <= 256 &&
                    kConsumerRegisters<P> % 8 == 0,
                "setmaxnreg: counts of 24-256 in steps of 8, within the registers the block launched with");
  extern __shared__ float4 smem_f4[];
  float* smem = reinterpret_cast<float*>(smem_f4);
  smem += (128 - (ptx::smem_addr(smem) & 127)) % 128 / sizeof(float);
  float* stages_end = smem + P::STAGES * stage_floats<P>(kMath);
  uint64_t* full = reinterpret_cast<uint64_t*>(stages_end);
  uint64_t* empty = full + P::STAGES;
  auto& ep_shared = *reinterpret_cast<typename Epilogue::Shared*>(reinterpret_cast<char*>(stages_end) +
                                                                  tma_control_bytes<P>());
  constexpr int kConsumerWarps = P::kThreads / 32;
  if (threadIdx.x == 0)
    for (int s = 0; s < P::STAGES; ++s) {
      ptx::mbarrier_init(full + s, 1);                // the producer's arrive, plus the TMA bytes
      ptx::mbarrier_init(empty + s, kConsumerWarps);  // one arrive per consumer warp
    }
  __syncthreads();
  const uint32_t smem_u32 = ptx::smem_addr(smem);
  const ConvTGeometry& g = args.g;
  const TileWalk<Epilogue::kKind, P::kPhasePairs> walk{&g, PackedWeights<P>::n_tiles(g), PackedWeights<P>::chunks(g),
                                                      phase_table};
  const int64_t tiles = args.tiles();
  int stage = 0;
  uint32_t parity = 0;  // of the ring's current lap

  if (threadIdx.x >= P::kThreads) {  // the producer warpgroup: its first thread works
    ptx::setmaxnreg_dec<kProducerRegisters>();  // (the launch count: kLaunchRegisters<P>)
    if (threadIdx.x != P::kThreads) return;
    for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
      const auto [n, tile_h, tile_w] = args.block_tile(tile);
      const ML ml{g, args.op, smem, smem_u32, n, tile_h * P::MH, tile_w * P::MW, x_map, full, nullptr};
      for (KStep s = walk.first_from(GemmTile{0, 0, 0}); walk.valid(s); walk.advance(s)) {
        ptx::mbarrier_wait(empty + stage, parity ^ 1);  // a fresh barrier counts as emptied
        ml.tma_copy(ml.tma_plan(s, true, stage));
        if (++stage == P::STAGES) { stage = 0; parity ^= 1; }
      }
    }
    return;
  }

  ptx::setmaxnreg_inc<kConsumerRegisters<P>>();  // what the producer gave up
  const ThreadGroup grp{int(threadIdx.x), 1, P::kThreads};  // named barrier 1: the consumer only
  const AccLayout<P> L(grp.warp(), grp.lane());
  const typename ML::TmaPlan no_copies{};  // the consumer issues none
  auto release = [&](int s) {
    __syncwarp();
    if (grp.lane() == 0) ptx::mbarrier_arrive(empty + s);
  };
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const auto [n, tile_h, tile_w] = args.block_tile(tile);
    const ML ml{g, args.op, smem, smem_u32, n, tile_h * P::MH, tile_w * P::MW, x_map, full, nullptr};
    Epilogue epi(ep, ep_shared, args, n, tile_h, tile_w, grp);
    // The consumer walks the k-steps too, for each stage's column shift: no shared-memory
    // word passes from producer to consumer outside the TMA's own writes.
    KStep ks = walk.first_from(GemmTile{0, 0, 0});
    GemmTile gt{0, 0, 0};
    do {
      const int ksteps = walk.ksteps(gt);
      Accumulators<P> acc;
      epi.start(acc, L, gt);
      int before = -1;  // the stage of the k-step before, released once its wgmmas are done
      for (int k = 0; k < ksteps; ++k) {
        ptx::mbarrier_wait(full + stage, parity);
        ml.mma(stage, L, acc, no_copies, ml.tma_shift(ks), ks.halves);  // first retires the k-step before
        walk.advance(ks);
        if (before >= 0) release(before);
        before = stage;
        if (++stage == P::STAGES) { stage = 0; parity ^= 1; }
      }
      ml.finish_tile();
      if (before >= 0) release(before);
      epi.consume(acc, L, gt);
    } while (walk.next_tile(gt));
    // The next tile's epilogue reuses its shared memory: MinSumEpilogue's column buffers
    // count on a barrier between block tiles, as the classic kernel's closing one.
    grp.sync();
  }
}

template <typename P, MathMode kMath, typename Epilogue>
__global__ void __launch_bounds__(P::kThreads + kProducerThreads, P::kMinBlocksPerSM)
    convt_implicit_gemm_warp_specialized_kernel(ConvTArgs args, typename Epilogue::Params ep,
                                                const __grid_constant__ CUtensorMap x_map) {
  if constexpr (!ptx::kWgmmaCompiled) {
    __trap();  // not sm_90a code: the host never launches it (convt_dispatch.h)
  } else {
    // The weight packing: its phase table is read through the pointer the wait returns.
    const PhaseTable phases = PackedWeights<P>::phase_table(ptx::wait_for_prior_grid(args.op.w_big), args.g);
    ptx::allow_next_grid();
    convt_implicit_gemm_warp_specialized<P, kMath, Epilogue>(args, ep, &x_map, phases);
  }
}

template <typename P, MathMode kMath, typename Epilogue>
__global__ void __launch_bounds__(P::kThreads, P::kMinBlocksPerSM)
    convt_implicit_gemm_kernel(ConvTArgs args, typename Epilogue::Params ep,
                               const __grid_constant__ CUtensorMap x_map) {  // kTma policies only
  if constexpr (P::kWgmma && !ptx::kWgmmaCompiled) {
    __trap();  // not sm_90a code: the host never launches it (convt_dispatch.h)
  } else {
    // The weight packing: its phase table is read through the pointer the wait returns.
    const PhaseTable phases = PackedWeights<P>::phase_table(ptx::wait_for_prior_grid(args.op.w_big), args.g);
    ptx::allow_next_grid();
    convt_implicit_gemm<P, kMath, Epilogue>(args, ep, &x_map, phases);
  }
}

}  // namespace ctfuse
