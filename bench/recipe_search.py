"""Cross-validate training recipes: stratified k-fold accuracy (plain and with flip TTA) for each config.

    python bench/recipe_search.py --data ../shared/otters --configs bench/runs/NN-name/recipes.json --workers 8
        --out bench/runs/NN-name/recipe_search_runNN.jsonl

Each config is a dict of `TrainConfig` fields (plus "name"). Runs folds in parallel processes, so it
uses a many-core GPU machine well; on 2 CPU cores use --workers 1. Each run keeps its configs, its rows and the
exact command in its own folder, bench/runs/<nn>-<name>/ (bench/RESULTS.md says which run is which).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def run_fold(job):
    name, cfg_dict, fold, folds, data, threads = job
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    import tempfile

    from sklearn.model_selection import StratifiedKFold

    from otter.model.train import TrainConfig, TrainRun, collect_items, fit_recipe, predict_items

    items, labels, classes = collect_items(data)
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    _, valid_idx = list(skf.split(np.zeros(len(labels)), labels))[fold]
    cfg_dict = dict(cfg_dict)
    for k in ("sizes", "epochs"):
        if isinstance(cfg_dict.get(k), list):
            cfg_dict[k] = tuple(cfg_dict[k])
    cfg = TrainConfig(**cfg_dict)
    t = time.time()
    with tempfile.TemporaryDirectory() as wd:
        run = TrainRun(None, None)
        learn, _ = fit_recipe(items, labels, classes, list(valid_idx), cfg, run, wd)
    train_s = time.time() - t
    v_items = [items[i] for i in valid_idx]
    v_labels = [labels[i] for i in valid_idx]
    probs, _ = predict_items(learn, v_items, v_labels)
    # flip TTA: average with horizontally flipped input
    from otter.model import backbones
    from otter.model.predict import Predictor

    meta = {"classes": list(learn.dls.vocab), "input_size": cfg.sizes[-1], "normalize": backbones.get(cfg.arch).normalize}
    pred = Predictor(learn.model, meta)
    x = torch.stack([pred.tensor(p) for p in v_items])
    lp = torch.softmax(pred.logits(x), 1) + torch.softmax(pred.logits(x.flip(-1)), 1)
    probs_tta = (lp / 2).cpu().numpy()
    vocab = list(learn.dls.vocab)
    y = np.array([vocab.index(lbl) for lbl in v_labels])
    ood = _fold_ood(learn.model, cfg, items, labels, vocab, valid_idx, fold)
    return {
        "name": name,
        "config": cfg_dict,
        "fold": fold,
        "acc": float((probs.argmax(1) == y).mean()),
        "acc_tta": float((probs_tta.argmax(1) == y).mean()),
        "train_s": train_s,
        "nll": float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-9, 1)).mean()),
        "oof": {str(v_items[i]): probs[i].tolist() for i in range(len(v_items))},
        "ood": ood,
        "head_fit": run.head_fit,  # with the linear head: its C and, with flip "auto", the mirror test's ratio
    }


def _fold_ood(model, cfg, items, labels, vocab, valid_idx, fold) -> dict:
    """The "not sure" detector (Mahalanobis) of this fold's model: fitted on its training images with the threshold
    that accepts 95% of the held-out fold, as `train` fits it; how far that threshold lies above the training
    images' own 95th percentile (what a model trained on every image transfers, see otter.model.honest), and the share of
    synthetic unknown images (otter.data.synthetic) it flags."""
    import numpy as np

    from otter.data.synthetic import synthetic_images
    from otter.model import backbones, ood
    from otter.model.honest import features_logits

    size, norm = int(cfg.sizes[-1]), backbones.get(cfg.arch).normalize
    held_out = set(int(i) for i in valid_idx)
    tr_idx = [i for i in range(len(items)) if i not in held_out]
    y = np.array([vocab.index(lbl) for lbl in labels])
    tr_f, tr_l = features_logits(model, [items[i] for i in tr_idx], size, normalize=norm)
    va_f, va_l = features_logits(model, [items[i] for i in sorted(held_out)], size, normalize=norm)
    det = ood.fit_detector("mahalanobis", len(vocab), tr_f, y[tr_idx], va_f, va_l)
    unknown = [im for _, im in synthetic_images(100, size, seed=fold)]
    un_f, un_l = features_logits(model, unknown, size, normalize=norm)
    return {
        "threshold_over_train_q95": float(det.threshold / np.quantile(det.scores(tr_f, tr_l), 0.95)),
        "flagged_synthetic": float(np.mean(~det.known(un_f, un_l)[0])),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/otters")
    ap.add_argument("--configs", required=True)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="recipe_results.jsonl")
    ap.add_argument("--only-folds", default=None, help="run only these folds, e.g. 0 or 0,1 (a quick screen)")
    args = ap.parse_args()
    configs = json.loads(Path(args.configs).read_text())
    jobs = [
        (c["name"], {k: v for k, v in c.items() if k != "name"}, f, args.folds, args.data, args.threads)
        for c in configs
        for f in range(args.folds)
        if args.only_folds is None or str(f) in args.only_folds.split(",")
    ]
    results = []
    ctx = mp.get_context("spawn")
    with ctx.Pool(args.workers) as pool, open(args.out, "w") as out:
        for r in pool.imap_unordered(run_fold, jobs):
            results.append(r)
            out.write(json.dumps(r) + "\n")
            out.flush()
            print(f"{r['name']:>28} fold {r['fold']} acc {r['acc']:.3f} tta {r['acc_tta']:.3f} {r['train_s']:.0f}s", flush=True)
    import numpy as np

    print(f"\n{'recipe':>28}  {'acc':>12}  {'acc_tta':>12}  {'nll':>6}  {'train_s':>7}")
    for c in configs:
        rs = [r for r in results if r["name"] == c["name"]]
        if not rs:
            continue
        a = np.array([r["acc"] for r in rs])
        b = np.array([r["acc_tta"] for r in rs])
        print(
            f"{c['name']:>28}  {a.mean():.3f}±{a.std():.3f}  {b.mean():.3f}±{b.std():.3f}  {np.mean([r['nll'] for r in rs]):.3f}  {np.mean([r['train_s'] for r in rs]):7.0f}"
        )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
