"""Builds ctfuse_torch, the PyTorch binding of the ctfuse library.

The CUDA kernels live in the static library libctfuse.a that CMake builds; this only
compiles the small C++ binding (csrc/ctfuse_torch.cpp) and links the library into it, so
nvcc never runs here and nothing is downloaded:

    cmake --preset release && cmake --build build --target ctfuse     # from the repo root
    python3 -m pip install --no-build-isolation --no-deps ./python
    # or, in python/:  python3 setup.py build_ext --inplace

CTFUSE_LIBRARY=/path/to/libctfuse.a picks the library (default: build/src/libctfuse.a,
then build-bench/src/libctfuse.a); CTFUSE_ROOT the repository (default: the parent of
this folder) whose include/ holds the headers.
"""
import os
from pathlib import Path

from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CUDAExtension

try:
    from setuptools.errors import SetupError
except ImportError:  # old setuptools
    SetupError = RuntimeError

HERE = Path(__file__).resolve().parent
ROOT = Path(os.environ.get("CTFUSE_ROOT", HERE.parent)).resolve()
INCLUDE = ROOT / "include"
PRESET_LIBRARIES = [ROOT / "build" / "src" / "libctfuse.a",         # cmake --preset release
                    ROOT / "build-bench" / "src" / "libctfuse.a"]   # cmake --preset bench


def find_library():
    env = os.environ.get("CTFUSE_LIBRARY")
    if env:
        lib = Path(env).expanduser().resolve()
        if not lib.is_file():
            raise SetupError(f"CTFUSE_LIBRARY={env}: no such file")
        return lib
    for lib in PRESET_LIBRARIES:
        if lib.is_file():
            return lib
    raise SetupError(
        "libctfuse.a not found (looked for " + ", ".join(str(p) for p in PRESET_LIBRARIES) + "). Build it first, "
        f"from {ROOT}:\n    cmake --preset release && cmake --build build --target ctfuse\n"
        "or  cmake --preset bench && cmake --build build-bench --target ctfuse\n"
        "or point CTFUSE_LIBRARY at an existing libctfuse.a.")


class BuildWithCtfuse(BuildExtension):
    # The library is looked up only when something is actually built, so metadata-only
    # steps (pip's egg_info, sdist) work without it.
    def build_extensions(self):
        if not (INCLUDE / "ctfuse" / "ctfuse.h").is_file():
            raise SetupError(f"{INCLUDE}/ctfuse/ctfuse.h not found: set CTFUSE_ROOT to the ctfuse repository")
        lib = str(find_library())
        print(f"ctfuse_torch: linking {lib}", flush=True)
        for ext in self.extensions:
            ext.extra_objects.append(lib)
            ext.depends.append(lib)  # relink when the library is rebuilt
        super().build_extensions()


setup(
    name="ctfuse_torch",
    version="0.1.0",
    description="PyTorch binding of ctfuse: fused ConvTranspose2d -> min -> sum -> GELU -> + bias (forward only)",
    packages=["ctfuse_torch"],
    ext_modules=[
        CUDAExtension(
            name="ctfuse_torch._C",
            sources=["csrc/ctfuse_torch.cpp"],  # host code only: the kernels come from libctfuse.a
            include_dirs=[str(INCLUDE)],
            extra_compile_args={"cxx": ["-O2"]},
        )
    ],
    cmdclass={"build_ext": BuildWithCtfuse},
    python_requires=">=3.9",
    zip_safe=False,
)
