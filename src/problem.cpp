// Shape arithmetic and parameter checks shared by every entry point.
#include <algorithm>
#include <limits>

#include "problem.h"

#include "ctfuse/types.h"
#include "status_util.h"

namespace ctfuse {

namespace {
// Sizes beyond this are rejected so that no product below can overflow int64.
constexpr int64_t kMaxDim = int64_t{1} << 31;
}  // namespace

Status conv_transpose2d_output_hw(const ConvTranspose2dParams& p, int64_t* H_out,
                                  int64_t* W_out) {
  if (p.N <= 0 || p.N > kMaxDim) return invalid("params.N must be in [1, 2^31]");
  if (p.C_in <= 0 || p.C_in > kMaxDim) return invalid("params.C_in must be in [1, 2^31]");
  if (p.C_out <= 0 || p.C_out > kMaxDim) return invalid("params.C_out must be in [1, 2^31]");
  if (p.H_in <= 0 || p.H_in > kMaxDim) return invalid("params.H_in must be in [1, 2^31]");
  if (p.W_in <= 0 || p.W_in > kMaxDim) return invalid("params.W_in must be in [1, 2^31]");
  if (p.kernel_h <= 0 || p.kernel_h > 1024) return invalid("params.kernel_h must be in [1, 1024]");
  if (p.kernel_w <= 0 || p.kernel_w > 1024) return invalid("params.kernel_w must be in [1, 1024]");
  if (p.stride_h <= 0 || p.stride_h > 1024) return invalid("params.stride_h must be in [1, 1024]");
  if (p.stride_w <= 0 || p.stride_w > 1024) return invalid("params.stride_w must be in [1, 1024]");
  if (p.dilation_h <= 0 || p.dilation_h > 1024)
    return invalid("params.dilation_h must be in [1, 1024]");
  if (p.dilation_w <= 0 || p.dilation_w > 1024)
    return invalid("params.dilation_w must be in [1, 1024]");
  if (p.pad_h < 0 || p.pad_h > kMaxDim) return invalid("params.pad_h must be in [0, 2^31]");
  if (p.pad_w < 0 || p.pad_w > kMaxDim) return invalid("params.pad_w must be in [0, 2^31]");
  if (p.output_pad_h < 0 || p.output_pad_h >= std::max(p.stride_h, p.dilation_h))
    return invalid("params.output_pad_h must be >= 0 and < max(stride_h, dilation_h)");
  if (p.output_pad_w < 0 || p.output_pad_w >= std::max(p.stride_w, p.dilation_w))
    return invalid("params.output_pad_w must be >= 0 and < max(stride_w, dilation_w)");

  const int64_t h = (p.H_in - 1) * p.stride_h - 2 * p.pad_h + p.dilation_h * (p.kernel_h - 1) +
                    p.output_pad_h + 1;
  const int64_t w = (p.W_in - 1) * p.stride_w - 2 * p.pad_w + p.dilation_w * (p.kernel_w - 1) +
                    p.output_pad_w + 1;
  if (h <= 0) return invalid("H_out = (H_in-1)*stride_h - 2*pad_h + dilation_h*(kernel_h-1) + output_pad_h + 1 is <= 0");
  if (w <= 0) return invalid("W_out = (W_in-1)*stride_w - 2*pad_w + dilation_w*(kernel_w-1) + output_pad_w + 1 is <= 0");
  if (h > kMaxDim) return invalid("H_out exceeds 2^31");
  if (w > kMaxDim) return invalid("W_out exceeds 2^31");
  if (H_out) *H_out = h;
  if (W_out) *W_out = w;
  return ok_status();
}

Tensor4d make_nchw(int64_t n, int64_t c, int64_t h, int64_t w) {
  Tensor4d t;
  t.size[0] = n; t.size[1] = c; t.size[2] = h; t.size[3] = w;
  t.stride[3] = 1;
  t.stride[2] = w;
  t.stride[1] = h * w;
  t.stride[0] = c * h * w;
  return t;
}

Tensor4d make_nhwc(int64_t n, int64_t c, int64_t h, int64_t w) {
  Tensor4d t;
  t.size[0] = n; t.size[1] = c; t.size[2] = h; t.size[3] = w;
  t.stride[1] = 1;
  t.stride[3] = c;
  t.stride[2] = w * c;
  t.stride[0] = h * w * c;
  return t;
}

}  // namespace ctfuse

namespace ctfuse {

bool tensor4d_is_non_overlapping(const Tensor4d& t) {
  int order[4] = {0, 1, 2, 3};
  for (int d = 0; d < 4; ++d)
    if (t.stride[d] < 0 || t.size[d] <= 0) return false;
  // Dimensions of size 1 never step, so their stride is irrelevant: sort them first.
  std::sort(order, order + 4, [&](int a, int b) {
    const int64_t sa = t.size[a] == 1 ? -1 : t.stride[a];
    const int64_t sb = t.size[b] == 1 ? -1 : t.stride[b];
    return sa < sb;
  });
  int64_t extent = 1;  // elements covered by the dimensions sorted so far
  for (int i = 0; i < 4; ++i) {
    const int d = order[i];
    if (t.size[d] == 1) continue;
    if (t.stride[d] < extent) return false;
    if (t.stride[d] > std::numeric_limits<int64_t>::max() / t.size[d]) return false;
    extent = t.stride[d] * t.size[d];
  }
  return true;
}

Status check_device_context(cudaStream_t stream, std::initializer_list<DevicePointer> pointers) {
  static constexpr char kPending[] =
      "a CUDA error from earlier work was pending on entry (see cudaGetLastError); nothing was queued";
  const cudaError_t pending = cudaPeekAtLastError();
  if (pending != cudaSuccess) return Status{StatusCode::kCudaError, kPending, pending};
  // Our own queries' errors are consumed (query_status): reported here, not left pending.
  int device = 0;
  if (const cudaError_t e = cudaGetDevice(&device); e != cudaSuccess) return query_status(e);
  if (stream != nullptr && stream != cudaStreamLegacy && stream != cudaStreamPerThread) {
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    if (const cudaError_t e = cudaStreamIsCapturing(stream, &capture); e != cudaSuccess) return query_status(e);
    // cudaStreamGetDevice is not permitted on a capturing stream (it would invalidate the
    // capture); a captured graph is checked when it is instantiated and launched.
#if CUDART_VERSION >= 12080  // cudaStreamGetDevice
    if (capture == cudaStreamCaptureStatusNone) {
      int stream_device = 0;
      if (const cudaError_t e = cudaStreamGetDevice(stream, &stream_device); e != cudaSuccess) return query_status(e);
      if (stream_device != device) return invalid("stream belongs to another device than the current one");
    }
#endif
  }
  int pageable_ok = -1;  // asked once, only if some pointer is unregistered host memory
  for (const DevicePointer& p : pointers) {
    if (!p.ptr) continue;
    cudaPointerAttributes a{};
    if (const cudaError_t e = cudaPointerGetAttributes(&a, p.ptr); e != cudaSuccess) return query_status(e);
    // Registered host memory is reachable at the same address only where the device may
    // use host pointers for it (devicePointer == ptr); elsewhere the kernels would need
    // devicePointer, which the caller should pass instead. Device memory of another device
    // is taken as given: it works with peer access enabled, which cannot be queried.
    const bool device_reachable = a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged ||
                                  (a.type == cudaMemoryTypeHost && a.devicePointer == p.ptr);
    if (device_reachable) continue;
    if (pageable_ok < 0) {
      if (const cudaError_t e = cudaDeviceGetAttribute(&pageable_ok, cudaDevAttrPageableMemoryAccess, device);
          e != cudaSuccess)
        return query_status(e);
    }
    if (!pageable_ok) return invalid(p.host_memory_message);
  }
  return ok_status();
}

int64_t tensor4d_span(const Tensor4d& t) {
  int64_t last = 0;
  for (int d = 0; d < 4; ++d) {
    if (t.size[d] <= 0 || t.stride[d] < 0) return -1;
    const int64_t steps = t.size[d] - 1;
    if (steps != 0 && t.stride[d] > (std::numeric_limits<int64_t>::max() - last) / steps)
      return -1;
    last += steps * t.stride[d];
  }
  return last + 1;
}

}  // namespace ctfuse
