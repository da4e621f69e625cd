"""What a pause before a warm update costs on this VM (issue 19): ours on the three real maps after nothing,
numpy, torchmetrics, a 2 ms and a 20 ms sleep, or a 20 ms busy loop, then 0, 1 or 5 untimed calls of ours;
medians of 21 rounds.

    PYTHONPATH=python python bench/pause_effect.py
"""
import sys, time, statistics, numpy as np
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
import bench_network_like as b
sets, dens = b.data_sets()
real = sets["real annotations (3 maps)"]; n = b.pixels(real)
o = b.ours(1)
def rounds(others, warmups=1, r=21):
    ts = []
    for _ in range(r):
        for f in others: f(real)
        for _ in range(warmups): o(real)
        s = time.perf_counter(); o(real); ts.append(time.perf_counter() - s)
    return f"{n / statistics.median(ts) / 1e6:,.0f}"
for label, others in (("nothing", []), ("numpy", [b.numpy_bincount]), ("tm", [b.torchmetrics_confmat]), ("sleep 2ms", [lambda _: time.sleep(0.002)]), ("sleep 20ms", [lambda _: time.sleep(0.02)]), ("busy 20ms", [lambda _: [sum(range(1000)) for _ in range(600)]])):
    print(label, "warmups 0:", rounds(others, 0), " 1:", rounds(others, 1), " 5:", rounds(others, 5), flush=True)
