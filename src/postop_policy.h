// Tuning of the post-op kernels: plain data, separate from the algorithm
// (postop_kernel.cuh) and from the launch (postop.cu).
//
// Every entry must fit the RTX 4090 (sm_89): <= 99 KB shared memory per block and
// <= 1536 resident threads per SM; tests/test_api.cpp checks the whole table.
#pragma once

#include <cstddef>

namespace ctfuse {

// y with W contiguous (NCHW and anything W-contiguous; VEC = 1 also serves any strides).
// A block owns a tile of `threads_w * vec` columns of one image and walks all H rows
// and C channels of it, so each column's sum is finished inside one block in a fixed
// order (no atomics, bitwise reproducible).
template <int THREADS_W, int ROWS, int VEC, int UNROLL_C>
struct PostOpWPolicy {
  static constexpr int threads_w = THREADS_W;  // threads across W
  static constexpr int rows = ROWS;            // threads across H
  static constexpr int vec = VEC;              // floats per load (4 = 16-byte loads)
  static constexpr int unroll_c = UNROLL_C;    // channel loads a thread keeps in flight

  static constexpr int threads() { return threads_w * rows; }
  static constexpr int tile_w() { return threads_w * vec; }
  static constexpr size_t smem_bytes() { return sizeof(double) * rows * tile_w(); }
};

// y with C contiguous (channels-last): one warp reads a pixel's channels with
// `vec`-wide loads and reduces them with shuffles; warps split the rows.
template <int WARPS, int VEC, int PIXELS>
struct PostOpCPolicy {
  static constexpr int warps = WARPS;
  static constexpr int vec = VEC;
  static constexpr int pixels = PIXELS;  // pixels a warp loads before reducing them

  static constexpr int threads() { return warps * 32; }
  static constexpr int tile_w() { return 32; }  // lane l accumulates column l of the tile
  static constexpr size_t smem_bytes() { return sizeof(double) * warps * tile_w(); }
};

// H100, y = 16x128x256x256 (537 MB), NCHW, 2026-11-25 (build/exp sweep, median of 30,
// L2 scrubbed; cub read pass 187 us). threads_w x rows, channel loads in flight:
//   16x64 u4: 189 us | 8x128 u4: 192 | 16x64 u8: 194    (with ld.global.nc)
// Wider row segments (16 threads x 16 B = 256 B) suit DRAM better than more blocks do.
using PostOpW4 = PostOpWPolicy<16, 64, 4, 4>;
using PostOpW1 = PostOpWPolicy<32, 16, 1, 8>;  // any strides, scalar loads
using PostOpC4 = PostOpCPolicy<16, 4, 4>;      // channels-last, C % 4 == 0
using PostOpC1 = PostOpCPolicy<16, 1, 4>;      // channels-last, any C

}  // namespace ctfuse
