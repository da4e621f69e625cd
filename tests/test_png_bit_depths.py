"""Greyscale PNGs of every bit depth PNG allows (1, 2, 4, 8, 16), written by Pillow, read as their samples.

Pillow opens a 1-bit greyscale PNG as mode "1" (bool) and a 2- or 4-bit one as
mode "L" with the samples spread over 0..255 (a 4-bit 1 reads as 17, a 2-bit 3
as 255): plain ``evaluate`` (io/label_files.py) used to score those spread
values, so a 4-bit map's labels came out x17 and a 2-bit label 3 became 255,
the ignore value.  Both readers now share one helper; the expected values are
the arrays written, and the CLI's counts are worked out by hand below.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from ade20k_metrics.cli import main
from ade20k_metrics.io import formats, label_files

Image = pytest.importorskip("PIL.Image")


def _write(path, samples: np.ndarray, bits: int) -> None:
    """``samples`` (0..2**bits - 1) saved by Pillow as a greyscale PNG of ``bits`` bits per sample."""
    if bits == 1:
        Image.fromarray(samples.astype(bool)).save(path)
    elif bits == 16:
        Image.fromarray(samples.astype(np.uint16)).save(path)
    else:
        Image.fromarray(samples.astype(np.uint8)).save(path, bits=bits)


def _ihdr(path) -> tuple[int, int]:
    """(bit depth, colour type) the file's header declares: the file really is what the test says."""
    data = path.read_bytes()
    return data[24], data[25]


def _samples(bits: int, shape=(5, 7)) -> np.ndarray:
    top = (1 << bits) - 1
    values = np.arange(shape[0] * shape[1]) % (top + 1)  # every sample value occurs, the top one included
    return values.reshape(shape)


@pytest.mark.parametrize("bits", [1, 2, 4, 8, 16])
def test_both_readers_return_the_samples_pillow_wrote(tmp_path, bits):
    samples = _samples(bits)
    path = tmp_path / f"map{bits}.png"
    _write(path, samples, bits)
    assert _ihdr(path) == (bits, 0)  # greyscale, this many bits
    for read in (label_files.read_label_map, formats.read_label_file):
        out = read(path)
        assert out.shape == samples.shape
        assert out.dtype.kind == "u"  # integers, not bool
        assert np.array_equal(out.astype(np.int64), samples), read.__module__


@pytest.mark.parametrize("bits", [2, 4])
def test_low_bit_palette_png_is_read_as_indices(tmp_path, bits):
    # A palette PNG of 2 or 4 bits per index is not spread by Pillow: the helper must leave it alone.
    samples = _samples(bits)
    image = Image.fromarray(samples.astype(np.uint8), mode="P")
    image.putpalette([c for i in range(1 << bits) for c in (i * 60 % 256, i * 25 % 256, 200)])
    path = tmp_path / "p.png"
    image.save(path, bits=bits)
    assert _ihdr(path) == (bits, 3)
    for read in (label_files.read_label_map, formats.read_label_file):
        assert np.array_equal(read(path).astype(np.int64), samples)


def test_plain_evaluate_scores_4bit_ground_truth_and_2bit_predictions(tmp_path, capsys):
    # ADE20K-style 1-based files with K = 3 classes: ground truth 4-bit (0 = other, 1..3), predictions 2-bit
    # (1..3).  Ground truth [0 1 1 2 3 3], prediction [3 1 2 2 3 1] -> pixel 0 is "other" (dropped);
    # class 1: gt at 1,2, pred at 1,5 -> TP 1, FP 1, FN 1 -> IoU 1/3; class 2: gt 3, pred 2,3 -> IoU 1/2;
    # class 3: gt 4,5, pred 4 (and 0, dropped) -> IoU 1/2.  Read x17 / x85 the ground truth would hold 17,
    # 34, 51 (out of range) and the predictions 255.
    gt = np.array([[0, 1, 1, 2, 3, 3]])
    pred = np.array([[3, 1, 2, 2, 3, 1]])
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    _write(tmp_path / "gt" / "a.png", gt, 4)
    _write(tmp_path / "pred" / "a.png", pred, 2)
    code = main(["evaluate", str(tmp_path / "pred"), str(tmp_path / "gt"), "--num-classes", "3",
                 "--json", str(tmp_path / "o.json"), "--quiet"])
    _, err = capsys.readouterr()
    assert code == 0, err
    doc = json.loads((tmp_path / "o.json").read_text())
    assert doc["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]
    assert [c["gt_pixels"] for c in doc["per_class"]] == [2, 1, 2]
    assert doc["metrics"]["miou"] == pytest.approx((1 / 3 + 1 / 2 + 1 / 2) / 3)


def test_plain_evaluate_1bit_label_is_class_one_not_ignored(tmp_path, capsys):
    # 0-based binary maps (foreground / background) saved as 1-bit PNGs: gt [0 1 1 0], pred [0 1 0 0]
    # -> class 0: TP 2, FN 0, FP 1 -> IoU 2/3; class 1: TP 1, FN 1 -> IoU 1/2.
    gt = np.array([[0, 1, 1, 0]])
    pred = np.array([[0, 1, 0, 0]])
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    _write(tmp_path / "gt" / "a.png", gt, 1)
    _write(tmp_path / "pred" / "a.png", pred, 1)
    code = main(["evaluate", str(tmp_path / "pred"), str(tmp_path / "gt"), "--num-classes", "2", "--gt-zero-based",
                 "--pred-zero-based", "--json", str(tmp_path / "o.json"), "--quiet"])
    _, err = capsys.readouterr()
    assert code == 0, err
    doc = json.loads((tmp_path / "o.json").read_text())
    assert doc["confusion_matrix"] == [[2, 0], [1, 1]]
    assert doc["metrics"]["miou"] == pytest.approx((2 / 3 + 1 / 2) / 2)
