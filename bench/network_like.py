"""Network-like predictions for the confusion-matrix benchmark (issue 19).

A network's output is smooth: its errors sit along the borders of the ground truth and in a few
blobs, not in single pixels.  This module makes such predictions from a ground truth:

    score_c = blur(indicator of class c) + amplitude * smooth noise field_c      (c in a candidate set)
    prediction = argmax_c score_c

The candidates are the classes of the map plus a few absent ones (so that wrong labels appear).  The
noise amplitude is tuned by bisection to about 80% pixel accuracy (ignored pixels excluded).  Blurs are
three box passes (close to a Gaussian), done with cumulative sums in NumPy (no SciPy needed).

Ground truths: the three real ADE20K annotations bundled with the package, and synthetic maps 100 to
2048 pixels wide whose label changes per row are tuned to 2 to 40 (argmax of smooth random fields).

    python bench/network_like.py          prints each set's accuracy and label changes per row

Everything is deterministic for a given seed.  Labels: 0..149, 255 = ignore (uint8).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

K = 150
IGNORE = 255
ANNOTATIONS = (Path(__file__).resolve().parent.parent / "python" / "ade20k_metrics" / "datasets" / "data"
               / "ade20k" / "sample" / "annotations.npz")


# -- smoothing ----------------------------------------------------------------------------------------
def _box(a: np.ndarray, r: int, axis: int) -> np.ndarray:
    """Mean over a window of 2r+1 along ``axis`` (edges repeated)."""
    if r <= 0:
        return a
    pad = [(0, 0)] * a.ndim
    pad[axis] = (r + 1, r)
    c = np.cumsum(np.pad(a, pad, mode="edge"), axis=axis, dtype=np.float32)
    n = a.shape[axis]
    hi = np.take(c, np.arange(2 * r + 1, 2 * r + 1 + n), axis=axis)
    lo = np.take(c, np.arange(0, n), axis=axis)
    return (hi - lo) / np.float32(2 * r + 1)


def blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """About a Gaussian of width ``sigma`` over the last two axes (three box passes each)."""
    r = max(0, int(round((np.sqrt(4.0 * sigma * sigma + 1.0) - 1.0) / 2.0)))
    out = a.astype(np.float32, copy=False)
    for axis in (-2, -1):
        for _ in range(3):
            out = _box(out, r, axis if axis >= 0 else out.ndim + axis)
    return out


def smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], scale: float) -> np.ndarray:
    """Unit-variance noise smooth over ``scale`` pixels: white noise on a coarse grid, blurred, upsampled."""
    h, w = shape[-2:]
    step = max(1, int(scale // 2))
    ch, cw = h // step + 3, w // step + 3
    coarse = blur(rng.standard_normal(shape[:-2] + (ch, cw)).astype(np.float32), 1.0)
    coarse /= coarse.std() + 1e-12
    # bilinear upsampling of the coarse field to (h, w)
    y = (np.arange(h) + 0.5) / step
    x = (np.arange(w) + 0.5) / step
    y0, x0 = np.floor(y).astype(int), np.floor(x).astype(int)
    fy, fx = (y - y0).astype(np.float32)[:, None], (x - x0).astype(np.float32)[None, :]
    a = coarse[..., y0, :][..., x0]
    b = coarse[..., y0, :][..., x0 + 1]
    c = coarse[..., y0 + 1, :][..., x0]
    d = coarse[..., y0 + 1, :][..., x0 + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


# -- measures -----------------------------------------------------------------------------------------
def changes_per_row(m: np.ndarray) -> float:
    """Mean count of positions per row where the label differs from its left neighbour."""
    m = m.reshape(-1, m.shape[-1])
    return float(np.count_nonzero(m[:, 1:] != m[:, :-1]) / m.shape[0])


def pair_changes_per_row(t: np.ndarray, p: np.ndarray) -> float:
    """Mean count of positions per row where the (target, prediction) pair changes: the kernel's runs."""
    t, p = t.reshape(-1, t.shape[-1]), p.reshape(-1, p.shape[-1])
    d = (t[:, 1:] != t[:, :-1]) | (p[:, 1:] != p[:, :-1])
    return float(np.count_nonzero(d) / t.shape[0])


def accuracy(t: np.ndarray, p: np.ndarray) -> float:
    keep = t != IGNORE
    return float(np.count_nonzero((t == p) & keep) / max(1, np.count_nonzero(keep)))


# -- predictions --------------------------------------------------------------------------------------
def predict(gt: np.ndarray, seed: int, target_accuracy: float = 0.80, border_sigma: float = 3.0,
            noise_scale: float = 24.0, extra_classes: int = 4) -> np.ndarray:
    """A network-like prediction for one ground truth (uint8, 0..149, 255 ignored), ~``target_accuracy``."""
    rng = np.random.default_rng(seed)
    present = [int(c) for c in np.unique(gt) if c != IGNORE]
    if not present:
        present = [0]
    absent = np.setdiff1d(np.arange(K), present)
    extra = [int(c) for c in rng.choice(absent, size=min(extra_classes, absent.size), replace=False)]
    classes = np.array(present + extra, dtype=np.int64)
    ind = np.stack([(gt == c) for c in classes]).astype(np.float32)
    # ignored pixels: the network still predicts something there; it sees them as the nearest class
    # only through the blur, which is what a real network's output looks like at unlabelled regions
    score = blur(ind, border_sigma)
    noise = smooth_noise(rng, ind.shape, noise_scale)
    keep = gt != IGNORE
    gt_idx = np.searchsorted(classes[:len(present)], np.where(keep, gt, classes[0]))

    def acc_at(amp: float) -> tuple[float, np.ndarray]:
        idx = np.argmax(score + np.float32(amp) * noise, axis=0)
        return float(np.count_nonzero((idx == gt_idx) & keep) / max(1, np.count_nonzero(keep))), idx

    lo, hi = 0.0, 4.0
    for _ in range(11):  # bisection on the noise amplitude (accuracy falls as it grows)
        mid = 0.5 * (lo + hi)
        a, _ = acc_at(mid)
        if a > target_accuracy:
            lo = mid
        else:
            hi = mid
    _, idx = acc_at(0.5 * (lo + hi))
    return classes[idx].astype(np.uint8)


# -- ground truths ------------------------------------------------------------------------------------
def real_annotations() -> list[np.ndarray]:
    """The three bundled ADE20K annotations as 0..149 with 255 ignored (0 in the files)."""
    with np.load(ANNOTATIONS) as z:
        maps = [z[k] for k in sorted(z.files)]
    out = []
    for m in maps:
        t = m.astype(np.int16) - 1
        t[m == 0] = IGNORE
        out.append(t.astype(np.uint8))
    return out


def synthetic_gt(h: int, w: int, density: float, seed: int, n_classes: int = 8) -> np.ndarray:
    """A map whose label changes per row are about ``density``: argmax of smooth random fields."""
    rng = np.random.default_rng(seed)
    classes = rng.choice(K, size=n_classes, replace=False)

    def make(scale: float) -> np.ndarray:
        r = np.random.default_rng(seed + 1)
        return classes[np.argmax(smooth_noise(r, (n_classes, h, w), scale), axis=0)].astype(np.uint8)

    lo, hi = 1.0, 4.0 * w  # bisection on log(scale): changes per row fall as the scale grows
    for _ in range(9):
        mid = np.sqrt(lo * hi)
        if changes_per_row(make(mid)) > density:
            lo = mid
        else:
            hi = mid
    return make(np.sqrt(lo * hi))


WIDTHS = (100, 256, 683, 2048)
DENSITIES = (2, 5, 10, 20, 40)


def synthetic_set(w: int, density: float, n: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` (targets, predictions) pairs of width ``w`` (height 3/4 of it) at ``density`` changes a row."""
    h = max(8, (3 * w) // 4)
    ts, ps = [], []
    for i in range(n):
        s = seed + 1000 * i + 7 * w + int(10 * density)
        t = synthetic_gt(h, w, density, s)
        ts.append(t)
        ps.append(predict(t, s + 1, noise_scale=max(4.0, 0.5 * w / max(density, 1.0))))
    return np.stack(ts), np.stack(ps)


def real_set(n: int = 3, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """The real annotations with a network-like prediction each (maps keep their own sizes)."""
    maps = real_annotations()
    return [(maps[i % len(maps)], predict(maps[i % len(maps)], seed + i)) for i in range(n)]


def describe(name: str, t: np.ndarray, p: np.ndarray) -> str:
    return (f"{name:28s} {str(t.shape):18s} accuracy {100 * accuracy(t, p):5.1f}%  changes/row: "
            f"gt {changes_per_row(t):5.1f}  pred {changes_per_row(p):5.1f}  pair {pair_changes_per_row(t, p):5.1f}")


def main() -> int:
    for i, (t, p) in enumerate(real_set()):
        print(describe(f"real annotation {i}", t, p))
    for w in WIDTHS:
        for d in DENSITIES:
            if d > w // 4:
                continue
            t, p = synthetic_set(w, d, n=1)
            print(describe(f"synthetic w={w} d={d}", t, p))
    return 0


if __name__ == "__main__":
    sys.exit(main())
