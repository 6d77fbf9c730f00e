// Internal shape checks used by the entry points.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ctfuse/types.h"

namespace ctfuse {

// True when no two distinct indices of `t` address the same element (strides are
// non-negative and, sorted by stride, each dimension's extent fits below the next).
bool tensor4d_is_non_overlapping(const Tensor4d& t);

// True when `p` is a multiple of `bytes` (a power of two).
inline bool is_aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

// Number of elements spanned by `t` (1 + the largest offset), or -1 on int64 overflow.
int64_t tensor4d_span(const Tensor4d& t);

}  // namespace ctfuse
