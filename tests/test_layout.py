"""The package's layers: imports go one way, nothing inside imports the package face, no cycles.

Read from the installed package's source with ``ast`` (function-level imports
included), so a new upward import fails here, not in a reviewer's head.
docs/architecture.md draws the same order.
"""
import ast
import subprocess
import sys
from pathlib import Path

import ade20k_metrics

ROOT = Path(ade20k_metrics.__file__).parent
PACKAGE = "ade20k_metrics"

# Bottom to top; a module may import its own layer and the ones below.
LAYERS = ["_version", "datasets", "metrics", "core", "analysis", "io", "integrations", "cli"]
# The face: what users import. Nothing in LAYERS may import these.
FACE = {"__init__", "__main__", "reference", "compat", "torchmetrics", "dask", "mmseg", "detectron2"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = [p for p in rel.parts]
        out[".".join([PACKAGE, *parts])] = path
    return out


def _imports(name: str, path: Path) -> set[str]:
    """Modules of the package that ``name`` imports (a name imported from a package counts as the package)."""
    here = name.split(".")[:-1]  # the package the module sits in (for __init__: the package itself)
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:  # `from pkg import submodule` imports the submodule, not the face
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in MODULES or sub + ".__init__" in MODULES else target)
    return found


MODULES = _modules()


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _resolve(module: str) -> str:
    return module if module in MODULES else module + ".__init__"


def test_every_module_is_in_a_layer_or_the_face():
    stray = sorted(m for m in MODULES if _layer(m) not in LAYERS and _layer(m) not in FACE)
    assert stray == [], f"modules outside the layers of docs/architecture.md: {stray}"


def test_imports_only_go_down_and_never_to_the_face():
    wrong = []
    for name, path in MODULES.items():
        layer = _layer(name)
        if layer in FACE:
            continue
        for target in _imports(name, path):
            other = _layer(_resolve(target) if target != PACKAGE else PACKAGE)
            if target == PACKAGE or other in FACE:
                wrong.append(f"{name} imports the package face ({target})")
            elif LAYERS.index(other) > LAYERS.index(layer):
                wrong.append(f"{name} ({layer}) imports {target} ({other}), a layer above")
    assert wrong == []


def test_no_import_cycles():
    graph = {name: {_resolve(t) for t in _imports(name, path) if _resolve(t) in MODULES}
             for name, path in MODULES.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [])
    assert cycles == []


def test_the_readme_names_work_after_a_plain_import():
    code = ("import numpy as np, ade20k_metrics as am\n"
            "s = am.ade20k.summary(am.compute_metrics(np.eye(150, dtype=np.int64)))\n"
            "assert s['miou'] == 1.0, s\n"
            "for name in ('ConfusionMatrix', 'confusion_matrix', 'compute_metrics', 'explain', 'Metrics',\n"
            "             'ImageStats', 'CONVENTIONS', 'default_threads', 'openmp_enabled', 'simd'):\n"
            "    assert hasattr(am, name), name\n"
            "assert am.reference.confusion_matrix is not None and am.compat.hf_mean_iou is not None\n"
            "assert am.stats.ImageStats is am.ImageStats\n"
            "import ade20k_metrics.reference, ade20k_metrics.compat\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
