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

template <int MH_, int MW_, int BN_, int BK_, int STAGES_, int WARPS_M_, int WARPS_N_>
struct ImplicitGemmPolicy {
  static constexpr int MH = MH_, MW = MW_;  // phase-pixel rows x columns of a block tile
  static constexpr int BM = MH * MW;
  static constexpr int BN = BN_, BK = BK_, STAGES = STAGES_;
  static constexpr int WARPS_M = WARPS_M_, WARPS_N = WARPS_N_;
  static constexpr int kThreads = 32 * WARPS_M * WARPS_N;
  static constexpr int WM = BM / WARPS_M, WN = BN / WARPS_N;  // warp tile

  // Shared-memory rows are k-major ([k][m], [k][n]) and padded so that the stride is
  // 8 words mod 32: the 16-byte fragment loads of a quarter-warp (4 k's x 2 groups of
  // 4 pixels) then hit 32 distinct banks.
  static constexpr int A_STRIDE = BM + 8;
  static constexpr int B_STRIDE = BN + 8;

  static_assert(WM % 32 == 0 && WN % 32 == 0, "warp tiles are built from 32x32 fragment groups");
  static_assert(BK % 8 == 0, "BK is a multiple of the mma's k = 8");
  static_assert(kThreads % BM == 0 || BM % kThreads == 0, "A loads: whole pixels per thread");
  static_assert((BM * BK) % kThreads == 0, "A loads divide evenly");
  static_assert(MW % 4 == 0, "4 consecutive fragment pixels share a phase row");
};

// Stage size in floats for a math mode (FP32 stages a second, "small" weight tile).
template <typename P>
constexpr size_t stage_floats(MathMode m) {
  return size_t(P::BK) * (P::A_STRIDE + (m == MathMode::kFP32 ? 2 : 1) * P::B_STRIDE);
}

template <typename P>
constexpr size_t mainloop_smem_bytes(MathMode m) {
  return sizeof(float) * P::STAGES * stage_floats<P>(m);
}

// --- The table ---------------------------------------------------------------------
// TF32, C_out > 64: 256 x 128 tiles, 8 warps of 64 x 64; 3 stages of BK = 16 (76.8 KB).
using GemmTF32Wide = ImplicitGemmPolicy<8, 32, 128, 16, 3, 4, 2>;
// TF32, C_out <= 64 (e.g. the benchmark's first version, C_out = 16): 256 x 32 tiles.
using GemmTF32Narrow = ImplicitGemmPolicy<8, 32, 32, 16, 4, 8, 1>;
// FP32 (3xTF32): warp tiles of 32 x 32, since the split operands and the per-stage
// partial accumulator (see Mainloop::mma) double the fragment registers; big and small
// weight tiles are both staged.
using GemmFP32Wide = ImplicitGemmPolicy<4, 32, 64, 16, 3, 4, 2>;
using GemmFP32Narrow = ImplicitGemmPolicy<8, 32, 32, 16, 3, 8, 1>;

}  // namespace ctfuse
