#!/usr/bin/env python3
"""Writes the golden files tests/golden/*.bin: PyTorch float64 results of

    y   = nn.ConvTranspose2d(C_in, C_out, k, stride, padding, output_padding, dilation=...)(x)
    m   = torch.min(y, dim=1, keepdim=True)[0]
    s   = torch.sum(m, dim=2, keepdim=True)
    out = F.gelu(s, approximate='none' | 'tanh') + bias        # bias of shape (bias_len, 1, 1)

for a set of small configurations. Inputs (x, weight, conv_bias, bias) are made as float32 with a
fixed seed per configuration; the float64 computation runs on exactly those values, upcast. The
file format is described in README.md beside this script.

Usage:  python3 tests/golden/make_golden.py [--out DIR]   (DIR defaults to this script's folder)
Needs only torch (CPU is enough; CUDA is used if available).
"""

import argparse
import math
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

MAGIC = b"CTFGOLD\0"
VERSION = 1
GELU_MODES = {"none": 0, "tanh": 1}

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


class Config:
    def __init__(self, name, seed, N, C_in, C_out, H_in, W_in, k, stride, padding=0,
                 output_padding=0, dilation=1, bias_len=1, gelu="none", init="active",
                 plant_nonfinite=False):
        self.name = name
        self.seed = seed
        self.N, self.C_in, self.C_out, self.H_in, self.W_in = N, C_in, C_out, H_in, W_in
        self.k, self.stride, self.padding = pair(k), pair(stride), pair(padding)
        self.output_padding, self.dilation = pair(output_padding), pair(dilation)
        self.bias_len = bias_len
        self.gelu = gelu
        # "active": weights and conv bias scaled so that s lies in about [-4, 4] (GELU not flat).
        # "default": the benchmark's x ~ U[0, 1) with PyTorch's default parameter init (GELU saturated).
        self.init = init
        self.plant_nonfinite = plant_nonfinite  # True: in x and weight; "weight", "biases", "conv_bias_nan"

    def out_hw(self):
        return tuple((i - 1) * s - 2 * p + d * (k - 1) + op + 1
                     for i, s, p, d, k, op in zip((self.H_in, self.W_in), self.stride, self.padding,
                                                  self.dilation, self.k, self.output_padding))


CONFIGS = [
    # The benchmark's shape in miniature (k3 s2 p1 op1, bias (1,1,1)), GELU active.
    Config("bench_mini", 101, N=2, C_in=8, C_out=16, H_in=8, W_in=8, k=3, stride=2, padding=1,
           output_padding=1),
    # The benchmark's data: x ~ U[0,1), PyTorch default init, C_in 64 / C_out 128, 64 rows:
    # s is far below zero and the GELU saturates, as in the headline configuration.
    Config("bench_default_init_saturated", 102, N=2, C_in=64, C_out=128, H_in=32, W_in=4, k=3,
           stride=2, padding=1, output_padding=1, init="default"),
    # The benchmark's first version in miniature: C_in 3, C_out 16, bias (16,1,1).
    Config("bias_per_channel_16", 103, N=4, C_in=3, C_out=16, H_in=8, W_in=8, k=3, stride=2,
           padding=1, output_padding=1, bias_len=16),
    # Non-square kernel and stride; kernel_w < stride_w leaves columns no tap reaches.
    Config("k3x2_s2x3_p1x0_op1x2", 104, N=2, C_in=5, C_out=12, H_in=7, W_in=6, k=(3, 2),
           stride=(2, 3), padding=(1, 0), output_padding=(1, 2)),
    # Stride 1, kernel 5, padding 2 ("same" size).
    Config("s1_k5_p2", 105, N=2, C_in=6, C_out=10, H_in=9, W_in=9, k=5, stride=1, padding=2),
    # Stride 3, kernel 1, padding 0, output_padding 2: two of every three rows and columns are
    # reached by no tap and equal the conv bias.
    Config("s3_k1_p0_op2", 106, N=2, C_in=4, C_out=8, H_in=6, W_in=6, k=1, stride=3, padding=0,
           output_padding=2),
    # Stride 3, kernel 4, padding 1, output_padding 1, non-square input.
    Config("s3_k4_p1_op1", 107, N=2, C_in=6, C_out=20, H_in=6, W_in=5, k=4, stride=3, padding=1,
           output_padding=1),
    # Dilation (2,3) with stride (1,2): output_padding 1 is allowed by dilation alone in h.
    Config("dil2x3_s1x2_p1x2_op1", 108, N=2, C_in=4, C_out=8, H_in=7, W_in=7, k=3, stride=(1, 2),
           padding=(1, 2), output_padding=(1, 1), dilation=(2, 3)),
    # C_out not a multiple of 32, tanh GELU, bias (5,1,1).
    Config("cout37_tanh", 109, N=2, C_in=8, C_out=37, H_in=8, W_in=8, k=3, stride=2, padding=1,
           output_padding=1, gelu="tanh", bias_len=5),
    # NaN, +inf and -inf planted in x: y, s and out hold NaN, +inf and -inf beside finite values.
    Config("nonfinite_x", 110, N=2, C_in=4, C_out=8, H_in=8, W_in=8, k=3, stride=2, padding=1,
           output_padding=1, plant_nonfinite=True),
    # NaN, +inf and -inf in the bias (form (4,1,1)) and +inf in one channel's conv bias: that
    # channel is +inf everywhere and never the minimum, so s stays finite; out is NaN, +inf and
    # -inf in the planted bias channels only.
    Config("nonfinite_biases", 111, N=2, C_in=5, C_out=9, H_in=6, W_in=7, k=3, stride=2, padding=1,
           output_padding=1, bias_len=4, plant_nonfinite="biases"),
    # NaN and +inf in the weights, on taps that fall outside the input at the last row or
    # column: PyTorch skips those taps, so s there stays finite (image 0) or -inf (image 1).
    Config("nonfinite_weight", 113, N=2, C_in=4, C_out=6, H_in=6, W_in=7, k=3, stride=2, padding=1,
           output_padding=1, plant_nonfinite="weight"),
    # NaN in one channel's conv bias: every pixel's minimum over channels is NaN (torch.min
    # propagates NaN), so s and out are NaN everywhere.
    Config("nan_conv_bias", 112, N=1, C_in=3, C_out=6, H_in=4, W_in=5, k=3, stride=2, padding=1,
           output_padding=1, plant_nonfinite="conv_bias_nan"),
]


def forward64(cfg, x, weight, conv_bias, bias):
    """The module in float64 on the float32 inputs, upcast."""
    conv = nn.ConvTranspose2d(cfg.C_in, cfg.C_out, cfg.k, stride=cfg.stride, padding=cfg.padding,
                              output_padding=cfg.output_padding, dilation=cfg.dilation, bias=True)
    conv = conv.to(device=DEVICE, dtype=torch.float64)
    with torch.no_grad():
        conv.weight.copy_(weight.to(torch.float64))
        conv.bias.copy_(conv_bias.to(torch.float64))
        y = conv(x.to(device=DEVICE, dtype=torch.float64))
        m = torch.min(y, dim=1, keepdim=True)[0]           # [N, 1, H_out, W_out]
        s = torch.sum(m, dim=2, keepdim=True)              # [N, 1, 1, W_out]
        g = F.gelu(s, approximate=cfg.gelu)
        out = g + bias.to(device=DEVICE, dtype=torch.float64).view(cfg.bias_len, 1, 1)
    # out broadcasts to [N, bias_len, 1, W_out]
    return y.cpu(), s.reshape(cfg.N, -1).cpu(), out.reshape(cfg.N, cfg.bias_len, -1).cpu()


def make_inputs(cfg):
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    H_out, W_out = cfg.out_hw()
    if cfg.init == "default":
        conv = nn.ConvTranspose2d(cfg.C_in, cfg.C_out, cfg.k, stride=cfg.stride,
                                  padding=cfg.padding, output_padding=cfg.output_padding,
                                  dilation=cfg.dilation)  # default init under the seed above
        weight = conv.weight.detach().float().contiguous()
        conv_bias = conv.bias.detach().float().contiguous()
        x = torch.rand(cfg.N, cfg.C_in, cfg.H_in, cfg.W_in, generator=gen)
        bias = torch.randn(cfg.bias_len, generator=gen)
        return x, weight, conv_bias, bias

    x = torch.rand(cfg.N, cfg.C_in, cfg.H_in, cfg.W_in, generator=gen) * 2 - 1
    w0 = torch.randn(cfg.C_in, cfg.C_out, *cfg.k, generator=gen)
    delta = torch.randn(cfg.C_out, generator=gen)
    bias = (torch.rand(cfg.bias_len, generator=gen) - 0.5)
    zeros = torch.zeros(cfg.C_out)

    # Scale the weights so that s has a spread of about 1.5 (min is positively homogeneous, so
    # scaling the weights by alpha scales s by alpha when the conv bias is zero) ...
    y0, s0, _ = forward64(cfg, x, w0, zeros, bias)
    alpha = 1.5 / max(s0.std().item(), 1e-30)
    weight = (w0 * alpha).float()
    # ... give each channel a small bias of its own ...
    conv_bias = (delta * 0.1 * alpha * y0.std().item()).float()
    # ... and shift all channels by the same beta, which moves every s by H_out * beta, to center s.
    _, s1, _ = forward64(cfg, x, weight, conv_bias, bias)
    beta = -s1.mean().item() / H_out
    conv_bias = (conv_bias.double() + beta).float()
    return x.float(), weight.contiguous(), conv_bias.contiguous(), bias.float()


def plant_nonfinite(cfg, x, weight):
    """Plants NaN, +inf and -inf in x (batch 0 and 1) and sets the signs of the weights they meet,
    so that s gets NaN (from NaN and from +inf + -inf), +inf and -inf while other entries stay finite.
    Written for k=3, stride=2, padding=1: input pixel (ih, iw) reaches rows 2ih-1..2ih+1 and columns
    2iw-1..2iw+1, the centre column 2iw through kw = 1 only."""
    assert cfg.k == (3, 3) and cfg.stride == (2, 2) and cfg.padding == (1, 1)
    x = x.clone()
    weight = weight.clone()
    # Batch 0: a NaN makes every channel NaN at rows 3..5, cols 5..7 -> s[0, 5..7] = NaN.
    x[0, 1, 2, 3] = float("nan")
    # Batch 0: +inf at channel 3, pixels (6, 0) and (6, 1), which share column 1 (kw = 2 of the
    # first, kw = 0 of the second) at rows 11..13. Those weights are positive for every output
    # channel but the last, where kw = 0 is negative: y there is +inf + -inf = NaN in the last
    # channel only and +inf in all others, so a min that drops NaN (fminf, or a plain `v < m`
    # starting from channel 0) gives +inf where torch.min gives NaN: s[0, 1] = NaN.
    x[0, 3, 6, 0] = float("inf")
    x[0, 3, 6, 1] = float("inf")
    weight[3, :, :, 0] = weight[3, :, :, 0].abs()
    weight[3, :, :, 2] = weight[3, :, :, 2].abs()
    weight[3, -1, :, 0] = -weight[3, -1, :, 0].abs()
    # Batch 1: +inf at channel 0, pixels (5, 1) and (5, 5). All weights of channel 0 with kw = 1 are
    # positive, so columns 2 and 10 are +inf in every output channel at rows 9..11 (min = +inf);
    # output channel 0 has negative weights at kw = 0 and 2, so columns 1, 3, 9, 11 have min = -inf.
    x[1, 0, 5, 1] = float("inf")
    x[1, 0, 5, 5] = float("inf")
    weight[0, :, :, 1] = weight[0, :, :, 1].abs()
    weight[0, 0, :, 0] = -weight[0, 0, :, 0].abs()
    weight[0, 0, :, 2] = -weight[0, 0, :, 2].abs()
    # -inf at channel 2, pixel (1, 1), with positive weights at kw = 1 for output channel 0: column 2
    # rows 1..3 get min = -inf, so s[1, 2] = (-inf) + (+inf) = NaN, while s[1, 10] stays +inf.
    x[1, 2, 1, 1] = float("-inf")
    weight[2, 0, :, 1] = weight[2, 0, :, 1].abs()
    return x, weight


def plant_nonfinite_biases(cfg, conv_bias, bias):
    """NaN/inf in the biases (see the configurations using it)."""
    conv_bias, bias = conv_bias.clone(), bias.clone()
    if cfg.plant_nonfinite == "biases":
        conv_bias[3] = float("inf")
        bias[1], bias[2], bias[3] = float("nan"), float("inf"), float("-inf")
    else:
        assert cfg.plant_nonfinite == "conv_bias_nan"
        conv_bias[2] = float("nan")
    return conv_bias, bias


def plant_nonfinite_weight(cfg, x, weight):
    """Written for k=3, stride=2, padding=1, output_padding=1. Tap (kh, kw) = (0, 2) reaches
    odd rows but the last (2*H_in - 1 would need ih = H_in) and every odd column; (2, 0) every
    odd row and odd columns but the last. +inf on the first for channel 2 -> 4, with x's channel
    2 positive in image 0 (y = +inf, never the minimum) and negative in image 1 (-inf); NaN on
    the second for 1 -> 2 (s NaN at odd columns but the last)."""
    assert cfg.k == (3, 3) and cfg.stride == (2, 2) and cfg.padding == (1, 1)
    x, weight = x.clone(), weight.clone()
    x[0, 2] = x[0, 2].abs() + 0.01
    x[1, 2] = -(x[1, 2].abs() + 0.01)
    weight[2, 4, 0, 2] = float("inf")
    weight[1, 2, 2, 0] = float("nan")
    return x, weight


def f32_bytes(t):
    vals = t.detach().cpu().float().contiguous().reshape(-1).tolist()
    return struct.pack("<q", len(vals)) + struct.pack("<%df" % len(vals), *vals)


def f64_bytes(t):
    vals = t.detach().cpu().double().contiguous().reshape(-1).tolist()
    return struct.pack("<q", len(vals)) + struct.pack("<%dd" % len(vals), *vals)


def encode(cfg, x, weight, conv_bias, bias, y, s, out):
    H_out, W_out = cfg.out_hw()
    header = [cfg.N, cfg.C_in, cfg.H_in, cfg.W_in, cfg.C_out, cfg.k[0], cfg.k[1],
              cfg.stride[0], cfg.stride[1], cfg.padding[0], cfg.padding[1],
              cfg.output_padding[0], cfg.output_padding[1], cfg.dilation[0], cfg.dilation[1],
              cfg.bias_len, GELU_MODES[cfg.gelu], H_out, W_out]
    parts = [MAGIC, struct.pack("<q", VERSION), struct.pack("<%dq" % len(header), *header)]
    for t in (x, weight, conv_bias, bias):
        parts.append(f32_bytes(t))
    for t in (y, s, out):
        parts.append(f64_bytes(t))
    return b"".join(parts)


def summarize(t):
    finite = t[torch.isfinite(t)]
    return ("finite %d/%d in [%.4g, %.4g], NaN %d, +inf %d, -inf %d"
            % (finite.numel(), t.numel(), finite.min().item() if finite.numel() else 0,
               finite.max().item() if finite.numel() else 0, int(torch.isnan(t).sum()),
               int((t == math.inf).sum()), int((t == -math.inf).sum())))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    if DEVICE == "cuda":
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    print("torch %s on %s" % (torch.__version__, DEVICE))
    total = 0
    for cfg in CONFIGS:
        x, weight, conv_bias, bias = make_inputs(cfg)
        if cfg.plant_nonfinite is True:
            x, weight = plant_nonfinite(cfg, x, weight)
        elif cfg.plant_nonfinite == "weight":
            x, weight = plant_nonfinite_weight(cfg, x, weight)
        elif cfg.plant_nonfinite:
            conv_bias, bias = plant_nonfinite_biases(cfg, conv_bias, bias)
        y, s, out = forward64(cfg, x, weight, conv_bias, bias)
        assert y.numel() <= 200_000, cfg.name
        data = encode(cfg, x, weight, conv_bias, bias, y, s, out)
        path = os.path.join(args.out, cfg.name + ".bin")
        with open(path, "wb") as f:
            f.write(data)
        total += len(data)
        H_out, W_out = cfg.out_hw()
        print("%-30s %7d bytes  y %s  s: %s" % (cfg.name + ".bin", len(data),
                                               "x".join(map(str, y.shape)), summarize(s)))
        print("%-30s %7s        y: %s" % ("", "", summarize(y)))
        print("%-30s %7s        out: %s" % ("", "", summarize(out)))
    print("total %d bytes" % total)
    return 0


if __name__ == "__main__":
    sys.exit(main())
