// The post-op on a materialised y: s[n, w] = sum_h min_c y[n, c, h, w], then
// out[n, cb, 0, w] = gelu(s) + bias[cb].
//
// Memory-bound: the whole job is to read y once at full bandwidth. Each block owns a
// tile of columns of one image and walks every row and channel of it, keeping the
// running minima and row sums in registers; y is read once, 16 bytes per load,
// and only s and out are written. Column sums are finished in the block in a fixed
// order, in double, so the result does not depend on the launch shape.
#pragma once

#include <cstdint>

#include "postop_policy.h"
#include "reduce_ops.cuh"

namespace ctfuse {

struct PostOpArgs {
  const float* y;
  int64_t N, C, H, W;
  int64_t sN, sC, sH, sW;  // element strides of y
  ColumnOutput col;
};

// Loads of VEC floats through the read-only path. Plain (non-volatile) asm, so the
// compiler may issue a batch of them before the first use. Measured on the H100
// (2026-11-25, post-op on the benchmark y, median of 30 with an L2 scrub; cub read pass
// 187 us): ld.global.nc 189 us, ld.global 190, ld.global.nc.L1::no_allocate 198,
// ld.global.cs 198, ld.global.lu 200 -- letting the lines allocate in L1 is what pays.
template <int VEC>
struct Vec {
  float v[VEC];
};

template <int VEC>
__device__ __forceinline__ Vec<VEC> load_stream(const float* p) {
  Vec<VEC> r;
  if constexpr (VEC == 4) {
    asm("ld.global.nc.v4.f32 {%0, %1, %2, %3}, [%4];"
        : "=f"(r.v[0]), "=f"(r.v[1]), "=f"(r.v[2]), "=f"(r.v[3])
        : "l"(p));
  } else {
    static_assert(VEC == 1, "VEC is 1 or 4");
    asm("ld.global.nc.f32 %0, [%1];" : "=f"(r.v[0]) : "l"(p));
  }
  return r;
}

// m = nan_min(m, y[p + c*stride]) over c < C. Loads are issued UNROLL at a time into
// registers before any is used, so each thread keeps UNROLL requests in flight.
template <int VEC, int UNROLL>
__device__ __forceinline__ void min_over_channels(float (&m)[VEC], const float* p, int64_t stride, int64_t C) {
  int64_t c = 0;
  for (; c + UNROLL <= C; c += UNROLL) {
    Vec<VEC> v[UNROLL];
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) v[u] = load_stream<VEC>(p + (c + u) * stride);
#pragma unroll
    for (int u = 0; u < UNROLL; ++u)
#pragma unroll
      for (int e = 0; e < VEC; ++e) m[e] = nan_min(m[e], v[u].v[e]);
  }
  for (; c < C; ++c) {
    const Vec<VEC> v = load_stream<VEC>(p + c * stride);
#pragma unroll
    for (int e = 0; e < VEC; ++e) m[e] = nan_min(m[e], v.v[e]);
  }
}

// Block-wide: every row-thread has added its rows into partial[row][col]; sum the rows
// in index order and finish the tile's columns.
template <int ROWS, int TILE_W>
__device__ __forceinline__ void finish_tile(double (&partial)[ROWS][TILE_W], const PostOpArgs& a,
                                            int64_t n, int64_t w0) {
  __syncthreads();
  for (int col = threadIdx.x; col < TILE_W; col += blockDim.x) {
    const int64_t w = w0 + col;
    if (w >= a.W) continue;
    double sum = 0.0;
#pragma unroll 8
    for (int r = 0; r < ROWS; ++r) sum += partial[r][col];
    finish_column(a.col, n, w, sum);
  }
  __syncthreads();  // partial is reused by the next tile
}

// W-contiguous (or any strides when VEC == 1). Thread (tw, tr) owns columns
// w0 + tw*VEC .. +VEC-1 and rows tr, tr + ROWS, ...; the channel loop is the
// innermost so a thread's loads are independent of each other.
template <typename P>
__global__ void __launch_bounds__(P::threads())
    min_sum_gelu_bias_w_kernel(PostOpArgs a) {
  constexpr int VEC = P::vec, ROWS = P::rows, TILE_W = P::tile_w();
  __shared__ double partial[ROWS][TILE_W];
  const int tw = threadIdx.x % P::threads_w;
  const int tr = threadIdx.x / P::threads_w;
  const int64_t tiles_w = (a.W + TILE_W - 1) / TILE_W;

  for (int64_t tile = blockIdx.x; tile < a.N * tiles_w; tile += gridDim.x) {
    const int64_t n = tile / tiles_w;
    const int64_t w0 = (tile % tiles_w) * TILE_W;
    const int64_t w = w0 + tw * VEC;
    double acc[VEC] = {};
    if (w < a.W) {  // VEC == 4 only when W % 4 == 0, so the whole vector is in range
      const float* col = a.y + n * a.sN + w * a.sW;
      for (int64_t h = tr; h < a.H; h += ROWS) {
        const float* p = col + h * a.sH;
        float m[VEC];
#pragma unroll
        for (int v = 0; v < VEC; ++v) m[v] = pos_inf();
        min_over_channels<VEC, P::unroll_c>(m, p, a.sC, a.C);
#pragma unroll
        for (int v = 0; v < VEC; ++v) acc[v] += m[v];
      }
    }
#pragma unroll
    for (int v = 0; v < VEC; ++v) partial[tr][tw * VEC + v] = acc[v];
    finish_tile<ROWS, TILE_W>(partial, a, n, w0);
  }
}

// C-contiguous (channels-last). Warp `warp` owns rows warp, warp + WARPS, ...; for each
// row it reduces the tile's 32 pixels, PIX at a time so their loads overlap; lane l
// accumulates column w0 + l.
template <typename P>
__global__ void __launch_bounds__(P::threads())
    min_sum_gelu_bias_c_kernel(PostOpArgs a) {
  constexpr int VEC = P::vec, WARPS = P::warps, PIX = P::pixels, TILE_W = P::tile_w();
  __shared__ double partial[WARPS][TILE_W];
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  const int64_t tiles_w = (a.W + TILE_W - 1) / TILE_W;

  for (int64_t tile = blockIdx.x; tile < a.N * tiles_w; tile += gridDim.x) {
    const int64_t n = tile / tiles_w;
    const int64_t w0 = (tile % tiles_w) * TILE_W;
    const int pixels_in_tile = static_cast<int>(a.W - w0 < TILE_W ? a.W - w0 : TILE_W);
    double acc = 0.0;
    for (int64_t h = warp; h < a.H; h += WARPS) {
      const float* row = a.y + n * a.sN + h * a.sH + w0 * a.sW;
      for (int p0 = 0; p0 < pixels_in_tile; p0 += PIX) {
        float m[PIX][VEC];
#pragma unroll
        for (int p = 0; p < PIX; ++p)
#pragma unroll
          for (int v = 0; v < VEC; ++v) m[p][v] = pos_inf();
        for (int64_t c = lane * VEC; c < a.C; c += 32 * VEC) {
          Vec<VEC> v[PIX];
#pragma unroll
          for (int p = 0; p < PIX; ++p) {
            if (p0 + p < pixels_in_tile) {
              v[p] = load_stream<VEC>(row + (p0 + p) * a.sW + c);
            } else {
#pragma unroll
              for (int e = 0; e < VEC; ++e) v[p].v[e] = pos_inf();
            }
          }
#pragma unroll
          for (int p = 0; p < PIX; ++p)
#pragma unroll
            for (int e = 0; e < VEC; ++e) m[p][e] = nan_min(m[p][e], v[p].v[e]);
        }
#pragma unroll
        for (int p = 0; p < PIX; ++p) {
          float mp = m[p][0];
#pragma unroll
          for (int v = 1; v < VEC; ++v) mp = nan_min(mp, m[p][v]);
          mp = warp_nan_min(mp);
          if (lane == p0 + p) acc += mp;
        }
      }
    }
    partial[warp][lane] = acc;
    finish_tile<WARPS, TILE_W>(partial, a, n, w0);
  }
}

}  // namespace ctfuse
