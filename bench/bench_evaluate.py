"""How fast is ``ade20k-metrics evaluate`` against PNG decoding alone and against the naive loop?

Generates N ADE20K-sized (512x683) pairs of coherent label maps (blocks and
rectangles, ground truth 0..150, predictions 1..150, 8-bit PNGs) into a
folder, then times, each ``--repeats`` times (medians reported):

  decode-only  pairing the folders and decoding every PNG in the same thread
               pool evaluate uses, counting nothing: the floor for evaluate;
  evaluate     ``ade20k-metrics evaluate PRED GT --quiet`` run in-process (cli.main);
  evaluate --dataset ade20k   the same through the dataset path (io/formats.py's decoders);
  naive loop   what one writes by hand: PIL open, np.bincount, one image at a time.

    python bench/bench_evaluate.py --pairs 2000 --repeats 3

``--decoders N`` instead times decoding alone, file format by file format
(ADE20K-size 8-bit PNG, Cityscapes-size 2048x1024 8-bit PNG, 16-bit PNG and
uint16 TIFF, palette PNG): today's reader (io/label_files.read_label_map,
Pillow) against io/formats.read_label_file with each installed decoder, on
one thread and in a pool of ``--threads`` threads, after checking that every
decoder returns the same array.

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


def evaluate(pred_dir: Path, gt_dir: Path, threads: int, *options: str) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(["evaluate", str(pred_dir), str(gt_dir), "--quiet", "--threads", str(threads), *options])
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
    parser.add_argument("--decoders", type=int, default=None, metavar="N",
                        help="time the decoders alone on N files of each format instead (see above)")
    args = parser.parse_args(argv)
    threads = args.threads or default_threads()
    if args.decoders:
        with contextlib.ExitStack() as stack:
            folder = args.dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-decode-")))
            print(f"ade20k-metrics {ade20k_metrics.__version__}, NumPy {np.__version__}, Pillow {Image.__version__}, "
                  f"CPU {cpu_model()}, {available_cpus()} CPUs usable of {os.cpu_count()}, "
                  f"load average {os.getloadavg()[0]:.2f}")
            decoder_timings(folder, args.decoders, args.repeats, threads)
        return 0

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
            "evaluate --dataset ade20k": lambda: evaluate(pred_dir, gt_dir, threads, "--dataset", "ade20k"),
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


def region_map(rng: np.random.Generator, height: int, width: int, top: int, block: int, rects: int,
               dtype=np.uint8) -> np.ndarray:
    """Labels 0..top in blocks overlaid with rectangles, like a real annotation (for the decoder timings)."""
    coarse = rng.integers(0, top + 1, size=(-(-height // block), -(-width // block)))
    labels = np.kron(coarse, np.ones((block, block), np.int64))[:height, :width]
    for _ in range(rects):
        y, x = int(rng.integers(0, height)), int(rng.integers(0, width))
        labels[y:y + int(rng.integers(5, height // 4)), x:x + int(rng.integers(5, width // 4))] = rng.integers(0, top + 1)
    return labels.astype(dtype)


DECODE_KINDS = {
    # name: (height, width, top label, block, rectangles, dtype, suffix, Pillow mode)
    "ADE20K 512x683 8-bit PNG": (512, 683, 150, 64, 40, np.uint8, ".png", "L"),
    "Cityscapes 2048x1024 8-bit PNG": (1024, 2048, 33, 128, 60, np.uint8, ".png", "L"),
    "ADE20K-847 512x683 16-bit PNG": (512, 683, 846, 64, 40, np.uint16, ".png", None),
    "ADE20K-847 512x683 uint16 TIFF": (512, 683, 846, 64, 40, np.uint16, ".tif", None),
    "VOC 500x375 palette PNG": (375, 500, 20, 48, 10, np.uint8, ".png", "P"),
}


def decoder_timings(folder: Path, files: int, repeats: int, threads: int) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from ade20k_metrics.io import formats
    from ade20k_metrics.io.label_files import read_label_map

    rng = np.random.default_rng(1)
    readers = {"today (label_files, Pillow)": read_label_map}
    for name in formats.available_decoders():
        readers[f"formats, {name}"] = lambda path, name=name: formats.read_label_file(path, decoder=name)
    readers["formats, auto"] = formats.read_label_file
    print(f"decoders installed: {', '.join(formats.available_decoders())}; {files} files of each kind; "
          f"median of {repeats} runs; pool of {threads} threads")
    print()
    print(f"| file kind | reader | ms / file, 1 thread | CPU ms / file, 1 thread | files / s, {threads} threads |")
    print("| --- | --- | ---: | ---: | ---: |")
    for kind, (h, w, top, block, rects, dtype, suffix, mode) in DECODE_KINDS.items():
        sub = folder / kind.split()[0].lower().replace("-", "") / f"{h}x{w}{suffix}{dtype.__name__}"
        sub.mkdir(parents=True, exist_ok=True)
        paths = sorted(sub.glob(f"*{suffix}"))
        if len(paths) != files:
            for p in paths:
                p.unlink()
            for i in range(files):
                image = Image.fromarray(region_map(rng, h, w, top, block, rects, dtype))
                if mode == "P":
                    image = image.convert("P") if image.mode != "P" else image
                    image = Image.fromarray(np.asarray(image), mode="P")
                    image.putpalette([c for v in range(256) for c in (v * 37 % 256, v * 91 % 256, v * 53 % 256)])
                image.save(sub / f"{i:05d}{suffix}")
            paths = sorted(sub.glob(f"*{suffix}"))
        reference = [read_label_map(p) for p in paths[:8]]
        for name, read in readers.items():
            for p, want in zip(paths[:8], reference):
                got = read(p)
                if got.dtype != want.dtype or not np.array_equal(got, want):
                    raise RuntimeError(f"{name} decodes {p} differently from today's reader")
        singles: dict[str, list[tuple[float, float]]] = {name: [] for name in readers}
        pooled: dict[str, list[float]] = {name: [] for name in readers}
        with ThreadPoolExecutor(threads) as pool:
            for _ in range(repeats):  # interleaved, so background load hits every reader alike
                for name, read in readers.items():
                    singles[name].append(timed(lambda: [read(p) for p in paths]))
                    pooled[name].append(timed(lambda: list(pool.map(read, paths)))[0])
        for name in readers:
            wall = statistics.median(w for w, _ in singles[name])
            cpu = statistics.median(c for _, c in singles[name])
            print(f"| {kind} | {name} | {1e3 * wall / files:.2f} | {1e3 * cpu / files:.2f} "
                  f"| {files / statistics.median(pooled[name]):.0f} |")


def _evaluated_matrix(pred_dir: Path, gt_dir: Path, threads: int) -> np.ndarray:
    from ade20k_metrics.io.label_files import evaluate_pairs

    return evaluate_pairs(pair_folders(pred_dir, gt_dir).pairs, LabelFormat(), threads=threads).matrix


if __name__ == "__main__":
    sys.exit(main())
