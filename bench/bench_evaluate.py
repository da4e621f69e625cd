"""How fast is ``ade20k-metrics evaluate`` against PNG decoding alone and against the naive loop?

Generates N ADE20K-sized (512x683) pairs of coherent label maps (blocks and
rectangles, ground truth 0..150, predictions 1..150, 8-bit PNGs) into a
folder, then times, each ``--repeats`` times (medians reported):

  decode-only  pairing the folders and decoding every PNG in the same thread
               pool evaluate uses, counting nothing: the floor for evaluate;
  evaluate     ``ade20k-metrics evaluate PRED GT --quiet`` run in-process (cli.main);
  naive loop   what one writes by hand: PIL open, np.bincount, one image at a time.

    python bench/bench_evaluate.py --pairs 2000 --repeats 3

Not part of the test run.  Prints the CPU model and thread count with the results.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import ade20k_metrics
from ade20k_metrics import cli, default_threads
from ade20k_metrics.core.threads import available_cpus
from ade20k_metrics.io.label_files import LabelFormat, iter_decoded, pair_folders
from ade20k_metrics.io.report import cpu_model

HEIGHT, WIDTH, K = 512, 683, 150


def label_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(prediction 1..150, ground truth 0..150): regions of a coarse grid overlaid with rectangles,
    and a prediction with shifted boundaries and some wrong rectangles, as a model would make."""
    coarse = rng.integers(0, K + 1, size=(-(-HEIGHT // 64), -(-WIDTH // 64)), dtype=np.uint8)
    gt = np.kron(coarse, np.ones((64, 64), np.uint8))[:HEIGHT, :WIDTH].copy()
    for _ in range(40):
        y, x = int(rng.integers(0, HEIGHT)), int(rng.integers(0, WIDTH))
        gt[y:y + int(rng.integers(5, 120)), x:x + int(rng.integers(5, 160))] = rng.integers(0, K + 1)
    pred = np.roll(gt, (int(rng.integers(-6, 7)), int(rng.integers(-6, 7))), axis=(0, 1))
    for _ in range(15):
        y, x = int(rng.integers(0, HEIGHT)), int(rng.integers(0, WIDTH))
        pred[y:y + int(rng.integers(5, 100)), x:x + int(rng.integers(5, 100))] = rng.integers(1, K + 1)
    pred[pred == 0] = 1
    return pred, gt


def generate(folder: Path, pairs: int, seed: int = 0) -> tuple[Path, Path]:
    """Write the pairs (or reuse them if this folder already holds as many)."""
    pred_dir, gt_dir = folder / "pred", folder / "gt"
    pred_dir.mkdir(parents=True, exist_ok=True)
    gt_dir.mkdir(parents=True, exist_ok=True)
    if len(os.listdir(pred_dir)) == pairs and len(os.listdir(gt_dir)) == pairs:
        return pred_dir, gt_dir
    rng = np.random.default_rng(seed)
    for i in range(pairs):
        pred, gt = label_pair(rng)
        name = f"ADE_val_{i + 1:08d}.png"
        Image.fromarray(pred).save(pred_dir / name)
        Image.fromarray(gt).save(gt_dir / name)
    return pred_dir, gt_dir


def decode_only(pred_dir: Path, gt_dir: Path, threads: int) -> int:
    pixels = 0
    for _, pred, gt in iter_decoded(pair_folders(pred_dir, gt_dir).pairs, LabelFormat(), threads):
        pixels += gt.size
    return pixels


def evaluate(pred_dir: Path, gt_dir: Path, threads: int) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(["evaluate", str(pred_dir), str(gt_dir), "--quiet", "--threads", str(threads)])
    if code != 0:
        raise RuntimeError(f"evaluate exited with {code}")


def naive_loop(pred_dir: Path, gt_dir: Path) -> np.ndarray:
    """The usual hand-written loop (fast_hist with np.bincount), one image at a time."""
    hist = np.zeros((K, K), dtype=np.int64)
    for name in sorted(os.listdir(gt_dir)):
        gt = np.array(Image.open(gt_dir / name), dtype=np.int64) - 1  # 0 = other -> -1, not evaluated
        pred = np.array(Image.open(pred_dir / name), dtype=np.int64) - 1
        keep = (gt >= 0) & (gt < K)
        hist += np.bincount(K * gt[keep] + pred[keep], minlength=K * K).reshape(K, K)
    return hist


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process, all threads) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=2000, help="image pairs (default 2000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each variant (default 3)")
    parser.add_argument("--threads", type=int, default=None, help="decoding threads (default: CPUs available)")
    parser.add_argument("--dir", type=Path, default=None,
                        help="keep the generated PNGs here and reuse them (default: a temporary folder)")
    args = parser.parse_args(argv)
    threads = args.threads or default_threads()

    with contextlib.ExitStack() as stack:
        folder = args.dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-evaluate-")))
        start = time.perf_counter()
        pred_dir, gt_dir = generate(folder, args.pairs)
        size = sum(f.stat().st_size for d in (pred_dir, gt_dir) for f in d.iterdir())
        print(f"{args.pairs} pairs of {HEIGHT}x{WIDTH} PNGs ({size / 2**20:.1f} MiB) ready in "
              f"{time.perf_counter() - start:.1f} s in {folder}")
        print(f"ade20k-metrics {ade20k_metrics.__version__}, NumPy {np.__version__}, Pillow {Image.__version__}, "
              f"CPU {cpu_model()}, {available_cpus()} CPUs usable of {os.cpu_count()}, {threads} threads")

        # Warm the page cache and the lazy imports so every variant reads from memory.
        decode_only(pred_dir, gt_dir, threads)
        evaluate(pred_dir, gt_dir, threads)
        # Same counts both ways, or the timing means nothing.
        if not np.array_equal(naive_loop(pred_dir, gt_dir), _evaluated_matrix(pred_dir, gt_dir, threads)):
            raise RuntimeError("naive loop and evaluate disagree")

        walls: dict[str, list[float]] = {}
        cpus: dict[str, list[float]] = {}
        variants = {
            "decode-only": lambda: decode_only(pred_dir, gt_dir, threads),
            "evaluate": lambda: evaluate(pred_dir, gt_dir, threads),
            "naive loop": lambda: naive_loop(pred_dir, gt_dir),
        }
        load_before = os.getloadavg()[0]
        for _ in range(args.repeats):  # interleaved, so background load hits every variant alike
            for name, fn in variants.items():
                wall, cpu = timed(fn)
                walls.setdefault(name, []).append(wall)
                cpus.setdefault(name, []).append(cpu)
        load_after = os.getloadavg()[0]

    medians = {name: statistics.median(times) for name, times in walls.items()}
    print()
    print(f"load average (1 min) {load_before:.2f} before, {load_after:.2f} after the timed runs")
    print()
    print("| variant | median s | ms / pair | pairs / s | CPU ms / pair | runs (s) |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for name, median in medians.items():
        runs = ", ".join(f"{t:.2f}" for t in walls[name])
        cpu = statistics.median(cpus[name])
        print(f"| {name} | {median:.2f} | {1e3 * median / args.pairs:.2f} | {args.pairs / median:.0f} "
              f"| {1e3 * cpu / args.pairs:.2f} | {runs} |")
    print()
    print(f"evaluate / decode-only: {medians['evaluate'] / medians['decode-only']:.2f}  "
          f"(1.00 = bound by decoding)")
    print(f"naive loop / evaluate:  {medians['naive loop'] / medians['evaluate']:.2f}x faster")
    return 0


def _evaluated_matrix(pred_dir: Path, gt_dir: Path, threads: int) -> np.ndarray:
    from ade20k_metrics.io.label_files import evaluate_pairs

    return evaluate_pairs(pair_folders(pred_dir, gt_dir).pairs, LabelFormat(), threads=threads).matrix


if __name__ == "__main__":
    sys.exit(main())
