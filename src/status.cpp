#include "ctfuse/types.h"

namespace ctfuse {

const char* status_code_name(StatusCode code) {
  switch (code) {
    case StatusCode::kSuccess: return "success";
    case StatusCode::kInvalidArgument: return "invalid argument";
    case StatusCode::kUnsupported: return "unsupported";
    case StatusCode::kCudaError: return "CUDA error";
  }
  return "unknown status code";
}

}  // namespace ctfuse
