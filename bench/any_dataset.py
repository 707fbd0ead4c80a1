"""Default training on public data sets that ship inside packages, against simple baselines in the same run.

    python bench/any_dataset.py --out bench/runs/33-any-dataset/rows.jsonl [--set digits|animals] [--size 8]
        [--threads 1] [--configs '{"name": {...TrainConfig fields...}}']

For each set (bench/public_sets.py writes it: 60 training and 40 test pictures a class; scikit-learn's digits, 8 px,
or Animal-MNIST's silhouettes, 28 px):
- "default": `python -m otter train --data <set>/train` with the defaults (80/20 validation split inside the 600),
  in its own process under /usr/bin/time (wall time, peak memory), then `python -m otter evaluate <set>/test`;
  further rows for each of --configs (TrainConfig fields through bench/any_dataset.py's own entry point);
- "lr-features": logistic regression on the frozen EfficientNet-Lite0 features (224 px, no fine-tuning) of all
  600 training pictures (C chosen as the fitted head chooses it: otter.model.heads.choose_c);
- "lr-pixels": logistic regression on the raw pixel values (scaled to 0..1), C = 1 (scikit-learn's default).
Accuracy on the 400 test pictures; one JSON row each. Timings on a shared 2-core machine are noisy: compare rows of
the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def timed(cmd: list[str], env: dict) -> tuple[str, float, float]:
    """(stdout, wall seconds, peak resident memory in GB) of `cmd` under /usr/bin/time -v."""
    t = time.monotonic()
    p = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.monotonic() - t
    if p.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1))
    return p.stdout, wall, rss / 1024**2


def train_row(name: str, data: Path, work: Path, env: dict, cfg: dict | None) -> dict:
    model = work / f"model-{name}"
    if cfg is None:
        cmd = [sys.executable, "-m", "otter", "train", "--data", str(data / "train"), "--model", str(model), "--json"]
    else:
        cmd = [sys.executable, str(Path(__file__)), "--train-one", json.dumps(cfg), str(data / "train"), str(model)]
    out, wall, gb = timed(cmd, env)
    trained = json.loads(out.strip().splitlines()[-1])
    ev = subprocess.run(
        [sys.executable, "-m", "otter", "evaluate", str(data / "test"), "--model", str(model), "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=True,
    )
    report = json.loads(ev.stdout.strip().splitlines()[-1])
    meta = json.loads((model / "model.json").read_text())
    return {
        "method": name,
        "config": cfg or "defaults",
        "test_accuracy": report["accuracy"],
        "test_ece": report.get("ece"),
        "valid_accuracy": trained["accuracy"],
        "seconds": round(wall, 1),
        "peak_gb": round(gb, 2),
        "kept": meta.get("kept"),
        "recipe": meta.get("recipe"),  # small pictures: the frozen features' held-out log-loss at each size, the choice
        "head_fit": meta.get("head_fit"),
        "calibration": {k: meta["calibration"].get(k) for k in ("temperature", "fitted", "skipped", "n", "errors")},
        "history": [{k: h.get(k) for k in ("stage", "epoch", "train_loss", "valid_loss", "accuracy")} for h in meta["history"]],
    }


def lr_features_row(sets: dict) -> dict:
    import numpy as np
    import torch

    from otter.model import backbones
    from otter.model.heads import choose_c, fit_logistic
    from otter.model.honest import features_logits

    t = time.monotonic()
    model = backbones.build("efficientnet_lite0", 2, head="linear")
    backbones.load_imagenet_weights(model, "efficientnet_lite0")
    norm = backbones.get("efficientnet_lite0").normalize
    with torch.no_grad():
        x = {k: features_logits(model, [p for p, _ in v], 224, normalize=norm)[0].astype(np.float64) for k, v in sets.items()}
    names = sorted({lbl for v in sets.values() for _, lbl in v})
    y = {k: np.array([names.index(lbl) for _, lbl in v]) for k, v in sets.items()}
    c, _ = choose_c(x["train"], y["train"], 10)
    w, b = fit_logistic(x["train"], y["train"], 10, c)
    acc = float(((x["test"] @ w.T + b).argmax(1) == y["test"]).mean())
    return {"method": "lr-features", "C": c, "test_accuracy": acc, "seconds": round(time.monotonic() - t, 1)}


def lr_pixels_row(pixels: dict) -> dict:
    from sklearn.linear_model import LogisticRegression

    t = time.monotonic()
    (x, y), (xt, yt) = pixels["train"], pixels["test"]
    top = max(float(x.max()), 1.0)  # the pixels scaled to 0..1 (digits have 16 grey levels, the others 256)
    clf = LogisticRegression(max_iter=5000).fit(x / top, y)
    return {"method": "lr-pixels", "test_accuracy": float(clf.score(xt / top, yt)), "seconds": round(time.monotonic() - t, 1)}


def train_one(cfg_json: str, data: str, model: str) -> None:
    from otter.model.train import TrainConfig, train

    cfg = json.loads(cfg_json)
    for k in ("sizes", "epochs"):
        if isinstance(cfg.get(k), list):
            cfg[k] = tuple(cfg[k])
    r = train(data, TrainConfig(**cfg), model)
    print(json.dumps({"accuracy": r.meta["metrics"]["accuracy"]}))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--train-one":
        return train_one(*sys.argv[2:5])
    from public_sets import SETS, animals, digits

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--set", default="digits", choices=list(SETS))
    ap.add_argument("--size", type=int, help="picture size written (default the set's own: digits 8, animals 28)")
    ap.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of the training process")
    ap.add_argument("--configs", default="{}", help='further recipes: {"name": {TrainConfig fields}}')
    ap.add_argument("--skip-default", action="store_true")
    ap.add_argument("--skip-baselines", action="store_true", help="no logistic regression rows (already measured)")
    a = ap.parse_args()

    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="otter-bench-") as tmp:
        work = Path(tmp)
        a.size = a.size or SETS[a.set]
        d = (digits if a.set == "digits" else animals)(work / "data", size=a.size)
        common = {"set": a.set, "size": a.size, "n_train": len(d["train"]), "n_test": len(d["test"]), "threads": a.threads}
        runs = [] if a.skip_default else [("default", None)]
        runs += list(json.loads(a.configs).items())
        rows = [lambda: lr_pixels_row(d["pixels"]), lambda: lr_features_row({k: d[k] for k in ("train", "test")})]
        rows = [] if a.skip_baselines else rows
        rows += [lambda n=n, c=c: train_row(n, work / "data", work, env, c) for n, c in runs]
        for make in rows:
            row = common | make() | {"date": time.strftime("%Y-%m-%d %H:%M")}
            print(json.dumps({k: v for k, v in row.items() if k != "history"}), flush=True)
            with a.out.open("a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
