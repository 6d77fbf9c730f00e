"""PyTorch binding of ctfuse: the forward pass of

    y   = ConvTranspose2d(x)                     # [N, C_out, H_out, W_out], never stored
    s   = sum over rows of (min over channels of y)        # [N, W_out]
    out = gelu(s) + bias                         # [N, C_b, 1, W_out]

as one CUDA op, ``torch.ops.ctfuse.forward``, registered through torch.library so that
torch.compile and CUDA graphs see a single opaque op (its fake implementation gives the
shapes). ``ModelNew`` is a drop-in for the reference module (same parameter names, shapes
and initialisation), ``forward`` the functional form.

Forward only: the op has no backward. It runs in grad mode (so ``model(x)`` works without
``torch.no_grad()``), but calling ``.backward()`` through it raises a RuntimeError that
says so. fp32 CUDA tensors only, groups = 1, zero padding.
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

try:
    from . import _C  # noqa: F401  (loading it registers torch.ops.ctfuse.*)
except ImportError as e:  # keep the reason, add the fix
    raise ImportError(
        f"ctfuse_torch._C could not be imported ({e}). Build the extension first: build "
        "libctfuse.a with CMake, then `python3 -m pip install --no-build-isolation --no-deps ./python` "
        "(see python/README.md); `import torch` must work before it."
    ) from e

__all__ = ["forward", "ModelNew", "default_math", "mainloop_in_use", "workspace_size"]

_MATH = {"tf32": 0, "fp32": 1}   # ctfuse::MathMode
_GELU = {"erf": 0, "tanh": 1}    # ctfuse::GeluMode

IntPair = Union[int, Sequence[int]]


def _pair(v: IntPair, name: str) -> List[int]:
    if isinstance(v, int):
        return [v, v]
    v = list(v)
    if len(v) != 2 or not all(isinstance(i, int) for i in v):
        raise ValueError(f"ctfuse: {name} must be an int or a pair of ints, got {v!r}")
    return v


def _check_inputs(x, weight, conv_bias, bias, allow_meta=False):
    """The argument checks, on metadata only, so the fake implementation can run them too
    (torch.compile then reports the same clear errors as eager)."""
    named = [("x", x), ("weight", weight), ("bias", bias)]
    if conv_bias is not None:
        named.append(("conv_bias", conv_bias))
    for name, t in named:
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"ctfuse: {name} must be a torch.Tensor, got {type(t).__name__}")
        if t.device.type != "cuda" and not (allow_meta and t.device.type == "meta"):
            raise ValueError(f"ctfuse: {name} must be a CUDA tensor, got device {t.device}")
        if t.dtype != torch.float32:
            raise TypeError(f"ctfuse: {name} must be float32, got {t.dtype}")
        if t.device != x.device:
            raise ValueError(f"ctfuse: {name} is on {t.device} but x is on {x.device}; "
                             "all tensors must be on one device")
    if x.dim() != 4:
        raise ValueError(f"ctfuse: x must be 4-D [N, C_in, H_in, W_in], got shape {tuple(x.shape)}")
    if weight.dim() != 4:
        raise ValueError(f"ctfuse: weight must be 4-D [C_in, C_out, kH, kW], got shape {tuple(weight.shape)}")
    if weight.shape[0] != x.shape[1]:
        raise ValueError(f"ctfuse: channel count mismatch: x has {x.shape[1]} channels (x.shape[1]) but "
                         f"the layer expects C_in = weight.shape[0] = {weight.shape[0]}")
    if conv_bias is not None and (conv_bias.dim() != 1 or conv_bias.shape[0] != weight.shape[1]):
        raise ValueError(f"ctfuse: conv_bias must have shape ({weight.shape[1]},) = (C_out,), "
                         f"got {tuple(conv_bias.shape)}")
    # The reference adds bias to [N, 1, 1, W_out]: (1,1,1) and (C_b,1,1) broadcast to
    # [N, 1 or C_b, 1, W_out]; other shapes would broadcast against W and mean another op.
    per_channel = bias.dim() == 3 and bias.shape[0] >= 1 and bias.shape[1] == 1 and bias.shape[2] == 1
    if not (per_channel or (bias.numel() == 1 and bias.dim() <= 4)):
        raise ValueError(f"ctfuse: bias must have shape (1, 1, 1) or (C_b, 1, 1), got {tuple(bias.shape)}")


def _output_size(size_in, k, stride, pad, out_pad, dil, dim):
    # PyTorch's ConvTranspose2d formula.
    size = (size_in - 1) * stride - 2 * pad + dil * (k - 1) + out_pad + 1
    if size <= 0:
        raise ValueError(f"ctfuse: the output {dim} = ({dim}_in-1)*stride - 2*padding + dilation*(k-1) + "
                         f"output_padding + 1 = {size} is not positive")
    return size


# torch.ops.ctfuse.forward is defined in C++ (csrc/ctfuse_torch.cpp, with its CUDA kernel
# and a backward that refuses); its fake implementation, for torch.compile's shape
# inference, is here.
_forward_op = torch.ops.ctfuse.forward.default


@torch.library.register_fake("ctfuse::forward")
def _(x, weight, conv_bias, bias, stride, padding, output_padding, dilation, math, gelu, want_s):
    _check_inputs(x, weight, conv_bias, bias, allow_meta=True)
    _output_size(x.shape[2], weight.shape[2], stride[0], padding[0], output_padding[0], dilation[0], "H")
    W_out = _output_size(x.shape[3], weight.shape[3], stride[1], padding[1], output_padding[1], dilation[1], "W")
    N = x.shape[0]
    out = x.new_empty((N, bias.numel(), 1, W_out))
    s = x.new_empty((N, W_out)) if want_s else x.new_empty((0,))
    return out, s


@torch.compiler.assume_constant_result  # torch.compile reads the flag at trace time, no graph break
def default_math() -> str:
    """The math mode PyTorch's cuDNN convolution would use now: "tf32" (PyTorch's default
    for convolutions) or "fp32" (TF32 switched off)."""
    cudnn = torch.backends.cudnn
    try:
        # The per-op precision API: "none" inherits from the level above.
        for precision in (cudnn.conv.fp32_precision, cudnn.fp32_precision, torch.backends.fp32_precision):
            if precision == "tf32":
                return "tf32"
            if precision == "ieee":
                return "fp32"
        return "fp32"
    except AttributeError:  # an older PyTorch: the legacy flag only
        return "tf32" if cudnn.allow_tf32 else "fp32"


def _mode(value, table, name):
    if value not in table:
        raise ValueError(f"ctfuse: {name} must be one of {sorted(table)}, got {value!r}")
    return table[value]


def forward(x: torch.Tensor, weight: torch.Tensor, conv_bias: Optional[torch.Tensor], bias: torch.Tensor,
            stride: IntPair, padding: IntPair = 0, output_padding: IntPair = 0, dilation: IntPair = 1,
            math: Optional[str] = None, gelu: str = "erf",
            return_s: bool = False) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    """gelu(sum_h min_c conv_transpose2d(x, weight, conv_bias, ...)) + bias, shape [N, C_b, 1, W_out].

    weight is [C_in, C_out, kH, kW] (PyTorch's ConvTranspose2d layout), conv_bias [C_out] or
    None, bias (1,1,1) or (C_b,1,1). math: "tf32" or "fp32" (None: what cuDNN would use, see
    default_math); gelu: "erf" (PyTorch's default) or "tanh". With return_s, also returns the
    pre-GELU sums s [N, W_out]. Non-contiguous inputs are copied to contiguous ones.
    """
    # The op checks every tensor itself (same messages as the fake implementation);
    # checking here too would add host time to every call.
    m = _mode(default_math() if math is None else math, _MATH, "math")
    g = _mode(gelu, _GELU, "gelu")
    out, s = _forward_op(x, weight, conv_bias, bias, _pair(stride, "stride"), _pair(padding, "padding"),
                         _pair(output_padding, "output_padding"), _pair(dilation, "dilation"), m, g, return_s)
    return (out, s) if return_s else out


class ModelNew(nn.Module):
    """Drop-in for the reference module: ConvTranspose2d -> min over channels -> sum over
    rows -> GELU -> + bias, computed by ctfuse in one pass (forward only).

    Parameters are those of the reference (conv_transpose.weight, conv_transpose.bias, bias),
    created in the same order, so the same seed gives the same values and
    load_state_dict(reference.state_dict()) works for bias (1,1,1) or (C_b,1,1).
    math=None follows PyTorch's cuDNN TF32 setting at call time; "tf32"/"fp32" fix it.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, output_padding, bias_shape,
                 *, math: Optional[str] = None, gelu: str = "erf"):
        super().__init__()
        # Only a parameter holder: it gives the reference's names, shapes and default init.
        self.conv_transpose = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride, padding,
                                                 output_padding)
        self.bias = nn.Parameter(torch.randn(bias_shape))
        if math is not None:
            _mode(math, _MATH, "math")
        _mode(gelu, _GELU, "gelu")
        self.math = math
        self.gelu = gelu

    def _run(self, x, return_s):
        conv = self.conv_transpose
        if conv.groups != 1 or conv.padding_mode != "zeros":
            raise ValueError(f"ctfuse: only groups=1 and padding_mode='zeros' are supported, got "
                             f"groups={conv.groups}, padding_mode={conv.padding_mode!r}")
        return forward(x, conv.weight, conv.bias, self.bias, conv.stride, conv.padding, conv.output_padding,
                       conv.dilation, math=self.math, gelu=self.gelu, return_s=return_s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, False)

    def forward_with_sums(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(out, s): the output and the pre-GELU sums s [N, W_out], for checking accuracy
        where GELU is not flat."""
        return self._run(x, True)

    def extra_repr(self) -> str:
        return f"math={self.math or 'follow cudnn'}, gelu={self.gelu}"


def workspace_size(x, weight, stride, padding=0, output_padding=0, dilation=1, bias_len=1, math="tf32",
                   gelu="erf") -> int:
    """Bytes of device workspace one forward call allocates for these arguments."""
    return torch.ops.ctfuse.workspace_size(x, weight, _pair(stride, "stride"), _pair(padding, "padding"),
                             _pair(output_padding, "output_padding"), _pair(dilation, "dilation"), bias_len,
                             _mode(math, _MATH, "math"), _mode(gelu, _GELU, "gelu"))


def mainloop_in_use(x, weight, stride, padding=0, output_padding=0, dilation=1, math="tf32") -> str:
    """The tensor-core mainloop forward runs for these arguments on x's device:
    "wgmma+TMA", "wgmma" or "mma.sync" (for logs and benchmarks)."""
    return torch.ops.ctfuse.mainloop_in_use(x, weight, _pair(stride, "stride"), _pair(padding, "padding"),
                              _pair(output_padding, "output_padding"), _pair(dilation, "dilation"),
                              _mode(math, _MATH, "math"))
