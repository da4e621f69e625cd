"""Test helpers: random label maps, random strided views of them, and the all-or-nothing update check."""
from __future__ import annotations

import numpy as np
import pytest

INT_DTYPES = [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64]


def dtype_max(dtype) -> int:
    return int(np.iinfo(dtype).max)


def fits(value: int, dtype) -> bool:
    info = np.iinfo(dtype)
    return int(info.min) <= value <= int(info.max)


def random_view(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An array equal to ``values`` but laid out with random strides.

    Axes permuted in memory (Fortran order and others), every axis stepped by
    +-1..3, an offset into a larger buffer; sometimes just a contiguous copy.
    """
    if values.ndim == 0 or rng.random() < 0.2:
        return values.copy(order="C" if rng.random() < 0.5 else "F")
    nd = values.ndim
    perm = rng.permutation(nd)
    steps = rng.choice([1, 1, 2, 3, -1, -2], size=nd)
    big_shape = [values.shape[perm[i]] * abs(int(steps[i])) + int(rng.integers(0, 3)) for i in range(nd)]
    base = np.zeros(big_shape, dtype=values.dtype)
    index = []
    for i in range(nd):
        n, s = values.shape[perm[i]], int(steps[i])
        if s > 0:
            index.append(slice(0, n * s, s) if n else slice(0, 0))
        else:
            start = n * -s - 1
            index.append(slice(start, None if start - n * -s < 0 else start - n * -s, s) if n else slice(0, 0))
    view = base[tuple(index)]
    inverse = np.argsort(perm)
    view = view.transpose(inverse)
    assert view.shape == values.shape, (view.shape, values.shape)
    view[...] = values
    return view


def random_labels(rng: np.random.Generator, shape, dtype, num_classes: int, extra=(), p_extra=0.1,
                  coherent=None) -> np.ndarray:
    """Labels in [0, num_classes) (clipped to the dtype), sometimes one of ``extra``.

    Coherent maps (runs of one label, as real segmentations are) or noise,
    so both of the kernel's counting paths are exercised.
    """
    hi = min(num_classes, dtype_max(dtype) + 1)
    n = int(np.prod(shape)) if len(shape) else 1
    if coherent is None:
        coherent = rng.random() < 0.5
    if coherent and n > 0:
        run = int(rng.integers(1, 200))
        vals = np.repeat(rng.integers(0, hi, size=n // run + 1), run)[:n]
    else:
        vals = rng.integers(0, hi, size=n)
    vals = vals.astype(object)
    extras = [e for e in extra if fits(e, dtype)]
    if extras and n > 0:
        mask = rng.random(n) < p_extra
        vals[mask] = rng.choice(np.array(extras, dtype=object), size=int(mask.sum()))
    return np.array(vals.tolist() if n else [], dtype=dtype).reshape(shape)


def assert_update_all_or_nothing(cm, pred, target, expected) -> None:
    """``cm.update(pred, target)`` adds ``expected``, or, where ``expected`` is None (an invalid
    label), raises ValueError and leaves the matrix as it was."""
    before = cm.matrix.copy()
    if expected is None:
        with pytest.raises(ValueError, match="outside"):
            cm.update(pred, target)
        np.testing.assert_array_equal(cm.matrix, before)
    else:
        cm.update(pred, target)
        np.testing.assert_array_equal(cm.matrix, before + expected)


def write_label_pngs(folder, maps, suffix: str = ".png"):
    """Write each map of ``maps`` (name -> array) as an 8-bit greyscale image ``name + suffix``; returns folder."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in maps.items():
        Image.fromarray(np.asarray(arr, dtype=np.uint8)).save(folder / f"{name}{suffix}")
    return folder


def sample_with_predictions():
    """(ground truth 0..150, official 1..150 predictions) of the three real ADE20K annotations shipped."""
    from ade20k_metrics import ade20k

    gts = ade20k.sample_annotations()
    preds = {name: ade20k.simulate_prediction(gt, seed=i) for i, (name, gt) in enumerate(gts.items())}
    return gts, preds
