// All index arithmetic of the transposed convolution, in one place.
//
// A transposed convolution with stride s splits into s_h x s_w independent GEMMs, one
// per output phase (rho_h, rho_w) = (oh mod s_h, ow mod s_w): the output pixel
// (oh, ow) = (Qh*s_h + rho_h, Qw*s_w + rho_w) receives exactly the taps kh with
// kh*dilation_h = rho_h + pad_h (mod s_h), from input row ih = Qh + dih(kh), where
// dih(kh) = (rho_h + pad_h - kh*dilation_h) / s_h is an exact division (same for w).
// No multiply by an inserted zero is ever done. Every phase uses the same (Qh, Qw)
// grid, so one block tile of phase pixels covers all phases of an output region.
//
// A phase's taps are evenly spaced: kh = kh0 + i*tap_step_h with tap_step_h =
// s_h / gcd(s_h, dil_h), and each step moves the input row by -dih_step_h =
// -dil_h / gcd(s_h, dil_h). Walking taps therefore needs no division.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>  // int4

namespace ctfuse {

struct ConvTGeometry {
  int N, C_in, H_in, W_in, C_out, H_out, W_out;
  int kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
  int tap_step_h, tap_step_w;  // stride / gcd(stride, dilation): spacing of a phase's taps
  int dih_step, diw_step;      // dilation / gcd(stride, dilation): input shift per tap step
  int QH, QW;                  // phase-grid extent: ceil(H_out / s_h), ceil(W_out / s_w)
  int w_pairs;                 // stride_w = 2: entries of the column-pair table (w_pair_entry), else 0
};

// The taps of one phase along both dimensions.
struct PhaseTaps {
  int rho_h, rho_w;
  int kh0, nh, kw0, nw;  // first tap and tap count per dimension
  int dih0, diw0;        // input offset of the first tap: ih = Qh + dih0 - i*dih_step

  __host__ __device__ int count() const { return nh * nw; }
};

namespace detail {
// First tap, tap count and input offset of residue `rho` along one dimension.
__host__ __device__ inline void phase_taps_1d(int rho, int pad, int dil, int stride, int kernel, int tap_step,
                                              int* k0, int* n, int* d0) {
  *k0 = 0;
  *n = 0;
  *d0 = 0;
  for (int k = 0; k < tap_step && k < kernel; ++k) {
    const int r = ((rho + pad - k * dil) % stride + stride) % stride;
    if (r == 0) {
      *k0 = k;
      *n = (kernel - 1 - k) / tap_step + 1;
      *d0 = (rho + pad - k * dil) / stride;  // exact
      return;
    }
  }
}
}  // namespace detail

// stride_w = 2, column-phase pairs (ImplicitGemmPolicy::kPhasePairs): output columns 2q
// and 2q + 1 read input columns q + d, for d over the offsets of both column phases'
// taps. Entry u of that union, walked from the largest d down: {d, the rho_w = 0 tap
// kw at d or -1, the rho_w = 1 tap at d or -1, 0}. With `count`, returns the number of
// entries there instead (u is then ignored).
__host__ __device__ inline int4 w_pair_entry(const ConvTGeometry& g, int u, int* count = nullptr) {
  int k0[2], n[2], d0[2], i[2] = {0, 0};
  for (int r = 0; r < 2; ++r) detail::phase_taps_1d(r, g.pad_w, g.dil_w, 2, g.kernel_w, g.tap_step_w, &k0[r], &n[r], &d0[r]);
  // Both phases' offsets fall by diw_step per tap: merge the two descending runs.
  int found = 0;
  while (i[0] < n[0] || i[1] < n[1]) {
    const int da = d0[0] - i[0] * g.diw_step, db = d0[1] - i[1] * g.diw_step;
    const int d = i[0] < n[0] && (i[1] >= n[1] || da >= db) ? da : db;
    int kw[2];
    for (int r = 0; r < 2; ++r) {
      const bool here = i[r] < n[r] && d0[r] - i[r] * g.diw_step == d;
      kw[r] = here ? k0[r] + i[r] * g.tap_step_w : -1;
      i[r] += here;
    }
    if (!count && found == u) return int4{d, kw[0], kw[1], 0};
    ++found;
  }
  if (count) *count = found;
  return int4{0, -1, -1, 0};
}

// One table entry per residue: stride_h entries for h, then stride_w for w, each
// {first tap, tap count, input offset of the first tap, 0}; then the w_pairs entries of
// w_pair_entry.
__host__ __device__ inline int4 phase_table_entry(const ConvTGeometry& g, int e) {
  int4 v{0, 0, 0, 0};
  if (e < g.stride_h)
    detail::phase_taps_1d(e, g.pad_h, g.dil_h, g.stride_h, g.kernel_h, g.tap_step_h, &v.x, &v.y, &v.z);
  else if (e < g.stride_h + g.stride_w)
    detail::phase_taps_1d(e - g.stride_h, g.pad_w, g.dil_w, g.stride_w, g.kernel_w, g.tap_step_w, &v.x, &v.y, &v.z);
  else
    v = w_pair_entry(g, e - g.stride_h - g.stride_w);
  return v;
}
__host__ __device__ inline int phase_table_entries(const ConvTGeometry& g) { return g.stride_h + g.stride_w + g.w_pairs; }

// phase_taps() loops and divides by the stride: in a kernel, at every GEMM-tile change,
// that is a chain of integer divisions in the gap between two tiles' tensor work. The
// kernels look the taps up instead, in a table written once per call by the weight
// packing (phase_table_entry, after the packed weights). The GEMM may start before the
// packing ends (launch.h): its pointer to the packed weights, and so to this table, is
// the one ptx::wait_for_prior_grid(p) returned, so these read-only-cache loads cannot
// move above the wait.
struct PhaseTable {
  const int4* entries;  // phase_table_entries(g) entries
  int stride_h, stride_w;
  __device__ PhaseTaps taps(int rho_h, int rho_w) const {
    const int4 h = __ldg(entries + rho_h), w = __ldg(entries + stride_h + rho_w);
    return PhaseTaps{rho_h, rho_w, h.x, h.y, w.x, w.y, h.z, w.z};
  }
  __device__ int4 w_pair(int u) const { return __ldg(entries + stride_h + stride_w + u); }
};

// The input offsets of every tap of every residue along one dimension lie in [min, min +
// span] (a dimension without any tap: {0, 0}). An MH x MW block tile of phase pixels
// therefore reads x only inside its (MH + span_h) x (MW + span_w) halo. (Not a field of
// ConvTGeometry: four more ints in the kernels' parameters made ptxas spill 108 bytes in
// the FP32 wgmma store kernel.)
struct TapOffsets {
  int min, span;
};
__host__ __device__ inline TapOffsets tap_offsets(int pad, int dil, int stride, int kernel, int tap_step, int d_step) {
  int lo = 0, hi = 0;
  bool any = false;
  for (int rho = 0; rho < stride; ++rho) {
    int k0, n, d0;
    detail::phase_taps_1d(rho, pad, dil, stride, kernel, tap_step, &k0, &n, &d0);
    if (n == 0) continue;
    const int last = d0 - (n - 1) * d_step;  // offsets fall by d_step per tap
    lo = any && lo < last ? lo : last;
    hi = any && hi > d0 ? hi : d0;
    any = true;
  }
  return {lo, hi - lo};
}
__host__ __device__ inline TapOffsets tap_offsets_h(const ConvTGeometry& g) {
  return tap_offsets(g.pad_h, g.dil_h, g.stride_h, g.kernel_h, g.tap_step_h, g.dih_step);
}
__host__ __device__ inline TapOffsets tap_offsets_w(const ConvTGeometry& g) {
  return tap_offsets(g.pad_w, g.dil_w, g.stride_w, g.kernel_w, g.tap_step_w, g.diw_step);
}

__host__ __device__ inline PhaseTaps phase_taps(const ConvTGeometry& g, int rho_h, int rho_w) {
  PhaseTaps p;
  p.rho_h = rho_h;
  p.rho_w = rho_w;
  detail::phase_taps_1d(rho_h, g.pad_h, g.dil_h, g.stride_h, g.kernel_h, g.tap_step_h, &p.kh0, &p.nh, &p.dih0);
  detail::phase_taps_1d(rho_w, g.pad_w, g.dil_w, g.stride_w, g.kernel_w, g.tap_step_w, &p.kw0, &p.nw, &p.diw0);
  return p;
}

}  // namespace ctfuse
