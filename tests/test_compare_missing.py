"""compare --allow-missing (issue 16): the images all three folders hold are compared, the others warned about.

Tiny 2-class 0-based maps; the expected numbers are worked out by hand in the comments.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from ade20k_metrics.cli import main

Image = pytest.importorskip("PIL.Image")

ZERO = ["--num-classes", "2", "--gt-zero-based", "--pred-zero-based"]


def write(folder, maps):
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in maps.items():
        Image.fromarray(np.asarray(arr, np.uint8)).save(folder / f"{name}.png")
    return folder


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def folders(tmp_path):
    # Ground truth a, b, c; A has a, b, x (x has no ground truth); B has a, c.  Only "a" is in all three.
    gt = write(tmp_path / "gt", {"a": [[0, 0, 1, 1]], "b": [[1, 1, 1, 1]], "c": [[0, 0, 0, 0]]})
    pred_a = write(tmp_path / "A", {"a": [[0, 1, 1, 1]], "b": [[0, 0, 0, 0]], "x": [[0, 0, 0, 0]]})
    pred_b = write(tmp_path / "B", {"a": [[0, 0, 1, 1]], "c": [[1, 1, 1, 1]]})
    return pred_a, pred_b, gt


def test_without_allow_missing_is_an_error_naming_the_files(folders, tmp_path, capsys):
    code, _, err = run(["compare", *folders, *ZERO, "--json", tmp_path / "c.json"], capsys)
    assert code != 0
    assert "--allow-missing" in err
    assert "b" in err and "c" in err and "x" in err
    assert not (tmp_path / "c.json").exists()


def test_allow_missing_scores_the_common_images_and_warns(folders, tmp_path, capsys):
    code, out, err = run(["compare", *folders, *ZERO, "--allow-missing", "--json", tmp_path / "c.json",
                          "--bootstrap", "100", "--permutations", "100"], capsys)
    assert code == 0, err
    doc = json.loads((tmp_path / "c.json").read_text())
    # Only image "a": gt [0 0 1 1]; A [0 1 1 1] -> IoU0 = 1/2, IoU1 = 2/3 -> mIoU 7/12; B is perfect -> 1.
    assert doc["images"] == 1
    assert doc["miou_a"] == pytest.approx(7 / 12)
    assert doc["miou_b"] == pytest.approx(1.0)
    assert doc["delta"] == pytest.approx(5 / 12)
    # Each file left out is named in a warning: b (no B), c (no A), x (no ground truth).
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert any(" b" in w and "not in" in w for w in warnings)
    assert any(" c" in w for w in warnings) and any(" x" in w for w in warnings)
    assert all("--allow-missing" in w for w in warnings)


def test_allow_missing_with_nothing_in_common_is_an_error(tmp_path, capsys):
    gt = write(tmp_path / "gt", {"a": [[0, 1]]})
    pred_a = write(tmp_path / "A", {"a": [[0, 1]]})
    pred_b = write(tmp_path / "B", {"z": [[0, 1]]})
    code, _, err = run(["compare", pred_a, pred_b, gt, *ZERO, "--allow-missing"], capsys)
    assert code != 0 and "no image is in all three folders" in err


def test_quiet_allow_missing_prints_no_warning(folders, capsys):
    code, _, err = run(["compare", *folders, *ZERO, "--allow-missing", "--quiet", "--bootstrap", "50",
                        "--permutations", "50"], capsys)
    assert code == 0 and "warning" not in err


def test_comparison_figure_draws_without_an_interval_or_p_value(tmp_path):
    # One image: every resample is that image, a class's interval can be undefined (None in the JSON) and so
    # can p; the figure still draws (it used to format None with "+.2f").
    pytest.importorskip("matplotlib")
    from ade20k_metrics.io.figures import comparison_figure

    doc = {"per_class": [{"id": 0, "name": "wall", "delta": 0.25, "delta_ci": [None, None]},
                         {"id": 1, "name": "floor", "delta": -0.1, "delta_ci": [-0.2, 0.0]}],
           "delta": 0.075, "delta_ci": [None, None], "p_value": None, "name_a": "A", "name_b": "B",
           "confidence": 0.95, "images": 1, "convention": "mmseg"}
    comparison_figure(tmp_path / "c.png", doc)
    with Image.open(tmp_path / "c.png") as im:
        assert im.size[0] > 300 and im.size[1] > 100
