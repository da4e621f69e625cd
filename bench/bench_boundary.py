"""Boundary IoU: ConfusionMatrix(boundary=0.02) against boundary-iou-api's approach, per image, side by side.

Data: the real ADE20K validation annotations the package ships (datasets/data/ade20k/sample, 150 classes
with reduce_zero_label) and network-like predictions for them: each class's indicator blurred (three box
blurs, about a Gaussian), plus a smooth noise field per class (low-resolution normal noise, bilinearly
upsampled), argmax over the classes of the image and a few others; about 80 % pixel accuracy.

  package    cm.update(pred, target) with ConfusionMatrix(150, reduce_zero_label=True, boundary=0.02):
             region and boundary counts in one kernel pass
  plain      the same without boundary= (the region counts alone)
  api        boundary-iou-api's approach: for every class present in either map, its mask_to_boundary
             (OpenCV: pad, 3 x 3 erosion d times, mask minus erosion) of gt == c and of pred == c, then
             the intersection and union counts over the evaluated pixels; the region matrix by np.bincount
             (so both sides produce the same numbers, checked before timing)

Each method runs ``--repeats`` times per image, one thread unless ``--threads``; medians are reported.
Needs opencv-python-headless for the api column (skipped without it).

    python bench/bench_boundary.py [--repeats 21] [--threads 1 2 4 8 16] [--ratio 0.02]

Not part of the test run.  Prints the CPU model and thread counts with the results.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

import ade20k_metrics as am
from ade20k_metrics.core import boundary_reference as ref
from ade20k_metrics.io.report import cpu_model

SAMPLES = Path(am.__file__).resolve().parent / "datasets" / "data" / "ade20k" / "sample"
K = 150


def _box_blur(x: np.ndarray, r: int, axis: int) -> np.ndarray:
    pad = [(0, 0)] * x.ndim
    pad[axis] = (r + 1, r)
    c = np.cumsum(np.pad(x, pad, mode="edge"), axis=axis)
    n = x.shape[axis]
    hi = np.take(c, np.arange(2 * r + 1, 2 * r + 1 + n), axis=axis)
    lo = np.take(c, np.arange(0, n), axis=axis)
    return (hi - lo) / (2 * r + 1)


def _blur(x: np.ndarray, r: int) -> np.ndarray:
    for _ in range(3):
        x = _box_blur(_box_blur(x, r, 0), r, 1)
    return x


def _smooth_noise(rng, h: int, w: int, cell: int = 24) -> np.ndarray:
    low = rng.standard_normal((max(2, h // cell), max(2, w // cell))).astype(np.float32)
    return np.asarray(Image.fromarray(low, mode="F").resize((w, h), Image.BILINEAR))


def network_like_prediction(target: np.ndarray, rng, noise: float = 0.5, blur: int = 6) -> np.ndarray:
    """A prediction of class indices 0..149 (annotation label - 1, as a model outputs) with network-like errors."""
    h, w = target.shape
    present = [int(c) for c in np.unique(target) if c != 0]
    extra = [int(c) for c in rng.choice(np.arange(1, K + 1), size=3, replace=False) if c not in present]
    classes = present + extra
    scores = np.empty((len(classes), h, w), np.float32)
    for i, c in enumerate(classes):
        scores[i] = _blur((target == c).astype(np.float32), blur) + noise * _smooth_noise(rng, h, w)
    return (np.asarray(classes, np.uint8) - 1)[np.argmax(scores, axis=0)]


def api_counts(pred: np.ndarray, target: np.ndarray, ratio: float):
    """boundary-iou-api's way: mask_to_boundary per class present, then counting (target in the annotation
    format, 0 = other; pred as class indices)."""
    import cv2

    h, w = target.shape
    d = max(1, int(round(ratio * np.sqrt(h ** 2 + w ** 2))))
    kernel = np.ones((3, 3), np.uint8)
    valid = target != 0  # ADE20K: 0 = other, not evaluated

    def mask_to_boundary(mask):
        padded = cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
        return mask - cv2.erode(padded, kernel, iterations=d)[1:h + 1, 1:w + 1]

    inter = np.zeros(K, np.int64)
    union = np.zeros(K, np.int64)
    for c in np.union1d(np.unique(target[valid]).astype(np.int64) - 1, np.unique(pred[valid])):
        g = mask_to_boundary((target == c + 1).astype(np.uint8))
        p = mask_to_boundary((pred == c).astype(np.uint8)) * valid
        inter[c] = int(((g * p) > 0).sum())
        union[c] = int(((g + p) > 0).sum())
    t, p = target[valid].astype(np.int64) - 1, pred[valid].astype(np.int64)
    region = np.bincount(t * K + p, minlength=K * K).reshape(K, K)
    return region, inter, union


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--threads", type=int, nargs="*", default=[1])
    ap.add_argument("--ratio", type=float, default=0.02)
    ap.add_argument("--scale", type=int, nargs="*", default=[1],
                    help="also time each map upscaled by these factors (nearest), e.g. 1 4")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    try:
        import cv2  # noqa: F401
        have_cv2 = True
    except ImportError:
        have_cv2 = False
    rng = np.random.default_rng(args.seed)
    print(f"CPU: {cpu_model()}; ade20k_metrics {am.__version__} (simd {am.simd()}, OpenMP {am.openmp_enabled()}, "
          f"default threads {am.default_threads()}); boundary={args.ratio}; medians of {args.repeats}"
          + ("" if have_cv2 else "; no OpenCV: api column skipped"))
    print()
    print("| image | H x W | d | pixel acc | threads | plain ms | boundary ms | boundary / plain | api ms | "
          "api / boundary |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for path in sorted(SAMPLES.glob("ADE_val_*.png")):
        base = np.array(Image.open(path))
        base_pred = network_like_prediction(base, rng)
        for scale in args.scale:
            target = np.kron(base, np.ones((scale, scale), np.uint8)) if scale > 1 else base
            pred = np.kron(base_pred, np.ones((scale, scale), np.uint8)) if scale > 1 else base_pred
            h, w = target.shape
            valid = target != 0
            acc = float((pred[valid].astype(np.int64) == target[valid].astype(np.int64) - 1).mean())
            d = ref.dilation_pixels(h, w, args.ratio)
            api_ms = None
            for threads in args.threads:
                cm = am.ConfusionMatrix(K, reduce_zero_label=True, boundary=args.ratio, n_threads=threads)
                plain = am.ConfusionMatrix(K, reduce_zero_label=True, n_threads=threads)
                if have_cv2 and api_ms is None:
                    region, inter, union = api_counts(pred, target, args.ratio)
                    cm.update(pred, target)
                    b = cm.boundary_matrix
                    assert np.array_equal(cm.matrix, region)
                    assert np.array_equal(np.diag(b)[:K], inter), "boundary intersections differ from the api's"
                    assert np.array_equal(b[:K].sum(1) + b[:, :K].sum(0) - np.diag(b)[:K], union)
                    api_ms = 1e3 * median_time(lambda: api_counts(pred, target, args.ratio), max(3, args.repeats // 3))
                plain_ms = 1e3 * median_time(lambda: plain.update(pred, target), args.repeats)
                boundary_ms = 1e3 * median_time(lambda: cm.update(pred, target), args.repeats)
                api = "-" if api_ms is None or threads != 1 else f"{api_ms:.2f}"
                ratio = "-" if api_ms is None or threads != 1 else f"{api_ms / boundary_ms:.0f}x"
                print(f"| {path.stem} x{scale} | {h} x {w} | {d} | {acc:.3f} | {threads} | {plain_ms:.3f} | "
                      f"{boundary_ms:.3f} | {boundary_ms / plain_ms:.2f}x | {api} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
