"""Write the label maps of bench/native_ab.sh as raw uint8 files (t and p of each) into a directory.

    PYTHONPATH=python python bench/native_ab.py /tmp/ab

real0-2: the three bundled ADE20K annotations with network-like predictions (bench_network_like's
cached sets); d2/d10/d40: 683x512 synthetic maps of those densities; crop: the three cropped to
300x400 and stacked (the beyond-cache batch's data, 900 x 400 as one call); coh, ann, uni: the
`ade20k-like`, `real-annotations` and `uniform` maps of `ade20k-metrics bench`.
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_network_like as b  # noqa: E402

from ade20k_metrics.cli import benchmark as runner  # noqa: E402


def main(out: str) -> int:
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    sets, dens = b.data_sets()
    real = sets["real annotations (3 maps)"]
    maps = {f"real{i}": pair for i, pair in enumerate(real)}
    maps.update({f"d{k}": dens[k][0] for k in (2, 10, 40)})
    maps["crop"] = (np.stack([t[:300, :400] for t, _ in real]), np.stack([p[:300, :400] for _, p in real]))
    for name, make in (("coh", runner.ade20k_like), ("ann", runner.from_annotations), ("uni", runner.uniform)):
        t, p = make(1)
        maps[name] = (t[0], p[0])
    for name, (t, p) in maps.items():
        np.ascontiguousarray(t, np.uint8).tofile(d / f"{name}_t.bin")
        np.ascontiguousarray(p, np.uint8).tofile(d / f"{name}_p.bin")
        print(name, t.shape)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
