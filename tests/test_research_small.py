"""Issue 16 items 4-6: to_pandas and the HTML repr, the leaderboard's sources and protocol check,
label placement, --version, help texts, --reduce-zero-label, the progress summary, bench's spread."""
from __future__ import annotations

import csv
import io
import sys
from importlib import resources

import numpy as np
import pytest

import ade20k_metrics as am
from ade20k_metrics.cli import main

Image = pytest.importorskip("PIL.Image")

# K = 3 by hand: class 0 tp 2 (gt 3, pred 2): IoU 2/3; class 1 tp 1 (gt 1, pred 2): IoU 1/2; class 2 absent.
MATRIX = np.array([[2, 1, 0], [0, 1, 0], [0, 0, 0]])


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# -- to_pandas, _repr_html_ ------------------------------------------------------------------------

def test_to_pandas_per_class_frame():
    pd = pytest.importorskip("pandas")
    frame = am.compute_metrics(MATRIX).to_pandas(names=["road", "car", "sky"])
    assert isinstance(frame, pd.DataFrame) and list(frame.index) == [0, 1, 2]
    assert list(frame["name"]) == ["road", "car", "sky"]
    np.testing.assert_allclose(frame["iou"], [2 / 3, 1 / 2, np.nan])
    assert list(frame["gt_pixels"]) == [3, 1, 0] and list(frame["pred_pixels"]) == [2, 2, 0]
    assert frame.attrs["miou"] == pytest.approx((2 / 3 + 1 / 2) / 2) and frame.attrs["convention"] == "mmseg"


def test_to_pandas_without_pandas_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"ade20k-metrics\[pandas\]"):
        am.compute_metrics(MATRIX).to_pandas()


def test_html_repr_has_means_and_escaped_class_names():
    from ade20k_metrics.metrics.tables import metrics_html

    text = metrics_html(am.compute_metrics(MATRIX), names=["a<b", "car", "sky"])
    assert "<th>mIoU</th>" in text and "58.33" in text  # (2/3 + 1/2) / 2 in percent
    assert "a&lt;b" in text and "a<b" not in text
    assert am.compute_metrics(MATRIX)._repr_html_().startswith("<div>")


# -- the leaderboard -------------------------------------------------------------------------------

def _rows():
    with resources.files("ade20k_metrics.datasets").joinpath("data", "ade20k", "leaderboard.csv").open() as f:
        return list(csv.DictReader(f))


def test_every_leaderboard_row_says_where_its_figure_comes_from():
    for r in _rows():
        assert r["source"].strip(), r["model"]
        assert r["status"] in {"confirmed", "identified", "doubtful"}, r["model"]
        assert r["eval"] in {"ss", "ms", "unknown"}, r["model"]
        if r["status"] != "doubtful":
            assert "arXiv:" in r["source"], r["model"]
        else:
            assert r["note"].strip(), r["model"]  # a doubtful figure says why


def test_leaderboard_sources_are_listed(capsys):
    code, out, err = run(["leaderboard", "--sources"], capsys)
    assert code == 0, err
    assert "arXiv:2211.05778" in out and "[doubtful]" in out
    assert "2211.05778" in out.splitlines()[2]  # the table's source column, on InternImage-H's row


def test_protocol_problems_by_hand():
    from ade20k_metrics.cli.leaderboard import protocol_problems

    assert protocol_problems(150, 2000) == []
    assert len(protocol_problems(150, 1999)) == 1 and "2,000 images" in protocol_problems(150, 1999)[0]
    assert len(protocol_problems(19, 2000)) == 1 and "ADE20K-150" in protocol_problems(19, 2000)[0]


def test_evaluate_refuses_to_rank_a_partial_run_unless_told(tmp_path, capsys):
    gt = np.ones((4, 4), np.uint8)
    for folder in ("p", "g"):
        (tmp_path / folder).mkdir()
        Image.fromarray(gt).save(tmp_path / folder / "x.png")
    code, out, err = run(["evaluate", tmp_path / "p", tmp_path / "g", "--params", 50, "--json", tmp_path / "e.json"],
                         capsys)
    assert code == 2 and "1 images" in err and "2,000" in err and "--rank-anyway" in err
    assert out == "" and not (tmp_path / "e.json").exists()  # refused before any work
    code, out, err = run(["evaluate", tmp_path / "p", tmp_path / "g", "--params", 50, "--rank-anyway"], capsys)
    assert code == 0, err
    assert "NOT COMPARABLE" in out and "<==" in out


def test_leaderboard_labels_do_not_overlap():
    pytest.importorskip("matplotlib")
    from ade20k_metrics.cli import leaderboard as lb
    from ade20k_metrics.io.report import import_pyplot

    plt = import_pyplot()
    entries = [e for e in lb.with_result(lb.published(), 50.3, 60, "ours") if e.params_millions is not None]
    fig, ax = plt.subplots(figsize=(10, 7))
    try:
        xs, ys = [e.params_millions for e in entries], [e.miou for e in entries]
        ax.scatter(xs, ys)
        ax.set_xscale("log")
        ax.set_xlim(min(xs) / 1.8, max(xs) * 1.8)
        ax.set_ylim(min(ys) - 2.5, max(ys) + 2.5)
        notes = lb.place_labels(ax, list(zip(xs, ys)), [e.model for e in entries])
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        boxes = [n.get_window_extent(renderer) for n in notes]
        points = [ax.transData.transform(p) for p in zip(xs, ys)]
    finally:
        plt.close(fig)
    assert len(boxes) == len(entries)
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            assert not boxes[i].overlaps(boxes[j]), (entries[i].model, entries[j].model)
        for x, y in points:  # no label covers a point's centre
            assert not boxes[i].contains(x, y), entries[i].model


# -- small things ----------------------------------------------------------------------------------

def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"ade20k-metrics {am.__version__}"
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "Semantic-segmentation metrics" in text and "``" not in text and "compare" in text
    for command, words in (("leaderboard", "published ADE20K-150"), ("demo", "without any data")):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert words in " ".join(capsys.readouterr().out.split())


def test_reduce_zero_label_is_mmseg_name_for_the_default(tmp_path, capsys):
    # gt 0 = other (ignored), 1 -> class 0, 2 -> class 1; predictions 1-based.
    gt = np.array([[0, 1, 2, 2]], np.uint8)
    pred = np.array([[2, 1, 2, 1]], np.uint8)
    for folder, arr in (("p", pred), ("g", gt)):
        (tmp_path / folder).mkdir()
        Image.fromarray(arr).save(tmp_path / folder / "x.png")
    outs = []
    for extra in ([], ["--reduce-zero-label"]):
        code, out, err = run(["evaluate", tmp_path / "p", tmp_path / "g", "--num-classes", 2, *extra], capsys)
        assert code == 0, err
        outs.append(out)
    assert outs[0] == outs[1]
    # 3 evaluated pixels (the 0 is other): class 0 right once; class 1 once right, once called 0.
    assert "3 evaluated pixels" in outs[1]
    code, _, err = run(["evaluate", tmp_path / "p", tmp_path / "g", "--reduce-zero-label", "--gt-zero-based"], capsys)
    assert code == 2 and "contradicts" in err
    code, out, err = run(["evaluate", tmp_path / "p", tmp_path / "g", "--num-classes", 3, "--no-reduce-zero-label"],
                         capsys)
    assert code == 0 and "4 evaluated pixels" in out


def test_progress_ends_with_a_summary_line(tmp_path, capsys, monkeypatch):
    for folder in ("p", "g"):
        (tmp_path / folder).mkdir()
        for i in range(3):
            Image.fromarray(np.ones((4, 4), np.uint8)).save(tmp_path / folder / f"{i}.png")

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setitem(sys.modules, "tqdm", None)
    fake = Terminal()
    monkeypatch.setattr(sys, "stderr", fake)
    assert main(["evaluate", str(tmp_path / "p"), str(tmp_path / "g")]) == 0
    last = fake.getvalue().splitlines()[-1].split("\x1b[K")[-1]  # after the bar's erase-line
    assert last.startswith("evaluate: 3 pairs in ") and last.endswith("pairs/s)")
    capsys.readouterr()


def test_bench_spread_and_busy_warnings():
    from ade20k_metrics.cli import benchmark

    assert benchmark.spread_of([1.0, 1.0, 1.0]) == 0.0
    assert benchmark.spread_of([1.0, 2.0, 1.5]) == pytest.approx(1 / 1.5)
    calm = [benchmark.Row("d", "uint8", "batch", 1, "m", 100.0, spread=0.05)]
    noisy = [benchmark.Row("d", "uint8", "batch", 1, "m", 100.0, spread=0.6)]
    assert benchmark.busy_warnings(calm, (0.1, 4)) == []
    assert "varied by more than 25%" in benchmark.busy_warnings(noisy, (0.1, 4))[0]
    assert "load average 3.0 on 2" in benchmark.busy_warnings(calm, (3.0, 2))[0]
    table = benchmark.format_table(calm + [benchmark.Row("d", "uint8", "batch", 1, "numpy bincount", 10.0,
                                                         spread=0.5)])
    assert "| spread |" in table and "| 5% |" in table
