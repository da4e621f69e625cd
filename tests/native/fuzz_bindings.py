"""Coverage-guided fuzzing of the bindings (atheris + libFuzzer), by hand, not in the test run.

Every input is turned into one call of ``_core.accumulate``,
``_core.confusion_matrix_small``, ``_core.accumulate_argmax`` or
``_core.add_counts`` with hostile arguments: any dtype (byte-swapped, bool,
float, object), 0..4 dimensions, sliced/reversed/transposed/broadcast views,
misaligned buffers, num_classes, ignore_index, lookup tables and kernel
options in and out of range, ``out`` of the wrong kind.  A call must raise
TypeError, ValueError or OverflowError leaving ``out`` unchanged, or agree
with the model of tests/test_fuzz.py (labels) or NumPy's argmax (scores);
anything else, and any crash or sanitizer report, stops the fuzzer with the
input that caused it.  Run by .ci/fuzz, which builds the extension with clang's
coverage instrumentation, AddressSanitizer and UBSan first:

    bash .ci/fuzz 300        # seconds
"""
from __future__ import annotations

import os
import sys

import atheris

with atheris.instrument_imports():
    import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))  # tests/, for the model
from test_fuzz import model_accumulate  # noqa: E402

from ade20k_metrics import _core  # noqa: E402  (the instrumented build)

ALLOWED = (TypeError, ValueError, OverflowError)
LABEL_DTYPES = ["u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "<u2", ">u2", ">i4", ">i8", "?", "f4", "f2",
                "O", "M8[s]", "V2"]
SCORE_DTYPES = ["f4", "f2", "i2", "u2", ">f4", "f8", "i4"]
NUM_CLASSES = [1, 2, 3, 5, 150, 255, 256, 257, 1000, 1023, 1100, 0, -1, 65534, 65535, 2**31, -(2**63)]
IGNORES = [None, 255, -1, 0, 1, 2, 65535, 2**31 - 1, -(2**63), 2**63 - 1]
OPTION_VALUES = [-(2**63), -1, 0, 1, 2, 3, 7, 64, 1 << 16, 1 << 31, 2**62]


def pick(fdp, items):
    return items[fdp.ConsumeIntInRange(0, len(items) - 1)]


def labels(fdp, dtype: str, shape, k: int) -> np.ndarray:
    dt = np.dtype(dtype)
    n = int(np.prod(shape)) if shape else 1
    if dt.kind in "iub" and fdp.ConsumeBool():  # mostly classes, a few others
        raw = np.frombuffer(fdp.ConsumeBytes(n * 2).ljust(n * 2, b"\0"), dtype=np.uint16)[:n].astype(np.int64)
        values = raw % max(1, min(k, 300) + 2) - (raw % 97 == 0)
        with np.errstate(over="ignore"):
            a = values.astype(dt.newbyteorder("=")).astype(dt) if dt.kind != "b" else (values % 2).astype(dt)
    elif dt.kind == "O":
        a = np.array([int(b) for b in fdp.ConsumeBytes(n).ljust(n, b"\0")], dtype=object)
    else:
        a = np.frombuffer(fdp.ConsumeBytes(n * dt.itemsize).ljust(n * dt.itemsize, b"\0"), dtype=dt).copy()
    return a.reshape(shape)


def hostile_view(fdp, a: np.ndarray) -> np.ndarray:
    """The same values laid out some odd way (every view stays inside its buffer)."""
    how = fdp.ConsumeIntInRange(0, 5)
    if how == 1 and a.ndim:  # sliced with steps, some negative
        index = tuple(slice(None, None, pick(fdp, [1, 2, -1, -2, 3])) for _ in range(a.ndim))
        return a[index]
    if how == 2 and a.ndim > 1:
        return a.transpose(np.roll(np.arange(a.ndim), 1))
    if how == 3:  # broadcast: zero strides
        return np.broadcast_to(a, (fdp.ConsumeIntInRange(0, 4), *a.shape))
    if how == 4 and a.ndim == 1 and a.dtype.kind in "iuf" and a.dtype.itemsize > 1:  # misaligned
        buf = np.zeros(a.nbytes + 1, np.uint8)
        view = buf[1:].view(a.dtype)
        view[...] = a
        return view
    if how == 5:
        return np.asfortranarray(a)
    return a


def shape_of(fdp):
    return tuple(fdp.ConsumeIntInRange(0, 7) for _ in range(fdp.ConsumeIntInRange(0, 3)))


def out_array(fdp, k: int):
    kind = fdp.ConsumeIntInRange(0, 9)
    if k < 1 or k > 1100:
        return np.zeros((3, 3), np.int64), False
    prefill = pick(fdp, [0, 1, 2**62, 2**63 - 1])
    out = np.full((k, k), prefill, np.int64)
    if kind == 6:
        out = out.astype(np.int32)
    elif kind == 7:
        out = np.zeros((k, k + 1), np.int64)[:, :k]  # C-contiguous all the same when k == 1
    elif kind == 8:
        out.flags.writeable = False
    usable = out.dtype == np.int64 and out.flags.c_contiguous and out.flags.writeable
    return out, usable


def options(fdp, names):
    return {name: pick(fdp, OPTION_VALUES) for name in names if fdp.ConsumeBool()}


def check_accumulate(fdp):
    k = pick(fdp, NUM_CLASSES)
    shape = shape_of(fdp)
    tdt, pdt = pick(fdp, LABEL_DTYPES), pick(fdp, LABEL_DTYPES)
    target = hostile_view(fdp, labels(fdp, tdt, shape, k))
    pred = hostile_view(fdp, labels(fdp, pdt, shape if fdp.ConsumeIntInRange(0, 9) else shape_of(fdp), k))
    if fdp.ConsumeBool() and target.shape == pred.shape and target.ndim:  # the same broadcast in both
        m = fdp.ConsumeIntInRange(2, 5)
        target, pred = np.broadcast_to(target, (m, *target.shape)), np.broadcast_to(pred, (m, *pred.shape))
    ignore = pick(fdp, IGNORES)
    lut, lut_lo, rzl = None, 0, fdp.ConsumeBool()
    if fdp.ConsumeBool():
        size = pick(fdp, [0, 1, 3, 256, 257])
        raw = np.frombuffer(fdp.ConsumeBytes(size).ljust(size, b"\0"), np.uint8).astype(np.int64)
        lut = raw % max(1, min(k, 300) + 3) - 1
        lut = lut.astype(pick(fdp, ["i4", "i4", "i4", "i8", "f4"]))
        lut_lo = pick(fdp, [0, -1, 1, 255, -128, 2**40])
    out, good_out = out_array(fdp, k)
    opts = options(fdp, ["n_threads", "min_pixels_per_thread", "direct_below", "flush_limit", "isa",
                         "chunk_pixels", "private_up_to", "keep_up_to"])
    if "n_threads" in opts:
        opts["n_threads"] = max(-1, min(opts["n_threads"], 4))
    before = out.copy()
    try:
        bad_t, bad_p, threads = _core.accumulate(target, pred, out, k, ignore, lut, lut_lo, rzl, **opts)
    except ALLOWED:
        assert (out == before).all(), "a refused call changed out"
        return
    assert good_out and 1 <= threads <= max(1, opts.get("n_threads", 1))
    if target.size > 4000:
        return  # the model walks pixels in Python
    mt, mp, counts = model_accumulate(target, pred, k, ignore, lut, lut_lo, rzl)
    assert (bad_t, bad_p) == (mt, mp), ((bad_t, bad_p), (mt, mp))
    if counts is None:
        assert (out == before).all()
    else:
        assert (out == before + counts).all()


def check_small(fdp):
    k = pick(fdp, NUM_CLASSES[:10])
    shape = shape_of(fdp)
    target = hostile_view(fdp, labels(fdp, pick(fdp, LABEL_DTYPES), shape, k))
    pred = hostile_view(fdp, labels(fdp, pick(fdp, LABEL_DTYPES), shape, k))
    ignore = pick(fdp, IGNORES + [2**70, -(2**70)])
    try:
        got = _core.confusion_matrix_small(target, pred, k, ignore)
    except ALLOWED:
        return
    if got is None:
        return
    assert target.dtype.isnative and target.dtype.kind in "iu" and pred.dtype.kind in "iu"
    _, _, counts = model_accumulate(target, pred, k, ignore)
    assert counts is not None and (got == counts).all()


def check_argmax(fdp):
    k = pick(fdp, [1, 2, 3, 7, 150, 0, -1, 1100])
    channels = pick(fdp, [1, 2, 3, 7, k if k > 0 else 1])
    shape = shape_of(fdp)
    axis = fdp.ConsumeIntInRange(-1, len(shape) + 1)
    sdt = pick(fdp, SCORE_DTYPES)
    score_type = pick(fdp, [0, 1, 2, 3, -1])
    full = list(shape)
    full.insert(max(0, min(axis, len(shape))), channels)
    n = int(np.prod(full))
    dt = np.dtype(sdt)
    scores = np.frombuffer(fdp.ConsumeBytes(n * dt.itemsize).ljust(n * dt.itemsize, b"\0"), dt).reshape(full)
    scores = hostile_view(fdp, scores) if fdp.ConsumeBool() else scores
    target = hostile_view(fdp, labels(fdp, pick(fdp, LABEL_DTYPES), shape, max(k, 1)))
    out, good_out = out_array(fdp, k)
    ignore = pick(fdp, IGNORES)
    opts = options(fdp, ["n_threads", "min_scores_per_thread", "tile", "isa", "chunk_pixels", "private_up_to"])
    if "n_threads" in opts:
        opts["n_threads"] = max(-1, min(opts["n_threads"], 4))
    before = out.copy()
    try:
        bad_t, bad_p, _ = _core.accumulate_argmax(target, scores, score_type, axis, out, k, ignore, **opts)
    except ALLOWED:
        assert (out == before).all(), "a refused call changed out"
        return
    assert good_out
    if target.size > 4000 or score_type != 0 or dt != np.float32:
        return
    winners = np.argmax(scores, axis=axis)  # NumPy's rules: first maximum, NaN wins
    mt, mp, counts = model_accumulate(target, winners, k, ignore)
    assert (bad_t, bad_p) == (mt, mp), ((bad_t, bad_p), (mt, mp))
    assert (out == (before if counts is None else before + counts)).all()


def check_add_counts(fdp):
    k = fdp.ConsumeIntInRange(0, 5)
    out = np.array(fdp.ConsumeIntListInRange(k * k, -(2**63), 2**63 - 1) or [0] * (k * k), np.int64)
    other = np.array(fdp.ConsumeIntListInRange(k * k, -(2**63), 2**63 - 1) or [0] * (k * k), np.int64)
    out, other = out.reshape(k, k), other.reshape(k, k)
    if fdp.ConsumeBool() and k > 1:
        other = other[:, ::-1]
    if fdp.ConsumeBool():
        other = other.astype(pick(fdp, ["i4", "u8", ">i8", "f8"]))
    before = out.copy()
    exact = [int(a) + int(b) for a, b in zip(out.ravel().tolist(), np.asarray(other).ravel().tolist())]
    try:
        _core.add_counts(out, other)
    except ALLOWED:
        assert (out == before).all()
        return
    assert all(-(2**63) <= v < 2**63 for v in exact) and out.ravel().tolist() == exact


CHECKS = [check_accumulate, check_accumulate, check_small, check_argmax, check_add_counts]


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    pick(fdp, CHECKS)(fdp)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
