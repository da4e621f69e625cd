"""What runs just before a per-image update changes its rate (issue 19): ours back to back, after writing
2 MiB (beyond the L2), after writing 64 MiB (beyond the L3), after a 2 ms sleep; 21 interleaved rounds.

    PYTHONPATH=python python bench/order_effect.py
"""
import sys, os, time
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
import numpy as np, bench_network_like as b
sets, dens = b.data_sets()
real = sets["real annotations (3 maps)"]; n = b.pixels(real)
junk = np.ones(8 << 20, np.uint8)  # 8 MiB
def evict_l2(_):  # writes 2 MiB: more than Zen 4's 1 MiB L2, within the L3
    junk[:2 << 20] += 1
def evict_l3(_):  # writes 64 MiB: beyond the L3
    big[:] += 1
big = np.ones(64 << 20, np.uint8)
def idle(_):
    time.sleep(0.002)
print("load", os.getloadavg()[0])
for label, other in [("after ours (back to back)", None), ("after 2 MiB written", evict_l2), ("after 64 MiB written", evict_l3), ("after 2 ms sleep", idle)]:
    fns = [b.ours(1)] + ([other] if other else [])
    (t, *_), _ = b.side_by_side(fns, real, 21)
    print(f"{label:28s} ours {n/t/1e6:7,.0f} Mpix/s")
print("load", os.getloadavg()[0])
