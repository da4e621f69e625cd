"""Per-call overhead on a small map: python bench/bench_overhead.py [--size 64].

Times one call on a size x size ADE20K-like uint8 map, median of 9 rounds of many calls:
am.confusion_matrix, ConfusionMatrix.update, the numpy bincount path and, when installed,
torchmetrics' MulticlassConfusionMatrix.update.  Never part of the test run.
"""
from __future__ import annotations

import argparse
import importlib.util
import time

import numpy as np

import ade20k_metrics as am


def per_call_us(fn, calls: int) -> float:
    for _ in range(200):
        fn()
    rounds = []
    for _ in range(9):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        rounds.append((time.perf_counter() - start) / calls)
    return float(np.median(rounds)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--calls", type=int, default=20000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = args.size
    target = np.repeat(rng.integers(0, 150, (max(1, n // 8), 1)), 8 * n)[: n * n].reshape(n, n).astype(np.uint8)
    pred = target.copy()
    pred[:, : max(1, n // 12)] = 3
    cm = am.ConfusionMatrix(150)
    rows = [
        ("am.confusion_matrix", lambda: am.confusion_matrix(pred, target, 150)),
        ("ConfusionMatrix.update", lambda: cm.update(pred, target)),
        ("numpy bincount", lambda: np.bincount(target.ravel().astype(np.int64) * 150 + pred.ravel(),
                                               minlength=150 * 150)),
    ]
    calls = {"torchmetrics MulticlassConfusionMatrix.update": args.calls // 10}
    if importlib.util.find_spec("torchmetrics") is not None:
        import torch
        from torchmetrics.classification import MulticlassConfusionMatrix

        metric = MulticlassConfusionMatrix(num_classes=150, ignore_index=255, validate_args=False)
        t, p = torch.from_numpy(target).long(), torch.from_numpy(pred).long()
        rows.append(("torchmetrics MulticlassConfusionMatrix.update", lambda: metric.update(p, t)))
    print(f"{n}x{n} uint8 map, 150 classes; us per call (median of 9 rounds)")
    for name, fn in rows:
        print(f"  {name:48s} {per_call_us(fn, calls.get(name, args.calls)):8.2f}")


if __name__ == "__main__":
    main()
