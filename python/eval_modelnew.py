#!/usr/bin/env python3
"""Checks ctfuse_torch.ModelNew against the benchmark's reference Model, then times both,
in the spirit of the benchmark's harness. Runs on a GPU machine, nothing downloaded:

    python3 python/eval_modelnew.py [--v1] [--runs 50] [--json FILE] [--no-compile]

Checks (PASS/FAIL each; the exit code is 1 if any fails), for the configuration's bias form,
the other bias form, and FP32 math:
  (a) 5 fresh inputs x ~ U[0, 1), as the benchmark draws them: allclose(new, ref, 1e-2, 1e-2).
      At the benchmark shape GELU is flat there (every s is about -87..-59), so (a) alone
      would pass a kernel that ignores x; hence
  (b) the pre-GELU sums s on an input scaled so that |s| <= 3: normwise relative error
      against a float64 reference (<= 1e-4 TF32, 1e-6 FP32), the a-priori elementwise TF32
      bound (sum over rows of max over channels of 2^-10 * sum |x*w|), and out against the
      float64 gelu(s) + bias (atol = rtol = 1e-3).
Timing: Model eager, torch.compile(Model), ModelNew eager, the extension called directly
(what ModelNew's Python wrapper adds) and torch.compile(ModelNew,
fullgraph=True); CUDA events, warm-up, a 128 MB L2 scrub before each run, median of --runs.
"""
import argparse
import copy
import datetime
import glob
import json
import os
import sys

import torch
import torch.nn.functional as F

# This folder is sys.path[0]: without an in-place build here, its ctfuse_torch/ (no _C)
# would hide the pip-installed package.
_HERE = os.path.dirname(os.path.abspath(__file__))
if not glob.glob(os.path.join(_HERE, "ctfuse_torch", "_C*")):
    sys.path = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
import ctfuse_torch  # noqa: E402
from ctfuse_torch import ModelNew  # noqa: E402

# The benchmark's reference module and its timing (L2 scrubbed), from the script the bench runs.
sys.path.insert(0, os.path.join(os.path.dirname(_HERE), "bench"))
from pytorch_baseline import Model, time_cuda  # noqa: E402


def log(*args):
    print(*args, flush=True)


FAILED = []
VARIANT = ""  # which model the checks run on, for the summary


def check(name, ok, detail):
    log(f"  {'PASS' if ok else 'FAIL'}  {name}: {detail}")
    if not ok:
        FAILED.append(f"{name} [{VARIANT}]")


def build(cfg, bias_shape, seed, math=None):
    """Model and ModelNew from the same seed, ModelNew loaded from Model's state_dict."""
    args = (cfg["C_in"], cfg["C_out"], cfg["k"], cfg["stride"], cfg["padding"], cfg["output_padding"], bias_shape)
    torch.manual_seed(seed)
    model = Model(*args).cuda().eval()
    torch.manual_seed(seed)
    new = ModelNew(*args, math=math).cuda().eval()
    new.load_state_dict(model.state_dict())
    return model, new


def reference64(x, conv, bias):
    """float64 (s [N, W_out], out [N, C_b, 1, W_out], A-bound on s) of the op, on the GPU."""
    w = conv.weight.double()
    y = F.conv_transpose2d(x.double(), w, conv.bias.double(), conv.stride, conv.padding, conv.output_padding)
    s = y.amin(1).sum(1)
    del y
    out = F.gelu(s)[:, None, None, :] + bias.double().reshape(-1, 1, 1)
    # A = sum over taps of |x*w|: a TF32 kernel's y is within 2^-10 * A of the truth, so
    # its s is within the sum over rows of the max over channels of that.
    a = F.conv_transpose2d(x.double().abs(), w.abs(), None, conv.stride, conv.padding, conv.output_padding)
    bound = (a.amax(1) * 2.0 ** -10).sum(1)
    return s, out, bound


def check_outputs(cfg, model, new, seed):
    """(a): fresh U[0, 1) inputs, allclose with the benchmark's tolerances."""
    gen = torch.Generator(device="cuda").manual_seed(seed + 1)
    worst = 0.0
    ok = True
    for _ in range(5):
        x = torch.rand(cfg["N"], cfg["C_in"], cfg["H_in"], cfg["W_in"], device="cuda", generator=gen)
        ref, got = model(x), new(x)
        ok = ok and got.shape == ref.shape and torch.allclose(got, ref, atol=1e-2, rtol=1e-2)
        worst = max(worst, (got - ref).abs().max().item() if got.shape == ref.shape else float("inf"))
    check("outputs, 5 inputs x ~ U[0,1), atol=rtol=1e-2", ok, f"max abs error {worst:.3e}, shape {tuple(ref.shape)}")


def check_sums(cfg, new, math, seed):
    """(b): s on an input scaled so that GELU is active, against float64."""
    gen = torch.Generator(device="cuda").manual_seed(seed + 2)
    x = torch.rand(cfg["N"], cfg["C_in"], cfg["H_in"], cfg["W_in"], device="cuda", generator=gen)
    s64, _, _ = reference64(x, new.conv_transpose, new.bias)
    # s is linear in (x, conv bias) jointly (min and sum commute with a positive scale).
    a = 3.0 / s64.abs().max().item()
    xs = (x * a).contiguous()
    scaled = copy.deepcopy(new)
    scaled.conv_transpose.bias.mul_(a)
    s64, out64, bound = reference64(xs, scaled.conv_transpose, scaled.bias)
    out, s = scaled.forward_with_sums(xs)
    s, out = s.double(), out.double()

    rel = ((s - s64).norm() / s64.norm()).item()
    limit = 1e-4 if math == "tf32" else 1e-6
    active = ((s.abs() >= 0.1) & (s.abs() <= 4.0)).double().mean().item()
    check(f"s normwise relative error ({math}) <= {limit:g}", rel <= limit,
          f"{rel:.3e}; scale {a:.3e}, {100 * active:.1f}% of |s| in [0.1, 4] (GELU active)")
    err = (s - s64).abs()
    ok = bool((err <= bound).all())  # also False on NaN
    check("s within the a-priori bound sum_h max_c 2^-10 * sum|x*w|", ok,
          f"worst |s - s_ref| / bound = {(err / bound.clamp_min(1e-300)).max().item():.3f}")
    ok = out.shape == out64.shape and torch.allclose(out, out64, atol=1e-3, rtol=1e-3)
    err = (out - out64).abs().max().item() if out.shape == out64.shape else float("inf")
    check("out vs float64 gelu(s) + bias, atol=rtol=1e-3", ok, f"max abs error {err:.3e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--v1", action="store_true", help="the benchmark's first version (N=128, 3 -> 16, 32x32)")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--json", default=None, help="write the timing records here")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    global VARIANT
    if not torch.cuda.is_available():
        log("FAIL: no CUDA device")
        return 1

    if a.v1:
        cfg = dict(N=128, C_in=3, C_out=16, H_in=32, W_in=32, bias=16)
        bias_shape, other_bias = (16, 1, 1), (1, 1, 1)
    else:
        cfg = dict(N=16, C_in=64, C_out=128, H_in=128, W_in=128, bias=1)
        bias_shape, other_bias = (1, 1, 1), (128, 1, 1)
    cfg.update(k=3, stride=2, padding=1, output_padding=1, dilation=1)
    gpu = torch.cuda.get_device_name()
    math = ctfuse_torch.default_math()
    log(f"PyTorch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}, {gpu}; "
        f"cuDNN convolutions run {math} (ModelNew follows)")
    log(f"config {cfg}")

    with torch.no_grad():
        for bshape, m in ((bias_shape, None), (other_bias, None), (bias_shape, "fp32")):
            model, new = build(cfg, bshape, a.seed, math=m)
            mode = m or math
            shape_only = torch.empty(1, device="cuda").expand(cfg["N"], cfg["C_in"], cfg["H_in"], cfg["W_in"])
            loop = ctfuse_torch.mainloop_in_use(shape_only, new.conv_transpose.weight, cfg["stride"],
                                                cfg["padding"], cfg["output_padding"], math=mode)
            VARIANT = f"bias {bshape}, math {mode}"
            log(f"checks: {VARIANT} ({loop})")
            check_outputs(cfg, model, new, a.seed)
            check_sums(cfg, new, mode, a.seed)
            del model, new
            torch.cuda.empty_cache()

        model, new = build(cfg, bias_shape, a.seed)
        x = torch.rand(cfg["N"], cfg["C_in"], cfg["H_in"], cfg["W_in"], device="cuda")
        rows = [("pytorch_eager", model, 5, "reference Model, eager")]
        if not a.no_compile:
            rows.append(("torch_compile", torch.compile(model), 20, "torch.compile(Model), default mode"))
        rows.append(("ctfuse_torch_modelnew", new, 5, f"ctfuse_torch.ModelNew, eager ({math})"))
        # The op called directly: the difference to the row above is what ModelNew's Python
        # (argument normalisation, the math-mode lookup) costs.
        conv = new.conv_transpose
        direct = (conv.weight, conv.bias, new.bias, list(conv.stride), list(conv.padding), list(conv.output_padding),
                  list(conv.dilation), 0 if math == "tf32" else 1, 0, False)
        rows.append(("ctfuse_torch_direct", lambda x: torch.ops.ctfuse.forward.default(x, *direct), 5,
                     "torch.ops.ctfuse.forward called directly (no Python wrapper)"))
        if not a.no_compile:
            rows.append(("ctfuse_torch_modelnew_compile", torch.compile(new, fullgraph=True), 20,
                         "torch.compile(ModelNew, fullgraph=True)"))
        results = {}
        log(f"\ntiming, median of {a.runs} (us)\n{'name':32s} {'median':>10s} {'min':>10s} {'max':>10s}")
        for name, fn, warmup, note in rows:
            results[name] = time_cuda(fn, x, a.runs, warmup)
            med, lo, hi = results[name]
            log(f"{name:32s} {med:10.1f} {lo:10.1f} {hi:10.1f}  {note}")

    new_med = results["ctfuse_torch_modelnew"][0]
    log(f"\nModelNew: {results['pytorch_eager'][0] / new_med:.2f}x PyTorch eager")
    if not a.no_compile:
        log(f"ModelNew: {results['torch_compile'][0] / new_med:.2f}x torch.compile(Model)")
        log(f"torch.compile(ModelNew): {results['ctfuse_torch_modelnew_compile'][0]:.1f} us "
            f"({results['ctfuse_torch_modelnew_compile'][0] / new_med:.2f}x ModelNew eager's time)")

    if a.json:
        date = datetime.date.today().isoformat()
        records = []
        for name, _, _, note in rows:
            med, lo, hi = results[name]
            records.append({"name": name, "config": dict(cfg, math=math), "median_us": round(med, 2),
                            "min_us": round(lo, 2), "max_us": round(hi, 2), "runs": a.runs, "note": note,
                            "gpu": gpu, "date": date, "torch": torch.__version__})
        with open(a.json, "w") as f:
            json.dump(records, f, indent=1)
        log(f"wrote {a.json}")

    log(f"\n{'FAIL: ' + ', '.join(FAILED) if FAILED else 'PASS: all checks'}")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
