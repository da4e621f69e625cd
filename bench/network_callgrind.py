"""Instructions per pixel and per change of ConfusionMatrix.update (1 thread) on network-like data.

python bench/network_callgrind.py make DIR      # writes DIR/<name>.npz (targets, preds)
valgrind --tool=callgrind --callgrind-out-file=DIR/cg.<name>.<reps> python bench/network_callgrind.py run DIR/<name>.npz <reps>
The kernel's count is the difference of two runs' totals (reps and 0), divided by reps x pixels.
"""
import sys

import numpy as np

from ade20k_metrics.cli import benchmark as b


def make(out):
    sets = {"real": b.network_real(3)}
    for d in (2, 8, 16, 40):
        sets[f"syn683_d{d}"] = b.network_synthetic(2, 384, 683, d)
    for name, (t, p) in sets.items():
        np.savez(f"{out}/{name}.npz", t=t, p=p)
        print(name, t.size, "acc %.3f" % b.pixel_accuracy(t, p),
              "changes/row t %.1f p %.1f" % (b.changes_per_row(t), b.changes_per_row(p)),
              "either %.1f" % float(((t[..., 1:] != t[..., :-1]) | (p[..., 1:] != p[..., :-1])).sum(-1).mean()))


def run(path, reps):
    from ade20k_metrics.core.confusion import ConfusionMatrix
    z = np.load(path)
    t, p = z["t"], z["p"]
    cm = ConfusionMatrix(b.K, ignore_index=b.IGNORE, n_threads=1)
    for _ in range(reps):
        for ti, pi in zip(t, p):
            cm.update(pi, ti)


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2])
    else:
        run(sys.argv[2], int(sys.argv[3]))
