// conv_transpose2d: argument checks, then the mainloop with the store epilogue.
#include "convt_dispatch.h"
#include "ctfuse/ctfuse.h"
#include "epilogues.cuh"
#include "problem.h"
#include "status_util.h"

namespace ctfuse {
namespace {

// After the store path: rewrites all of y from the definition if any weight was NaN/Inf.
__global__ void recompute_y_if_nonfinite_weights(ExactOperands o, NonfiniteWeightFlags f, float* y) {
  ptx::wait_for_prior_grid();  // the GEMM, which also waited for the packing's flags
  if (block_saw_nonfinite_weight(f)) write_y_from_definition(o, y);
}

}  // namespace

Status launch_convt_store(const ExactOperands& exact, const ConvTOperands& op, const NonfiniteWeightFlags& nonfinite,
                          float* y, MathMode math, const EngineChoice& engine, cudaStream_t stream) {
  CTFUSE_RETURN_IF_ERROR(with_gemm_config<EpilogueKind::kStore>(exact.g, math, engine.engine, [&](auto c) {
    return launch_convt_gemm<StoreEpilogue>(c, exact.g, op, {exact.conv_bias, y}, engine, stream);
  }));
  // A few blocks: with finite weights (always, but for the rare call) each only reads the flags.
  // (The warp-specialised GEMM reading them itself instead, before its mainloop, saves this
  // launch but cost that kernel more: H200, convt_tf32, same call, three times: 268.1-268.9
  // us against 263.1-263.5 with the definition's code inlined into it, 264.4-265.2 with it
  // out of line.)
  return launch_kernel(engine.overlapped_launch, recompute_y_if_nonfinite_weights, 128, 256, 0, stream, exact,
                       nonfinite, y);
}

Status conv_transpose2d_workspace_size(const ConvTranspose2dParams& params, MathMode math, size_t* bytes) {
  if (!bytes) return invalid("conv_transpose2d_workspace_size: bytes is null");
  if (math != MathMode::kTF32 && math != MathMode::kFP32)
    return invalid("conv_transpose2d_workspace_size: math is not a MathMode value");
  ConvTGeometry g;
  CTFUSE_RETURN_IF_ERROR(make_geometry(params, &g));
  *bytes = workspace_layout(g, math, 0).total;
  return ok_status();
}

Status mainloop_in_use(const ConvTranspose2dParams& params, MathMode math, MainloopKind mainloop, const char** name) {
  if (!name) return invalid("mainloop_in_use: name is null");
  if (math != MathMode::kTF32 && math != MathMode::kFP32) return invalid("mainloop_in_use: math is not a MathMode value");
  if (mainloop != MainloopKind::kAuto && mainloop != MainloopKind::kPortable)
    return invalid("mainloop_in_use: mainloop is not a MainloopKind value");
  ConvTGeometry g;
  CTFUSE_RETURN_IF_ERROR(make_geometry(params, &g));
  // x is not known here: assume it is 16-byte aligned, as cudaMalloc returns it.
  EngineChoice choice;
  CTFUSE_RETURN_IF_ERROR(
      select_engine(mainloop, math, EpilogueKind::kMinSum, g, reinterpret_cast<const float*>(uintptr_t(256)), &choice, false));
  *name = engine_name(choice.engine);
  return ok_status();
}

Status conv_transpose2d(const ConvTranspose2dParams& params, const float* x, const float* weight,
                        const float* conv_bias, float* y, MathMode math, void* workspace, size_t workspace_bytes,
                        cudaStream_t stream, MainloopKind mainloop) {
  ConvTGeometry g;
  CTFUSE_RETURN_IF_ERROR(make_geometry(params, &g));
  if (math != MathMode::kTF32 && math != MathMode::kFP32) return invalid("conv_transpose2d: math is not a MathMode value");
  if (mainloop != MainloopKind::kAuto && mainloop != MainloopKind::kPortable)
    return invalid("conv_transpose2d: mainloop is not a MainloopKind value");
  if (!x) return invalid("conv_transpose2d: x is null");
  if (!weight) return invalid("conv_transpose2d: weight is null");
  if (!y) return invalid("conv_transpose2d: y is null");
  if (!is_aligned(x, 4)) return invalid("conv_transpose2d: x is not 4-byte aligned");
  if (!is_aligned(weight, 4)) return invalid("conv_transpose2d: weight is not 4-byte aligned");
  if (!is_aligned(conv_bias, 4)) return invalid("conv_transpose2d: conv_bias is not 4-byte aligned");
  if (!is_aligned(y, 4)) return invalid("conv_transpose2d: y is not 4-byte aligned");
  const WorkspaceLayout l = workspace_layout(g, math, 0);
  CTFUSE_RETURN_IF_ERROR(check_workspace(workspace, workspace_bytes, l.total,
                                         "conv_transpose2d: workspace is null",
                                         "conv_transpose2d: workspace_bytes is smaller than conv_transpose2d_workspace_size",
                                         "conv_transpose2d: workspace is not 16-byte aligned"));
  CTFUSE_RETURN_IF_ERROR(check_device_context(
      stream, {{x, "conv_transpose2d: x is host memory the device cannot access"},
               {weight, "conv_transpose2d: weight is host memory the device cannot access"},
               {conv_bias, "conv_transpose2d: conv_bias is host memory the device cannot access"},
               {y, "conv_transpose2d: y is host memory the device cannot access"},
               {workspace, "conv_transpose2d: workspace is host memory the device cannot access"}}));
  EngineChoice engine;
  CTFUSE_RETURN_IF_ERROR(select_engine(mainloop, math, EpilogueKind::kStore, g, x, &engine));
  ConvTOperands op;
  NonfiniteWeightFlags nonfinite;
  CTFUSE_RETURN_IF_ERROR(pack_weights(g, x, weight, math, engine.engine, EpilogueKind::kStore,
                                      static_cast<char*>(workspace), l, stream, &op, &nonfinite));
  return launch_convt_store({g, x, weight, conv_bias}, op, nonfinite, y, math, engine, stream);
}

}  // namespace ctfuse
