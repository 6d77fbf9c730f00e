"""Tests of the PyTorch binding (GPU only; skipped without torch or a CUDA device).

    python3 -m pytest -v python/tests

Accuracy is checked the way ../../shared/SPEC.md measures it: outputs against the
reference module with the benchmark's tolerances, and the pre-GELU sums s against a
float64 reference on inputs scaled so that GELU is not flat.
"""
import copy
import glob
import os
import sys

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

import torch.nn.functional as F  # noqa: E402

# `python -m pytest` from python/ puts python/ on sys.path; without an in-place build its
# ctfuse_torch/ (no _C) would hide the installed package.
_PKG_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if not glob.glob(os.path.join(_PKG_PARENT, "ctfuse_torch", "_C*")):
    sys.path = [p for p in sys.path if os.path.abspath(p or os.curdir) != _PKG_PARENT]
import ctfuse_torch as ct  # noqa: E402
from ctfuse_torch import ModelNew  # noqa: E402

# The reference module, from the script that times it for the bench.
sys.path.insert(0, os.path.join(os.path.dirname(_PKG_PARENT), "bench"))
from pytorch_baseline import Model  # noqa: E402


# (N, C_in, C_out, H, W): a small shape that is no tile's multiple (C_out <= 64: mma.sync),
# and one that takes the Hopper mainloop on an H100/H200 (C_out > 64, W % 4 == 0).
SHAPES = [(3, 5, 37, 13, 11), (2, 16, 128, 16, 16)]
BIASES = ["scalar", "per_channel"]


def bias_shape(kind, C_out):
    return (1, 1, 1) if kind == "scalar" else (C_out, 1, 1)


def make_pair(C_in, C_out, bshape, k=3, stride=2, padding=1, output_padding=1, seed=0, **kw):
    args = (C_in, C_out, k, stride, padding, output_padding, bshape)
    torch.manual_seed(seed)
    ref = Model(*args).cuda().eval()
    torch.manual_seed(seed)
    new = ModelNew(*args, **kw).cuda().eval()
    new.load_state_dict(ref.state_dict())
    return ref, new


def sums64(x, conv, dilation=1):
    """float64 s [N, W_out] of conv(x), on the GPU."""
    y = F.conv_transpose2d(x.double(), conv.weight.double(), conv.bias.double(), conv.stride, conv.padding,
                           conv.output_padding, 1, dilation)
    return y.amin(1).sum(1)


def scaled_for_gelu(x, model):
    """(x', model') with s scaled into [-3, 3], where GELU is not flat (s is linear in
    x and the conv bias jointly)."""
    a = 3.0 / sums64(x, model.conv_transpose).abs().max().item()
    scaled = copy.deepcopy(model)
    with torch.no_grad():
        scaled.conv_transpose.bias.mul_(a)
    return (x * a).contiguous(), scaled


def rel_err(got, ref):
    return ((got.double() - ref).norm() / ref.norm()).item()


@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("bias", BIASES)
def test_matches_reference_tf32(shape, bias):
    N, C_in, C_out, H, W = shape
    ref, new = make_pair(C_in, C_out, bias_shape(bias, C_out), math="tf32")
    for _ in range(3):
        x = torch.rand(N, C_in, H, W, device="cuda")
        want, got = ref(x), new(x)
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("math,limit", [("tf32", 2e-4), ("fp32", 1e-6)])
def test_sums_vs_float64(shape, math, limit):
    # TF32's 1e-4 on s assumes many rows; these shapes have 26-32, so allow 2e-4.
    N, C_in, C_out, H, W = shape
    _, new = make_pair(C_in, C_out, (C_out, 1, 1), math=math)
    x, new = scaled_for_gelu(torch.rand(N, C_in, H, W, device="cuda"), new)
    s64 = sums64(x, new.conv_transpose)
    out, s = new.forward_with_sums(x)
    assert s.shape == s64.shape
    assert rel_err(s, s64) <= limit
    assert ((s.abs() > 0.1) & (s.abs() < 4)).double().mean() > 0.5  # GELU is active
    out64 = F.gelu(s64)[:, None, None, :] + new.bias.double().reshape(-1, 1, 1)
    torch.testing.assert_close(out.double(), out64, atol=1e-3, rtol=1e-3)


def test_tf32_sums_within_a_priori_bound():
    # |s - s_ref| <= sum over rows of max over channels of 2^-10 * sum |x*w| for any
    # correctly rounding TF32 kernel; a wrong index or a lost row is far above it.
    _, new = make_pair(5, 37, (1, 1, 1), math="tf32")
    x, new = scaled_for_gelu(torch.rand(3, 5, 13, 11, device="cuda"), new)
    conv = new.conv_transpose
    a = F.conv_transpose2d(x.double().abs(), conv.weight.double().abs(), None, conv.stride, conv.padding,
                           conv.output_padding)
    bound = (a.amax(1) * 2.0 ** -10).sum(1)
    _, s = new.forward_with_sums(x)
    assert bool(((s.double() - sums64(x, conv)).abs() <= bound).all())


def test_kernel_and_stride_pairs():
    ref, new = make_pair(6, 40, (40, 1, 1), k=(3, 5), stride=(2, 1), padding=(1, 2), output_padding=(1, 0))
    x = torch.rand(2, 6, 9, 10, device="cuda")
    want, got = ref(x), new(x)
    assert got.shape == want.shape == (2, 40, 1, 10)
    torch.testing.assert_close(got, want, atol=1e-2, rtol=1e-2)
    x, new = scaled_for_gelu(x, new)
    new.math = "fp32"
    _, s = new.forward_with_sums(x)
    assert rel_err(s, sums64(x, new.conv_transpose)) <= 1e-6


def test_functional_dilation():
    torch.manual_seed(1)
    x = torch.rand(2, 4, 7, 9, device="cuda")
    w = torch.randn(4, 20, 3, 2, device="cuda") * 0.2
    cb = torch.randn(20, device="cuda") * 0.1
    bias = torch.randn(1, 1, 1, device="cuda")
    out, s = ct.forward(x, w, cb, bias, stride=(2, 3), padding=(1, 0), output_padding=(0, 2), dilation=(2, 3),
                        math="fp32", return_s=True)
    y = F.conv_transpose2d(x.double(), w.double(), cb.double(), (2, 3), (1, 0), (0, 2), 1, (2, 3))
    s64 = y.amin(1).sum(1)
    assert s.shape == s64.shape and out.shape == (2, 1, 1, s64.shape[1])
    assert rel_err(s, s64) <= 1e-6
    torch.testing.assert_close(out.double(), F.gelu(s64)[:, None, None, :] + bias.double(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("bias", BIASES)
def test_parameters_match_reference(bias):
    # Same names, shapes and (same seed) values without load_state_dict: the init order is the reference's.
    bshape = bias_shape(bias, 16)
    torch.manual_seed(7)
    ref = Model(3, 16, 3, 2, 1, 1, bshape)
    torch.manual_seed(7)
    new = ModelNew(3, 16, 3, 2, 1, 1, bshape)
    sd_ref, sd_new = ref.state_dict(), new.state_dict()
    assert list(sd_ref) == list(sd_new)
    assert sorted(sd_new) == ["bias", "conv_transpose.bias", "conv_transpose.weight"]
    for name in sd_ref:
        assert torch.equal(sd_ref[name], sd_new[name]), name
    new.load_state_dict(Model(3, 16, 3, 2, 1, 1, bshape).state_dict())  # strict: same keys and shapes


def test_non_contiguous_inputs():
    ref, new = make_pair(8, 40, (1, 1, 1))
    x = torch.rand(2, 8, 12, 10, device="cuda")
    want = new(x)
    transposed = x.transpose(2, 3).contiguous().transpose(2, 3)
    sliced = torch.rand(2, 8, 14, 13, device="cuda")
    sliced[:, :, 1:13, 2:12] = x
    channels_last = x.contiguous(memory_format=torch.channels_last)
    for view in (transposed, sliced[:, :, 1:13, 2:12], channels_last):
        assert not view.is_contiguous()
        assert torch.equal(new(view), want)
    # A contiguous view at an odd offset (not 16-byte aligned): same math, maybe another load path.
    flat = torch.rand(x.numel() + 1, device="cuda")
    flat[1:] = x.flatten()
    torch.testing.assert_close(new(flat[1:].view_as(x)), want, atol=1e-6, rtol=1e-6)
    # Non-contiguous parameters too.
    w = new.conv_transpose.weight
    torch.testing.assert_close(ct.forward(x, w.transpose(2, 3).contiguous().transpose(2, 3), new.conv_transpose.bias,
                                          new.bias, 2, 1, 1), want, atol=0, rtol=0)


def test_empty_batch():
    _, new = make_pair(4, 20, (3, 1, 1))
    out = new(torch.rand(0, 4, 8, 8, device="cuda"))
    assert out.shape == (0, 3, 1, 16)


# ---- errors: clear Python exceptions naming the argument, never a crash -------------------

def test_error_cpu_input():
    _, new = make_pair(4, 20, (1, 1, 1))
    with pytest.raises(ValueError, match=r"x must be a CUDA tensor"):
        new(torch.rand(2, 4, 8, 8))


def test_error_parameter_on_cpu():
    x = torch.rand(2, 4, 8, 8, device="cuda")
    with pytest.raises(ValueError, match=r"weight must be a CUDA tensor"):
        ct.forward(x, torch.rand(4, 20, 3, 3), None, torch.zeros(1, 1, 1, device="cuda"), 2, 1, 1)
    with pytest.raises(ValueError, match=r"bias must be a CUDA tensor"):
        ct.forward(x, torch.rand(4, 20, 3, 3, device="cuda"), None, torch.zeros(1, 1, 1), 2, 1, 1)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_error_dtype(dtype):
    _, new = make_pair(4, 20, (1, 1, 1))
    with pytest.raises(TypeError, match=r"x must be float32"):
        new(torch.rand(2, 4, 8, 8, device="cuda", dtype=dtype))
    with pytest.raises(TypeError, match=r"weight must be float32"):
        ct.forward(torch.rand(2, 4, 8, 8, device="cuda"), new.conv_transpose.weight.to(dtype), None, new.bias,
                   2, 1, 1)


def test_error_rank():
    _, new = make_pair(4, 20, (1, 1, 1))
    with pytest.raises(ValueError, match=r"x must be 4-D"):
        new(torch.rand(4, 8, 8, device="cuda"))
    with pytest.raises(ValueError, match=r"x must be 4-D"):
        new(torch.rand(1, 2, 4, 8, 8, device="cuda"))


def test_error_channel_count():
    _, new = make_pair(4, 20, (1, 1, 1))
    with pytest.raises(ValueError, match=r"channel count mismatch: x has 5 channels .* C_in = .* 4"):
        new(torch.rand(2, 5, 8, 8, device="cuda"))


def test_error_bias_shapes():
    x = torch.rand(2, 4, 8, 8, device="cuda")
    w = torch.rand(4, 20, 3, 3, device="cuda")
    for bad in (torch.zeros(5, device="cuda"), torch.zeros(2, 3, 1, device="cuda"), torch.zeros(0, 1, 1, device="cuda")):
        with pytest.raises(ValueError, match=r"bias must have shape \(1, 1, 1\) or \(C_b, 1, 1\)"):
            ct.forward(x, w, None, bad, 2, 1, 1)
    with pytest.raises(ValueError, match=r"conv_bias must have shape \(20,\)"):
        ct.forward(x, w, torch.zeros(19, device="cuda"), torch.zeros(1, 1, 1, device="cuda"), 2, 1, 1)


def test_error_from_the_library():
    # Geometry PyTorch rejects (output_padding >= max(stride, dilation)) comes back from
    # the library with the field named.
    x = torch.rand(2, 4, 8, 8, device="cuda")
    w = torch.rand(4, 20, 3, 3, device="cuda")
    with pytest.raises(RuntimeError, match=r"invalid argument: .*output_pad_h"):
        ct.forward(x, w, None, torch.zeros(1, 1, 1, device="cuda"), 2, 1, (2, 1))


def test_error_bad_modes():
    _, new = make_pair(4, 20, (1, 1, 1))
    x = torch.rand(2, 4, 8, 8, device="cuda")
    with pytest.raises(ValueError, match=r"math must be one of"):
        ct.forward(x, new.conv_transpose.weight, None, new.bias, 2, 1, 1, math="fp16")
    with pytest.raises(ValueError, match=r"gelu must be one of"):
        ModelNew(4, 20, 3, 2, 1, 1, (1, 1, 1), gelu="exact")


def test_extension_checks_too():
    # The op checks every tensor itself (the eager Python wrapper does not).
    x = torch.rand(2, 4, 8, 8, device="cuda")
    w = torch.rand(4, 20, 3, 3, device="cuda")
    b = torch.zeros(1, 1, 1, device="cuda")
    geo = ([2, 2], [1, 1], [1, 1], [1, 1], 0, 0, False)
    with pytest.raises(TypeError, match=r"x must be float32"):
        torch.ops.ctfuse.forward.default(x.double(), w, None, b, *geo)
    with pytest.raises(ValueError, match=r"channel count mismatch"):
        torch.ops.ctfuse.forward.default(x[:, :3], w, None, b, *geo)
    with pytest.raises(ValueError, match=r"bias must have shape"):
        torch.ops.ctfuse.forward.default(x, w, None, torch.zeros(3, device="cuda"), *geo)
    with pytest.raises(ValueError, match=r"stride must have 2 elements"):
        torch.ops.ctfuse.forward.default(x, w, None, b, [2], [1, 1], [1, 1], [1, 1], 0, 0, False)


def test_backward_is_refused_clearly():
    _, new = make_pair(4, 20, (1, 1, 1))
    with torch.enable_grad():
        out = new(torch.rand(2, 4, 8, 8, device="cuda"))  # forward works in grad mode
        with pytest.raises(RuntimeError, match=r"backward is not implemented"):
            out.sum().backward()


# ---- streams, graphs, compile, determinism -------------------------------------------------

def test_runs_on_the_current_stream():
    _, new = make_pair(16, 128, (1, 1, 1))
    x = torch.rand(4, 16, 32, 32, device="cuda")
    want_out, want_s = new.forward_with_sums(x)
    staged = torch.full_like(x, 7.0)
    torch.cuda.synchronize()
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        # x reaches `staged` only after a long spin on the side stream: an op queued on any
        # other stream would read the 7s (pool streams do not sync with the default one).
        torch.cuda._sleep(50_000_000)
        staged.copy_(x)
        got_out, got_s = new.forward_with_sums(staged)
    torch.cuda.current_stream().wait_stream(side)
    assert torch.equal(got_out, want_out)
    assert torch.equal(got_s, want_s)


def test_cuda_graph_replay_is_bitwise_eager():
    _, new = make_pair(16, 128, (16, 1, 1))
    static_x = torch.rand(4, 16, 32, 32, device="cuda")
    want = new(static_x)
    side = torch.cuda.Stream()  # warm up off the default stream, as torch.cuda.graph asks
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            new(static_x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = new(static_x)
    for _ in range(10):
        graph.replay()
        torch.cuda.synchronize()
        assert torch.equal(static_out, want)
    x2 = torch.rand_like(static_x)
    static_x.copy_(x2)
    graph.replay()
    assert torch.equal(static_out, new(x2))


def _opcheck_samples():
    torch.manual_seed(3)
    x = torch.rand(2, 5, 9, 7, device="cuda")
    w = torch.randn(5, 24, 3, 3, device="cuda")
    cb = torch.randn(24, device="cuda")
    b1, b4 = torch.randn(1, 1, 1, device="cuda"), torch.randn(4, 1, 1, device="cuda")
    geo = ([2, 2], [1, 1], [1, 1], [1, 1])
    return [
        (x, w, cb, b1, *geo, 0, 0, False),
        (x, w, cb, b4, *geo, 1, 0, True),
        (x, w, None, b1, [1, 2], [0, 1], [0, 1], [1, 1], 0, 1, True),
    ]


@pytest.mark.parametrize("i", range(3))
def test_opcheck(i):
    # Forward-only op: schema, fake (shape) implementation and AOT dispatch; no autograd checks.
    args = _opcheck_samples()[i]
    torch.library.opcheck(torch.ops.ctfuse.forward.default, args,
                          test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_static",
                                      "test_aot_dispatch_dynamic"))


def test_fake_shapes():
    from torch._subclasses.fake_tensor import FakeTensorMode
    with FakeTensorMode():
        x = torch.empty(3, 5, 13, 11, device="cuda")
        w = torch.empty(5, 37, 3, 3, device="cuda")
        out, s = torch.ops.ctfuse.forward(x, w, None, torch.empty(7, 1, 1, device="cuda"), [2, 2], [1, 1], [1, 1],
                                          [1, 1], 0, 0, True)
        assert out.shape == (3, 7, 1, 22) and s.shape == (3, 22)
        with pytest.raises(ValueError, match=r"channel count mismatch"):
            torch.ops.ctfuse.forward(x, torch.empty(4, 37, 3, 3, device="cuda"), None,
                                     torch.empty(1, 1, 1, device="cuda"), [2, 2], [1, 1], [1, 1], [1, 1], 0, 0, False)


@pytest.mark.parametrize("mode", [None, "reduce-overhead"])
def test_compile_fullgraph_matches_eager(mode):
    torch._dynamo.reset()
    _, new = make_pair(16, 128, (1, 1, 1))
    compiled = torch.compile(new, fullgraph=True, mode=mode)
    for _ in range(3):  # reduce-overhead records its CUDA graph on a later call
        x = torch.rand(4, 16, 32, 32, device="cuda")
        got = compiled(x).clone()
        assert torch.equal(got, new(x))
    sums = torch.compile(new.forward_with_sums, fullgraph=True)
    assert torch.equal(sums(x)[1], new.forward_with_sums(x)[1])


def test_deterministic():
    _, new = make_pair(16, 128, (1, 1, 1))
    x = torch.rand(4, 16, 32, 32, device="cuda")
    out1, s1 = new.forward_with_sums(x)
    out2, s2 = new.forward_with_sums(x)
    assert torch.equal(out1, out2) and torch.equal(s1, s2)


def test_math_follows_cudnn_flag():
    assert ct.default_math() == "tf32"  # PyTorch's default for convolutions
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        assert ct.default_math() == "fp32"
    _, new = make_pair(5, 37, (1, 1, 1))  # math=None: follows the flag at call time
    x, new = scaled_for_gelu(torch.rand(3, 5, 13, 11, device="cuda"), new)
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        _, s = new.forward_with_sums(x)
    assert rel_err(s, sums64(x, new.conv_transpose)) <= 1e-6


def test_helpers():
    x = torch.rand(16, 64, 128, 128, device="cuda")
    w = torch.rand(64, 128, 3, 3, device="cuda")
    assert ct.mainloop_in_use(x, w, 2, 1, 1) in ("wgmma+TMA", "wgmma", "mma.sync")
    assert 0 < ct.workspace_size(x, w, 2, 1, 1) < 64 << 20


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_second_device():
    _, new = make_pair(4, 20, (1, 1, 1))
    x = torch.rand(2, 4, 8, 8, device="cuda")
    want = new(x)
    new1 = copy.deepcopy(new).to("cuda:1")
    got = new1(x.to("cuda:1"))
    assert got.device == torch.device("cuda:1")
    assert torch.equal(got.cpu(), want.cpu())
