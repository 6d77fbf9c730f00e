// Internal shape checks used by the entry points.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>

#include "ctfuse/types.h"

namespace ctfuse {

// True when no two distinct indices of `t` address the same element (strides are
// non-negative and, sorted by stride, each dimension's extent fits below the next).
bool tensor4d_is_non_overlapping(const Tensor4d& t);

// True when `p` is a multiple of `bytes` (a power of two).
inline bool is_aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

// Number of elements spanned by `t` (1 + the largest offset), or -1 on int64 overflow.
int64_t tensor4d_span(const Tensor4d& t);

// A pointer a kernel will dereference, and the message if the device cannot reach it.
struct DevicePointer {
  const void* ptr;  // may be null (optional arguments): skipped
  const char* host_memory_message;
};

// The checks that need the CUDA runtime, run after every argument check and before the
// first launch, so that a failure still leaves everything the caller owns untouched:
//  - an error already pending from the caller's earlier work is reported (kCudaError,
//    left pending) rather than attributed to our launches after we had queued them;
//  - `stream` must belong to the current device (0 and the per-thread stream always do);
//  - each pointer must be reachable from the device: pageable host memory is refused
//    unless the device can access pageable memory (HMM/ATS systems).
// A destroyed stream or freed pointer is undefined behaviour in CUDA itself; where the
// runtime reports it, the error comes back as kCudaError.
Status check_device_context(cudaStream_t stream, std::initializer_list<DevicePointer> pointers);

}  // namespace ctfuse
