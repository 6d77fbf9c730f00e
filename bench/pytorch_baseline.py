#!/usr/bin/env python3
"""PyTorch baselines for the ctfuse bench: the reference module of the benchmark problem
(ConvTranspose2d -> min over channels -> sum over rows -> GELU -> + bias), timed eager and
under torch.compile with CUDA events (warm-up, then the median of --runs, an L2 scrub
before each run), in the same GPU-machine call as the bench binary so ratios come from
one run. Writes the bench's JSON records (names `pytorch_eager`, `torch_compile`).

    python3 bench/pytorch_baseline.py [--v1] [--runs 50] [--json FILE] [--no-compile]
"""
import argparse
import datetime
import json
import statistics

import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    """The benchmark's reference module (level 2, problem 36), unchanged."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, output_padding, bias_shape):
        super().__init__()
        self.conv_transpose = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride, padding,
                                                 output_padding)
        self.bias = nn.Parameter(torch.randn(bias_shape))

    def forward(self, x):
        x = self.conv_transpose(x)
        x = torch.min(x, dim=1, keepdim=True)[0]
        x = torch.sum(x, dim=2, keepdim=True)
        x = F.gelu(x)
        x = x + self.bias
        return x


def time_cuda(fn, x, runs, warmup=5):
    scrub = torch.empty(128 << 20, dtype=torch.uint8, device="cuda")
    for _ in range(warmup):
        fn(x)
    times = []
    for i in range(runs):
        scrub.fill_(i & 0xff)
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn(x)
        stop.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(stop) * 1000.0)
    times.sort()
    return statistics.median(times), times[0], times[-1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--v1", action="store_true", help="the benchmark's first version")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--json", default=None)
    ap.add_argument("--no-compile", action="store_true")
    a = ap.parse_args()
    if a.v1:
        N, C_in, C_out, H, bias_shape = 128, 3, 16, 32, (16, 1, 1)
    else:
        N, C_in, C_out, H, bias_shape = 16, 64, 128, 128, (1, 1, 1)
    k, stride, padding, output_padding = 3, 2, 1, 1
    torch.manual_seed(0)
    model = Model(C_in, C_out, k, stride, padding, output_padding, bias_shape).cuda()
    x = torch.rand(N, C_in, H, H, device="cuda")  # the benchmark's x ~ U[0, 1)
    config = {"N": N, "C_in": C_in, "C_out": C_out, "H_in": H, "W_in": H, "k": k, "stride": stride,
              "padding": padding, "output_padding": output_padding, "dilation": 1, "bias": bias_shape[0]}
    gpu = torch.cuda.get_device_name()
    date = datetime.date.today().isoformat()
    print(f"PyTorch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}, {gpu}, "
          f"cudnn.allow_tf32={torch.backends.cudnn.allow_tf32}")
    records = []
    with torch.no_grad():
        rows = [("pytorch_eager", model, "reference Model, eager (cuDNN TF32 by default)")]
        if not a.no_compile:
            rows.append(("torch_compile", torch.compile(model), "torch.compile(Model), default mode"))
        for name, fn, note in rows:
            med, lo, hi = time_cuda(fn, x, a.runs)
            print(f"{name:24s} {med:10.1f} {lo:10.1f} {hi:10.1f}  {note}")
            records.append({"name": name, "config": config, "median_us": round(med, 2), "min_us": round(lo, 2),
                            "max_us": round(hi, 2), "runs": a.runs, "note": note, "gpu": gpu, "date": date})
    if a.json:
        with open(a.json, "w") as f:
            json.dump(records, f, indent=1)


if __name__ == "__main__":
    main()
