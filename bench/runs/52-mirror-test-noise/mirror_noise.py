"""How often the mirror test (otter.model.heads.mirror_test) leaves mirror images out on small subsets of a data set.

    python bench/runs/52-mirror-test-noise/mirror_noise.py ../shared/otters 224
    python bench/runs/52-mirror-test-noise/mirror_noise.py DIGITS/train 64   # bench/public_sets.py digits DIGITS --size 8

The frozen features (and their mirror images') of every image at SIZE px, then the test on all of them and on 20
seeded draws of 5, 10, 20 and 40 images a class; one JSON row each."""

import json
import sys
import tempfile

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[3]))
import numpy as np
import torch

from otter.model.heads import MIRROR_LIMIT, choose_c, mirror_test, pooled_features
from otter.model.train import TrainConfig, collect_items, make_dataloaders, make_learner

torch.set_num_threads(2)
items, labels, classes = collect_items(sys.argv[1])
size = int(sys.argv[2]) if len(sys.argv) > 2 else 224
cfg = TrainConfig()
dls = make_dataloaders(items, labels, classes, [], size, cfg, device=torch.device("cpu"), bs=16)
with tempfile.TemporaryDirectory() as wd:
    learn = make_learner(dls, classes, cfg, wd)
    x2 = pooled_features(learn, items, mirror="both")
vocab = sorted(set(labels))
y = np.array([vocab.index(lbl) for lbl in labels])
rows = []
full = mirror_test(x2, y, len(vocab), choose_c(x2[:, 0], y, len(vocab), 0.1)[0], 0.1)
print(json.dumps({"set": sys.argv[1], "size": size, "all": full}), flush=True)
for n in (5, 10, 20, 40):
    ratios = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        idx = np.concatenate([rng.choice(np.flatnonzero(y == k), n, replace=False) for k in range(len(vocab))])
        c, _ = choose_c(x2[idx, 0], y[idx], len(vocab), 0.1)
        ratios.append(mirror_test(x2[idx], y[idx], len(vocab), c, 0.1))
    r = np.array([t["ratio"] for t in ratios])
    z = np.array([t["z"] for t in ratios])
    row = {
        "per_class": n,
        "ratios": [round(float(v), 3) for v in r],
        "z": [float(v) for v in z],
        "max_ratio": round(float(r.max()), 3),
        "max_z": float(z.max()),
        "above_ratio": int((r > MIRROR_LIMIT).sum()),
        "left_out": int(sum(t["other_classes"] for t in ratios)),
    }
    rows.append(row)
    print(json.dumps(row), flush=True)
