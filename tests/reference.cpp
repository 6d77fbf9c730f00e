// ctfuse::ref — the float64 CPU reference. See reference.h and shared/SPEC.md.
#include "reference.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace ctfuse {
namespace ref {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kPi = 3.141592653589793238462643383279502884;

// Runs f(i) for i in [0, count), spread over a few threads. Each i must write
// disjoint memory; the result does not depend on the number of threads.
template <typename F>
void parallel_for(int64_t count, int64_t work_per_item, F f) {
  unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  threads = std::min<unsigned>(threads, 32);
  // Small problems (every test case) stay on the calling thread.
  if (threads == 1 || count < 2 || count * work_per_item < (int64_t{1} << 22)) {
    for (int64_t i = 0; i < count; ++i) f(i);
    return;
  }
  threads = static_cast<unsigned>(std::min<int64_t>(threads, count));
  std::vector<std::thread> pool;
  pool.reserve(threads);
  for (unsigned t = 0; t < threads; ++t) {
    pool.emplace_back([=, &f] {
      for (int64_t i = t; i < count; i += threads) f(i);
    });
  }
  for (auto& th : pool) th.join();
}

// The scatter loop shared by conv_transpose2d and conv_transpose2d_abs. For one
// output plane (n, co) it visits every input pixel (ci, ih, iw) and tap (kh, kw)
// and adds term(x * w) at the output position the tap lands on. The order of the
// additions into any one element is fixed (ci, ih, kh, iw, kw).
template <typename Term>
std::vector<double> scatter(const ConvTranspose2dParams& p, const float* x, const float* weight,
                            const float* conv_bias, Term term) {
  int64_t H_out = 0, W_out = 0;
  output_hw(p, &H_out, &W_out);
  if (x == nullptr || weight == nullptr) throw std::invalid_argument("x and weight must not be null");

  const int64_t plane_in = p.H_in * p.W_in;
  const int64_t plane_out = H_out * W_out;
  const int64_t taps = p.kernel_h * p.kernel_w;
  std::vector<double> y(static_cast<size_t>(p.N * p.C_out * plane_out));

  parallel_for(p.N * p.C_out, p.C_in * plane_in * taps, [&](int64_t plane) {
    const int64_t n = plane / p.C_out;
    const int64_t co = plane % p.C_out;
    double* yp = y.data() + plane * plane_out;
    const double b = conv_bias ? static_cast<double>(conv_bias[co]) : 0.0;
    std::fill(yp, yp + plane_out, b);

    for (int64_t ci = 0; ci < p.C_in; ++ci) {
      const float* xp = x + (n * p.C_in + ci) * plane_in;
      const float* wp = weight + (ci * p.C_out + co) * taps;
      for (int64_t ih = 0; ih < p.H_in; ++ih) {
        for (int64_t kh = 0; kh < p.kernel_h; ++kh) {
          const int64_t oh = ih * p.stride_h - p.pad_h + kh * p.dilation_h;
          if (oh < 0 || oh >= H_out) continue;  // cropped by padding / beyond the output
          for (int64_t iw = 0; iw < p.W_in; ++iw) {
            const double xv = xp[ih * p.W_in + iw];
            for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
              const int64_t ow = iw * p.stride_w - p.pad_w + kw * p.dilation_w;
              if (ow < 0 || ow >= W_out) continue;
              // fp32 * fp32 is exact in double.
              yp[oh * W_out + ow] += term(xv * static_cast<double>(wp[kh * p.kernel_w + kw]));
            }
          }
        }
      }
    }
  });
  return y;
}

bool same_nonfinite(double got, double ref) {
  if (std::isnan(ref)) return std::isnan(got);
  return got == ref;  // ref is +-inf: got must be the same infinity
}

template <typename T>
double normwise_rel_error_impl(const T* got, const double* ref, size_t n) {
  double diff2 = 0, ref2 = 0;
  for (size_t i = 0; i < n; ++i) {
    const double g = static_cast<double>(got[i]);
    const double r = ref[i];
    if (!std::isfinite(r)) {
      if (!same_nonfinite(g, r)) return kInf;
      continue;
    }
    if (!std::isfinite(g)) return kInf;
    diff2 += (g - r) * (g - r);
    ref2 += r * r;
  }
  if (ref2 == 0) return diff2 == 0 ? 0.0 : kInf;
  return std::sqrt(diff2) / std::sqrt(ref2);
}

template <typename BoundAt>
ElementCheck check_elementwise_impl(const float* got, const double* ref, size_t n,
                                    BoundAt bound_at) {
  ElementCheck c;
  for (size_t i = 0; i < n; ++i) {
    const double g = static_cast<double>(got[i]);
    const double r = ref[i];
    const double b = bound_at(i);
    bool good;
    if (!std::isfinite(r)) {
      good = same_nonfinite(g, r);
    } else {
      good = std::isfinite(g) && std::fabs(g - r) <= b;  // false for a NaN bound
    }
    if (!good) {
      c.ok = false;
      c.first_bad = static_cast<int64_t>(i);
      c.got = g;
      c.ref = r;
      c.bound = b;
      return c;
    }
  }
  return c;
}

}  // namespace

void output_hw(const ConvTranspose2dParams& p, int64_t* H_out, int64_t* W_out) {
  const Status st = conv_transpose2d_output_hw(p, H_out, W_out);
  if (!st.ok()) throw std::invalid_argument(st.message);
}

std::vector<double> conv_transpose2d(const ConvTranspose2dParams& p, const float* x,
                                     const float* weight, const float* conv_bias) {
  return scatter(p, x, weight, conv_bias, [](double v) { return v; });
}

std::vector<double> conv_transpose2d_abs(const ConvTranspose2dParams& p, const float* x,
                                         const float* weight) {
  return scatter(p, x, weight, nullptr, [](double v) { return std::fabs(v); });
}

double nan_propagating_min(double current, double v) {
  if (std::isnan(current) || std::isnan(v)) return kNaN;
  return v < current ? v : current;
}

namespace {
// s[n, w] = sum_h min_c y[n, c, h, w] for y of element type T at element strides st (N, C, H, W).
template <typename T>
std::vector<double> min_sum_strided(const T* y, int64_t N, int64_t C, int64_t H, int64_t W, const int64_t st[4]) {
  if (N <= 0 || C <= 0 || H <= 0 || W <= 0) throw std::invalid_argument("min_sum: empty tensor");
  std::vector<double> s(static_cast<size_t>(N * W));
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t w = 0; w < W; ++w) {
      double sum = 0;
      for (int64_t h = 0; h < H; ++h) {
        const T* col = y + n * st[0] + h * st[2] + w * st[3];
        double m = col[0];
        for (int64_t c = 1; c < C; ++c) m = nan_propagating_min(m, col[c * st[1]]);
        sum += m;
      }
      s[n * W + w] = sum;
    }
  }
  return s;
}
}  // namespace

std::vector<double> min_sum(const float* y, const Tensor4d& d) {
  return min_sum_strided(y, d.n(), d.c(), d.h(), d.w(), d.stride);
}

std::vector<double> min_sum(const double* y, int64_t N, int64_t C, int64_t H, int64_t W) {
  const int64_t st[4] = {C * H * W, H * W, W, 1};
  return min_sum_strided(y, N, C, H, W, st);
}

double gelu(double s, GeluMode mode) {
  if (mode == GeluMode::kTanh) {
    const double k_beta = std::sqrt(2.0 / kPi);
    const double inner = k_beta * (s + 0.044715 * s * s * s);
    return 0.5 * s * (1.0 + std::tanh(inner));
  }
  // 1 + erf(z) == erfc(-z), without the cancellation for z << 0.
  return 0.5 * s * std::erfc(-s / std::sqrt(2.0));
}

std::vector<double> gelu_bias(const std::vector<double>& s, int64_t N, int64_t W,
                              const float* bias, int64_t bias_len, GeluMode mode) {
  if (N <= 0 || W <= 0 || bias_len <= 0 || bias == nullptr)
    throw std::invalid_argument("gelu_bias: N, W, bias_len must be positive and bias non-null");
  if (s.size() != static_cast<size_t>(N * W)) throw std::invalid_argument("gelu_bias: s must be [N, W]");
  std::vector<double> out(static_cast<size_t>(N * bias_len * W));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t cb = 0; cb < bias_len; ++cb)
      for (int64_t w = 0; w < W; ++w)
        out[(n * bias_len + cb) * W + w] = gelu(s[n * W + w], mode) + static_cast<double>(bias[cb]);
  return out;
}

Forward forward(const ConvTranspose2dParams& p, const float* x, const float* weight,
                const float* conv_bias, const float* bias, int64_t bias_len, GeluMode mode) {
  int64_t H_out = 0, W_out = 0;
  output_hw(p, &H_out, &W_out);
  Forward f;
  f.y = conv_transpose2d(p, x, weight, conv_bias);
  f.s = min_sum(f.y.data(), p.N, p.C_out, H_out, W_out);
  f.out = gelu_bias(f.s, p.N, W_out, bias, bias_len, mode);
  return f;
}

double normwise_rel_error(const float* got, const double* ref, size_t n) {
  return normwise_rel_error_impl(got, ref, n);
}

double normwise_rel_error(const double* got, const double* ref, size_t n) {
  return normwise_rel_error_impl(got, ref, n);
}

std::string ElementCheck::describe() const {
  if (ok) return "all elements within bound";
  std::ostringstream os;
  os.precision(17);
  os << "element " << first_bad << ": got " << got << ", ref " << ref;
  if (std::isfinite(ref))
    os << ", |got - ref| = " << std::fabs(got - ref) << " > bound " << bound;
  else
    os << " (non-finite reference must be matched exactly)";
  return os.str();
}

ElementCheck check_elementwise(const float* got, const double* ref, size_t n,
                               double scalar_bound) {
  return check_elementwise_impl(got, ref, n, [&](size_t) { return scalar_bound; });
}

ElementCheck check_elementwise(const float* got, const double* ref, size_t n,
                               const double* bound) {
  return check_elementwise_impl(got, ref, n, [&](size_t i) { return bound[i]; });
}

double max_abs_finite(const double* ref, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i)
    if (std::isfinite(ref[i])) m = std::max(m, std::fabs(ref[i]));
  return m;
}

std::vector<double> s_bound_from_abs(const std::vector<double>& A, int64_t N, int64_t C,
                                     int64_t H, int64_t W, double unit) {
  if (A.size() != static_cast<size_t>(N * C * H * W))
    throw std::invalid_argument("s_bound_from_abs: A must be [N, C, H, W]");
  std::vector<double> bound(static_cast<size_t>(N * W));
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t w = 0; w < W; ++w) {
      double sum = 0;
      for (int64_t h = 0; h < H; ++h) {
        double m = 0;  // A >= 0
        for (int64_t c = 0; c < C; ++c) {
          const double a = A[((n * C + c) * H + h) * W + w];
          m = std::isnan(a) ? a : std::max(m, a);  // a NaN (never from real inputs) stays visible
          if (std::isnan(m)) break;
        }
        sum += unit * m;
      }
      bound[n * W + w] = sum;
    }
  }
  return bound;
}

}  // namespace ref
}  // namespace ctfuse
