// CUDA-event timing for the bench: warm-up, then the median of many runs, with the
// L2 scrubbed before each run so no run profits from the previous one's cache.
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <cuda_runtime.h>

#define BENCH_CUDA_CHECK(expr)                                                        \
  do {                                                                                \
    cudaError_t _e = (expr);                                                          \
    if (_e != cudaSuccess) {                                                          \
      std::fprintf(stderr, "CUDA error %s at %s:%d: %s\n", cudaGetErrorName(_e),      \
                   __FILE__, __LINE__, cudaGetErrorString(_e));                       \
      std::exit(2);                                                                   \
    }                                                                                 \
  } while (0)

namespace bench {

struct Timing {
  double median_us = 0, min_us = 0, max_us = 0;
  int runs = 0;
};

// Owns a buffer larger than L2; writing it evicts whatever the timed region left.
class L2Scrub {
 public:
  L2Scrub() {
    int dev = 0, l2 = 0;
    BENCH_CUDA_CHECK(cudaGetDevice(&dev));
    BENCH_CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev));
    bytes_ = std::max<size_t>(size_t(l2) * 2, size_t(64) << 20);
    BENCH_CUDA_CHECK(cudaMalloc(&buf_, bytes_));
  }
  ~L2Scrub() { cudaFree(buf_); }
  L2Scrub(const L2Scrub&) = delete;
  L2Scrub& operator=(const L2Scrub&) = delete;
  void run(cudaStream_t s) { BENCH_CUDA_CHECK(cudaMemsetAsync(buf_, 0x5a, bytes_, s)); }

 private:
  void* buf_ = nullptr;
  size_t bytes_ = 0;
};

// Times `fn(stream)`: `warmup` untimed calls, then `runs` calls each bracketed by
// its own pair of events, the L2 scrubbed before each. Returns the median.
template <typename Fn>
Timing time_cuda(Fn&& fn, cudaStream_t stream, L2Scrub& scrub, int warmup = 5, int runs = 50) {
  for (int i = 0; i < warmup; ++i) fn(stream);
  std::vector<cudaEvent_t> ev(2 * runs);
  for (auto& e : ev) BENCH_CUDA_CHECK(cudaEventCreate(&e));
  for (int i = 0; i < runs; ++i) {
    scrub.run(stream);
    BENCH_CUDA_CHECK(cudaEventRecord(ev[2 * i], stream));
    fn(stream);
    BENCH_CUDA_CHECK(cudaEventRecord(ev[2 * i + 1], stream));
  }
  BENCH_CUDA_CHECK(cudaStreamSynchronize(stream));
  BENCH_CUDA_CHECK(cudaGetLastError());
  std::vector<double> us(runs);
  for (int i = 0; i < runs; ++i) {
    float ms = 0;
    BENCH_CUDA_CHECK(cudaEventElapsedTime(&ms, ev[2 * i], ev[2 * i + 1]));
    us[i] = 1000.0 * ms;
  }
  for (auto& e : ev) cudaEventDestroy(e);
  std::sort(us.begin(), us.end());
  Timing t;
  t.runs = runs;
  t.min_us = us.front();
  t.max_us = us.back();
  t.median_us = runs % 2 ? us[runs / 2] : 0.5 * (us[runs / 2 - 1] + us[runs / 2]);
  return t;
}

}  // namespace bench
