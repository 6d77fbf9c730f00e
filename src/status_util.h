// Internal helpers for building Status values.
#pragma once

#include "ctfuse/types.h"

namespace ctfuse {

constexpr Status ok_status() { return Status{}; }

constexpr Status invalid(const char* message) {
  return Status{StatusCode::kInvalidArgument, message, cudaSuccess};
}

constexpr Status unsupported(const char* message) {
  return Status{StatusCode::kUnsupported, message, cudaSuccess};
}

inline Status cuda_status(cudaError_t err) {
  if (err == cudaSuccess) return ok_status();
  return Status{StatusCode::kCudaError, cudaGetErrorString(err), err};
}

// For our own queries (device, attributes, occupancy): a failure is reported in the
// Status and consumed, not left pending for the caller's next CUDA call.
inline Status query_status(cudaError_t err) {
  if (err == cudaSuccess) return ok_status();
  cudaGetLastError();
  return cuda_status(err);
}

// Checks a launch without synchronising: configuration errors surface here,
// asynchronous faults at the caller's next synchronisation.
inline Status launch_status() { return cuda_status(cudaGetLastError()); }

#define CTFUSE_RETURN_IF_ERROR(expr)       \
  do {                                     \
    const ::ctfuse::Status _st = (expr);   \
    if (!_st.ok()) return _st;             \
  } while (0)

}  // namespace ctfuse
