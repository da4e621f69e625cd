"""The C++ kernel's own self-check (tests/native/kernel_check.cpp), without Python in the loop.

Built with the host's C++ compiler and run: every SIMD path this CPU has against a
plain loop over the pixels.  Where an Arm cross compiler and qemu are installed
(Debian: g++-aarch64-linux-gnu qemu-user-static; .ci/run installs them), also
built for 64-bit Arm and run under emulation, which checks the NEON path, and the
bindings are compiled for Arm (syntax only).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "tests" / "native" / "kernel_check.cpp"
FLAGS = ["-O2", "-std=c++17", "-Wall", "-Wextra", f"-I{ROOT / 'csrc'}"]
# .ci/sanitize sets this: the native self-check is then built with ASan + UBSan too.
SANITIZE = ["-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]
# Compilers and the self-check run without the sanitizer runtime .ci/sanitize preloads into Python.
ENV = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}


def _compiler(*names: str) -> str | None:
    for name in names:
        if name and shutil.which(name):
            return name
    return None


def _build(cxx: str, out: Path, extra: list[str]) -> None:
    # With OpenMP where the compiler has it (the threaded path), else without.
    for openmp in (["-fopenmp"], []):
        result = subprocess.run([cxx, *FLAGS, *openmp, *extra, "-o", str(out), str(SOURCE)],
                                capture_output=True, text=True, env=ENV)
        if result.returncode == 0:
            return
    pytest.fail(f"{cxx} could not build {SOURCE.name}:\n{result.stderr[-3000:]}")


def _check_output(result: subprocess.CompletedProcess, simd: str | None = None) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " 0 failures" in result.stdout
    if simd is not None:
        assert result.stdout.strip().endswith(f"best SIMD path: {simd}"), result.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="the self-check is built with a GCC-style compiler")
def test_kernel_self_check_native(tmp_path):
    cxx = _compiler(os.environ.get("CXX", ""), "g++", "clang++", "c++")
    if cxx is None:
        pytest.skip("no C++ compiler on PATH")
    exe = tmp_path / "kernel_check"
    _build(cxx, exe, SANITIZE if os.environ.get("AM_NATIVE_SANITIZE") else [])
    result = subprocess.run([str(exe)], capture_output=True, text=True, timeout=600, env=ENV)
    import ade20k_metrics as am

    _check_output(result, simd=am.simd())  # the path the extension module picks on this CPU too


def test_kernel_self_check_arm_neon_under_qemu(tmp_path):
    cxx = _compiler("aarch64-linux-gnu-g++")
    qemu = _compiler("qemu-aarch64-static", "qemu-aarch64")
    if cxx is None or qemu is None:
        pytest.skip("no Arm cross compiler or qemu (apt-get install g++-aarch64-linux-gnu qemu-user-static)")
    exe = tmp_path / "kernel_check_arm"
    _build(cxx, exe, ["-static"])
    result = subprocess.run([qemu, str(exe)], capture_output=True, text=True, timeout=900, env=ENV)
    _check_output(result, simd="neon")


def test_bindings_compile_for_arm():
    cxx = _compiler("aarch64-linux-gnu-g++")
    if cxx is None:
        pytest.skip("no Arm cross compiler (apt-get install g++-aarch64-linux-gnu)")
    pybind11 = pytest.importorskip("pybind11")
    includes = [f"-I{ROOT / 'csrc'}", f"-I{sysconfig.get_paths()['include']}", f"-I{pybind11.get_include()}"]
    for source in sorted((ROOT / "src").glob("*.cpp")):
        result = subprocess.run([cxx, "-std=c++17", "-fopenmp", "-fsyntax-only", "-Wall", "-Wextra", "-Wconversion",
                                 *includes, str(source)], capture_output=True, text=True, env=ENV)
        assert result.returncode == 0, f"{source.name} for aarch64:\n{result.stderr[-3000:]}"
        assert "warning" not in result.stderr, result.stderr[-3000:]
