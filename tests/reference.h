// ctfuse::ref — the float64 CPU reference of the fused operation.
//
// This file is the executable form of shared/SPEC.md: naive loops in double
// precision, written to be read, not to be fast. Every GPU path is compared with
// it, and it is itself compared with PyTorch's float64 results (the golden files).
//
//   y   = ConvTranspose2d(x)                 [N, C_out, H_out, W_out]
//   s   = sum over h of (min over c of y)    [N, W_out]
//   out = gelu(s) + bias                     [N, bias_len, 1, W_out]
//
// All tensors here are host arrays. Inputs are fp32 (what the library receives);
// every intermediate and result is double.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ctfuse/types.h"

namespace ctfuse {
namespace ref {

// ---------------------------------------------------------------------------
// The operation
// ---------------------------------------------------------------------------

// H_out and W_out of `p`; throws std::invalid_argument (with the library's message)
// when conv_transpose2d_output_hw rejects the parameters.
void output_hw(const ConvTranspose2dParams& p, int64_t* H_out, int64_t* W_out);

// The transposed convolution in scatter form, in double precision.
//   x:         [N, C_in, H_in, W_in] dense NCHW
//   weight:    [C_in, C_out, kernel_h, kernel_w] dense (PyTorch's layout)
//   conv_bias: [C_out], or null for no bias
// Returns y [N, C_out, H_out, W_out] dense NCHW. Every y element starts at
// conv_bias[co]; each input pixel (n, ci, ih, iw) and tap (kh, kw) adds
// x * w into y[n, co, ih*stride_h - pad_h + kh*dilation_h, iw*stride_w - pad_w + kw*dilation_w]
// when that position lies inside the output. Throws std::invalid_argument on
// invalid parameters.
std::vector<double> conv_transpose2d(const ConvTranspose2dParams& p, const float* x,
                                     const float* weight, const float* conv_bias);

// The a-priori error scale of SPEC.md: A[n, co, oh, ow] = sum over the taps that
// reach (oh, ow) of |x * w| (no bias). Same layout as conv_transpose2d's result.
std::vector<double> conv_transpose2d_abs(const ConvTranspose2dParams& p, const float* x,
                                         const float* weight);

// The minimum of a channel column with torch.min's NaN rule: NaN if any value is NaN.
double nan_propagating_min(double current, double v);

// s[n, w] = sum over h of (min over c of y[n, c, h, w]), returned as [N, W] dense.
// The min propagates NaN like torch.min; the sum is a plain double sum (so
// +inf + -inf = NaN). This overload reads a strided fp32 host tensor.
std::vector<double> min_sum(const float* y, const Tensor4d& desc);
// The same for a dense NCHW double tensor.
std::vector<double> min_sum(const double* y, int64_t N, int64_t C, int64_t H, int64_t W);

// GELU in double precision, PyTorch's two forms:
//   kErf:  0.5 * s * erfc(-s / sqrt(2))   (= 0.5*s*(1 + erf(s/sqrt(2))), accurate for s < 0)
//   kTanh: 0.5 * s * (1 + tanh(sqrt(2/pi) * (s + 0.044715 s^3)))
// Special values as in PyTorch: gelu(-inf) = NaN, gelu(+inf) = +inf, gelu(NaN) = NaN,
// gelu(-50) = -0.0.
// Deep in the negative tail (s < about -8.3) PyTorch's float64 1 + erf(z) is exactly 0 and
// gives -0.0 where the erfc form gives the true, tiny negative value (|difference| < 1e-15).
double gelu(double s, GeluMode mode);

// out[n, cb, 0, w] = gelu(s[n, w]) + bias[cb], returned as [N, bias_len, 1, W] dense.
std::vector<double> gelu_bias(const std::vector<double>& s, int64_t N, int64_t W,
                              const float* bias, int64_t bias_len, GeluMode mode);

struct Forward {
  std::vector<double> y;    // [N, C_out, H_out, W_out]
  std::vector<double> s;    // [N, W_out]
  std::vector<double> out;  // [N, bias_len, 1, W_out]
};

// The whole module: conv_transpose2d, min_sum, gelu_bias.
Forward forward(const ConvTranspose2dParams& p, const float* x, const float* weight,
                const float* conv_bias, const float* bias, int64_t bias_len, GeluMode mode);

// ---------------------------------------------------------------------------
// Error measures (SPEC.md, "How errors are measured")
// ---------------------------------------------------------------------------

// Normwise relative error ||got - ref||_2 / ||ref||_2 over the elements where ref is
// finite. Returns +inf when the non-finite pattern differs: got is non-finite where
// ref is finite, a NaN in ref is not NaN in got, or an infinity in ref is not the
// same infinity in got. When ||ref||_2 == 0 it returns 0 if got equals ref there,
// else +inf.
double normwise_rel_error(const float* got, const double* ref, size_t n);
// The same with a double `got` (used to compare the reference with PyTorch).
double normwise_rel_error(const double* got, const double* ref, size_t n);

// Result of an elementwise check; `first_bad` is the flat index of the first
// element that fails (-1 when ok).
struct ElementCheck {
  bool ok = true;
  int64_t first_bad = -1;
  double got = 0, ref = 0, bound = 0;
  std::string describe() const;
};

// |got[i] - ref[i]| <= bound for every i where ref is finite (got must be finite
// there too); where ref is non-finite got must match exactly (NaN <-> NaN, an
// infinity <-> the same-signed infinity). A NaN bound fails.
ElementCheck check_elementwise(const float* got, const double* ref, size_t n,
                               double scalar_bound);
// The same with a bound per element.
ElementCheck check_elementwise(const float* got, const double* ref, size_t n,
                               const double* bound);

// max |ref[i]| over the finite elements (0 if none): the scale of the elementwise
// check |got - ref| <= rtol * max|ref| of SPEC.md.
double max_abs_finite(const double* ref, size_t n);

// The a-priori bound on s of SPEC.md from A = conv_transpose2d_abs (dense NCHW):
// bound[n, w] = sum over h of (max over c of unit * A[n, c, h, w]); unit is 2^-10
// for TF32. Returned as [N, W] dense.
std::vector<double> s_bound_from_abs(const std::vector<double>& A, int64_t N, int64_t C,
                                     int64_t H, int64_t W, double unit);

}  // namespace ref
}  // namespace ctfuse
