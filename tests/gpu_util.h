// Small helpers for the GPU tests: skip without a device, RAII device buffers,
// poisoned outputs.
#pragma once

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include <cuda_runtime.h>
#include <gtest/gtest.h>

namespace ctfuse::testing {

inline bool have_gpu() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

#define CTFUSE_REQUIRE_GPU()                                        \
  do {                                                              \
    if (!::ctfuse::testing::have_gpu()) GTEST_SKIP() << "no CUDA device"; \
  } while (0)

#define CUDA_ASSERT(expr) ASSERT_EQ((expr), cudaSuccess) << #expr

// A quiet NaN with a recognisable payload: an element still holding it was never written.
inline float poison_value() {
  const uint32_t bits = 0x7fc0dead;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline bool is_poison(float f) {
  const float poison = poison_value();
  return std::memcmp(&f, &poison, 4) == 0;
}

template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t count) : count_(count) {
    if (count && cudaMalloc(&ptr_, count * sizeof(T)) != cudaSuccess) ptr_ = nullptr;
  }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) { upload(host); }
  ~DeviceBuffer() { if (ptr_) cudaFree(ptr_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* get() const { return ptr_; }
  size_t size() const { return count_; }
  bool ok() const { return ptr_ != nullptr || count_ == 0; }
  void upload(const std::vector<T>& host) {
    cudaMemcpy(ptr_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice);
  }
  std::vector<T> download() const {
    std::vector<T> host(count_);
    cudaMemcpy(host.data(), ptr_, count_ * sizeof(T), cudaMemcpyDeviceToHost);
    return host;
  }
  void fill(T value) { upload(std::vector<T>(count_, value)); }

 private:
  T* ptr_ = nullptr;
  size_t count_ = 0;
};

// 24 random bits of (i, seed) as a float in [lo, lo + span): exact when span is a power of
// two and lo a multiple of span / 2^24 (as for [0, 1) and [-1, 1)), so the host knows the
// value the device wrote (no download of a huge x, no contraction difference).
__host__ __device__ inline float hash_value(uint64_t i, uint32_t seed, float lo, float span) {
  uint32_t h = uint32_t(i) * 2654435761u ^ seed ^ uint32_t(i >> 32) * 40503u;
  h ^= h >> 15; h *= 2246822519u; h ^= h >> 13; h *= 3266489917u; h ^= h >> 16;
  return lo + span * (float(h >> 8) * (1.0f / 16777216.0f));
}

// p[i] = hash_value(i, seed, lo, span): fills inputs too large to upload. A template only
// so that every test file may include its definition.
template <typename T = float>
__global__ void fill_hash(T* p, size_t n, uint32_t seed, float lo, float span) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    p[i] = hash_value(i, seed, lo, span);
}

// A fresh seed for each test run, printed so that a failure can be replayed with
// CTFUSE_TEST_SEED=<seed>.
inline uint64_t test_seed() {
  static const uint64_t seed = [] {
    const char* env = std::getenv("CTFUSE_TEST_SEED");
    const uint64_t s = env ? std::strtoull(env, nullptr, 10) : std::random_device{}();
    std::printf("[ctfuse] test seed %llu (set CTFUSE_TEST_SEED to replay)\n",
                static_cast<unsigned long long>(s));
    return s;
  }();
  return seed;
}

}  // namespace ctfuse::testing
