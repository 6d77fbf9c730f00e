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
