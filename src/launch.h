// The launch of the kernels that follow another kernel of the same call (the GEMM after
// the weight packing, the fix-up or column finisher after the GEMM): cudaLaunchKernelEx,
// optionally with programmatic stream serialisation (ptx.cuh, "Programmatic dependent
// launch"). Overlapped, a kernel's launch and its blocks' start-up happen while the
// kernel before it ends, instead of after (H200: fused_tf32 178.7 -> 175.9 us, fused_fp32
// 444.4 -> 437.5, convt_fp32 601.6 -> 587.7, convt_tf32 unchanged).
#pragma once

#include <cuda_runtime.h>

#include "status_util.h"

namespace ctfuse {

// `overlap` only for kernels that call ptx::wait_for_prior_grid() before touching
// anything the kernel before them writes or reads, and only where that instruction is in
// the code the device runs (EngineChoice::overlapped_launch).
template <typename... Params, typename... Args>
Status launch_kernel(bool overlap, void (*kernel)(Params...), unsigned blocks, unsigned threads, size_t smem,
                     cudaStream_t stream, const Args&... args) {
  cudaLaunchAttribute overlapped{};
  overlapped.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  overlapped.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(blocks);
  config.blockDim = dim3(threads);
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  config.attrs = &overlapped;
  config.numAttrs = overlap ? 1 : 0;
  cudaError_t e = cudaLaunchKernelEx(&config, kernel, args...);
  if (e == cudaErrorNotSupported && overlap) {  // a driver or stream capture without it: launch plainly
    cudaGetLastError();
    config.numAttrs = 0;
    e = cudaLaunchKernelEx(&config, kernel, args...);
  }
  if (e != cudaSuccess) cudaGetLastError();  // reported here, not left pending for the caller
  return cuda_status(e);
}

}  // namespace ctfuse
