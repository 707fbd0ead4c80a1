"""Measure 'not sure' detectors and temperature scaling in cross-validation, on synthetic unknown images only.

    python bench/ood.py [--data ../shared/otters] [--folds 3] [--sizes 64,128 --epochs 10,10]
    python bench/ood.py --model models/otters --data ../shared/otters   # check a trained model folder

Cross-validation mode: for each stratified fold, train the proxy recipe on the other folds (once as is,
once with an extra "none of these" output fed with synthetic negatives, and with --lofo once more with
negatives from only some image families, to see how it does on families it never saw). The held-out fold
is cut in two halves: temperature and the 95%-accept threshold are fitted on one half and measured on the
other, then the other way round. Unknown images are formula-generated pictures plus scrambled and
distorted *held-out* photos, with seeds distinct from the training negatives: no real photo of anything
else is used, for tuning or for measuring (the project is scored on those).

Model mode (--model): scores a model folder as shipped (its own temperature, detector and threshold):
unknown share flagged on the synthetic set, and share of DATA's photos flagged. On a model trained on all
photos the second number is the share of *training* photos flagged, a lower bound for unseen ones.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore")

from otter.data.synthetic import FAMILIES, synthetic_images  # noqa: E402
from otter.model import calibrate, ood  # noqa: E402

NONE = "__none_of_these__"  # the name otter.model.train uses
SUMMARY_KEYS = ("auroc", "flagged_unknown", "flagged_in_class", "threshold_over_train_q95")
LOFO_TRAIN = ("noise", "gradient", "stripes", "scrambled")  # --lofo: the others are never seen in training


def load_small(paths, size=160):
    from otter.data.images import load_image

    return [load_image(p).resize((size, size)) for p in paths]


def feats_logits(model, images, size, batch=64):
    """Penultimate features and logits with exactly the prediction preprocessing."""
    import torch

    from otter.config import IMAGENET_MEAN, IMAGENET_STD
    from otter.model.preprocess import preprocess

    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    model = model.eval()
    fs, ls = [], []
    for i in range(0, len(images), batch):
        x = torch.stack([preprocess(im.convert("RGB"), size, mean, std) for im in images[i : i + batch]])
        f, lg = ood.features_and_logits(model, x)
        fs.append(f.numpy())
        ls.append(lg.numpy())
    return np.concatenate(fs), np.concatenate(ls)


def train_fold(items, labels, classes, valid_idx, cfg, negatives, workdir):
    """fit_recipe on the non-held-out items, plus `negatives` (PIL images) as an extra class if given."""
    from otter.model.train import TrainRun, fit_recipe, none_last

    items, labels, classes = list(items), list(labels), list(classes)
    if negatives:
        neg_dir = Path(workdir) / NONE
        neg_dir.mkdir()
        for i, im in enumerate(negatives):
            p = neg_dir / f"neg{i:04d}.png"
            im.save(p)
            items.append(p)
            labels.append(NONE)
        classes = classes + [NONE]
    learn, _ = fit_recipe(items, labels, classes, list(valid_idx), cfg, TrainRun(None, None), workdir)
    none_last(learn)  # fastai sorts the vocabulary; the extra output must come after the real classes
    return learn.model


def evaluate_methods(n_cls, tr, va_half, te_half, unk, unk_fams):
    """All methods fitted on (train features, validation half) and measured on (test half, unknown set)."""
    out = {}
    T = calibrate.fit_temperature(va_half["logits"][:, :n_cls], va_half["y"])
    for method in ood.METHODS:
        if method == "none_class" and tr["logits"].shape[1] == n_cls:
            continue
        det = ood.fit_detector(method, n_cls, tr["feats"], tr["y"], va_half["feats"], va_half["logits"][:, :], temperature=T)
        s_in = det.scores(te_half["feats"], te_half["logits"])
        s_out = det.scores(unk["feats"], unk["logits"])
        s_tr = det.scores(tr["feats"], tr["logits"])
        flag_out = s_out > det.threshold
        out[method] = {
            # how far above the training images' own scores the held-out threshold lies: lets a model trained
            # on every image (no validation split) set its threshold from its training scores
            "threshold_over_train_q95": float(det.threshold / np.quantile(s_tr, 0.95)),
            "auroc": ood.auroc(s_in, s_out),
            "flagged_unknown": float(flag_out.mean()),
            "flagged_in_class": float((s_in > det.threshold).mean()),
            "per_family": {f: float(flag_out[unk_fams == f].mean()) for f in np.unique(unk_fams)},
        }
    z = te_half["logits"][:, :n_cls]
    cal = {
        "temperature": T,
        "ece_before": calibrate.ece(calibrate.softmax(z), te_half["y"]),
        "ece_after": calibrate.ece(calibrate.softmax(z, T), te_half["y"]),
        "nll_before": calibrate.nll(z, te_half["y"]),
        "nll_after": calibrate.nll(z, te_half["y"], T),
        "acc": float((z.argmax(1) == te_half["y"]).mean()),
    }
    return out, cal


def pooled(rows, key_fn):
    """Concatenate per-half arrays across folds for pooled metrics."""
    return np.concatenate([key_fn(r) for r in rows])


def cross_validate(args) -> dict:
    import torch
    from sklearn.model_selection import StratifiedKFold

    from otter.model.train import TrainConfig, collect_items

    torch.set_num_threads(args.threads)
    items, labels, classes = collect_items(args.data)
    y_all = np.array([classes.index(lbl) for lbl in labels])
    photos = load_small(items)
    size = args.sizes[-1]
    variants = {"plain": None, "none_class": FAMILIES}
    if args.lofo:
        variants["none_class_lofo"] = LOFO_TRAIN
    if args.variants:
        variants = {k: v for k, v in variants.items() if k in args.variants.split(",")}
    skf = StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=0)
    per_fold, t0 = [], time.time()
    for fold, (tr_idx, te_idx) in enumerate(skf.split(np.zeros(len(y_all)), y_all)):
        if args.max_folds and fold >= args.max_folds:
            break
        if args.only_fold is not None and fold != args.only_fold:
            continue
        tr_photos = [photos[i] for i in tr_idx]
        te_photos = [photos[i] for i in te_idx]
        # Unknown set: held-out photos only for the photo families, and seeds never used for training negatives.
        unk_pairs = synthetic_images(args.n_unknown, size, seed=10_000 + fold, photos=te_photos)
        unk_fams = np.array([f for f, _ in unk_pairs])
        unk_imgs = [im for _, im in unk_pairs]
        rng = np.random.default_rng(fold)
        half = np.zeros(len(te_idx), dtype=bool)
        for c in range(len(classes)):  # stratified halves of the held-out fold
            idx = np.flatnonzero(y_all[te_idx] == c)
            half[rng.permutation(idx)[: len(idx) // 2]] = True
        for name, fams in variants.items():
            cfg = TrainConfig(
                pretrained=False, arch=args.arch, sizes=args.sizes, epochs=args.epochs, mixup=0.2, seed=fold, valid_pct=0.0
            )
            negs = None
            if fams:
                n_neg = int(round(args.neg_share * len(tr_idx)))
                negs = [im for _, im in synthetic_images(n_neg, 192, seed=fold, families=fams, photos=tr_photos)]
            t = time.time()
            with tempfile.TemporaryDirectory(prefix="otter-ood-") as wd:
                model = train_fold(items, labels, classes, te_idx, cfg, negs, wd)
            train_s = time.time() - t
            tr = dict(zip(("feats", "logits"), feats_logits(model, tr_photos, size)), y=y_all[tr_idx])
            te_f, te_l = feats_logits(model, te_photos, size)
            un_f, un_l = feats_logits(model, unk_imgs, size)
            unk = {"feats": un_f, "logits": un_l}
            te = {"feats": te_f, "logits": te_l, "y": y_all[te_idx]}
            for h, (va_m, te_m) in enumerate(((half, ~half), (~half, half))):
                va_h = {k: v[va_m] for k, v in te.items()}
                te_h = {k: v[te_m] for k, v in te.items()}
                methods, cal = evaluate_methods(len(classes), tr, va_h, te_h, unk, unk_fams)
                per_fold.append({"fold": fold, "half": h, "variant": name, "methods": methods, "cal": cal, "train_s": train_s})
                if args.rows:
                    with open(args.rows, "a") as fh:
                        fh.write(json.dumps(per_fold[-1]) + "\n")
            line = "  ".join(
                f"{m} {np.mean([r['methods'][m]['auroc'] for r in per_fold[-2:]]):.2f}" for m in per_fold[-1]["methods"]
            )
            print(f"fold {fold} {name:<16} {train_s:4.0f}s acc {per_fold[-1]['cal']['acc']:.2f}  AUROC {line}", flush=True)
    return summarise(per_fold, args, time.time() - t0)


def summarise(rows, args, seconds) -> dict:
    summary = {}
    for variant in dict.fromkeys(r["variant"] for r in rows):
        rs = [r for r in rows if r["variant"] == variant]
        entry = {"methods": {}, "calibration": {}}
        for m in rs[0]["methods"]:
            vals = [r["methods"][m] for r in rs]
            fams = sorted(vals[0]["per_family"])
            entry["methods"][m] = (
                {k: float(np.mean([v[k] for v in vals])) for k in SUMMARY_KEYS if k in vals[0]}
                | {"auroc_std": float(np.std([v["auroc"] for v in vals]))}
                | {"per_family": {f: float(np.mean([v["per_family"][f] for v in vals])) for f in fams}}
            )
        for k in ("temperature", "ece_before", "ece_after", "nll_before", "nll_after", "acc"):
            entry["calibration"][k] = float(np.mean([r["cal"][k] for r in rs]))
        entry["train_s"] = float(np.mean([r["train_s"] for r in rs[::2]]))
        summary[variant] = entry
    return {
        "protocol": {
            "folds": args.folds,
            "folds_run": len({r["fold"] for r in rows}),
            "recipe": {"arch": args.arch, "sizes": list(args.sizes), "epochs": list(args.epochs), "mixup": 0.2},
            "negatives_share": args.neg_share,
            "n_unknown_per_fold": args.n_unknown,
            "unknown_set": "synthetic: " + ", ".join(FAMILIES) + " (photo families from held-out photos)",
            "lofo_train_families": list(LOFO_TRAIN) if args.lofo else None,
            "seconds": round(seconds),
        },
        "variants": summary,
    }


def check_model(args) -> dict:
    """Score a shipped model folder with its own temperature and detector."""
    from otter.data.dataset import list_images
    from otter.model.predict import Predictor

    pred = Predictor.load(args.model)
    paths = list_images(args.data)
    known = [r for r in pred.classify_batch(paths) if isinstance(r, dict)]
    photos = load_small(paths[:: max(1, len(paths) // 40)])
    unk = synthetic_images(args.n_unknown, pred.size, seed=20_000, photos=photos)
    res = pred.classify_batch([im for _, im in unk])
    flagged = np.array([not r["known"] for r in res])
    fams = np.array([f for f, _ in unk])
    s_in = np.array([r["score"] for r in known if r["score"] is not None])
    s_out = np.array([r["score"] for r in res if r["score"] is not None])
    return {
        "model": str(args.model),
        "ood": pred.meta.get("ood"),
        "calibration": pred.meta.get("calibration"),
        "flagged_data_photos": float(np.mean([not r["known"] for r in known])),
        "flagged_unknown": float(flagged.mean()),
        "per_family": {f: float(flagged[fams == f].mean()) for f in np.unique(fams)},
        "auroc_data_vs_unknown": ood.auroc(s_in, s_out) if len(s_in) and len(s_out) else None,
    }


def oof_temperature(jsonl: Path, recipe: str) -> tuple[float, dict]:
    """Temperature fitted on the out-of-fold probabilities that bench/recipe_search.py stored for `recipe`
    (softmax is unchanged by adding a constant to the logits, so log-probabilities serve as logits)."""
    rows = [r for r in map(json.loads, jsonl.read_text().splitlines()) if r["name"] == recipe]
    probs, y = [], []
    for r in rows:
        for path, p in r["oof"].items():
            probs.append(p)
            y.append(Path(path).parent.name)
    classes = sorted(set(y))
    y = np.array([classes.index(c) for c in y])
    logits = np.log(np.clip(np.array(probs), 1e-12, 1))
    rec = calibrate.calibration_record(logits, y)
    return rec["temperature"], rec | {"source": f"{len(rows)}-fold out-of-fold predictions of {recipe} ({jsonl.name})"}


def fit_shipped(args) -> dict:
    """Fit calibration and 'not sure' of a model trained on every photo, from cross-validation numbers."""
    from otter.model.honest import refit_model_folder

    rows = [json.loads(line) for line in Path(args.fit_from).read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r["variant"] == "plain" and "threshold_over_train_q95" in r["methods"][args.method]]
    ratio = float(np.median([r["methods"][args.method]["threshold_over_train_q95"] for r in rows]))
    temperature, cal = oof_temperature(Path(args.oof), args.oof_recipe)
    fallback = {
        "temperature": temperature,
        "threshold_over_train_q95": ratio,
        "source": f"cross-validation: temperature from {cal['source']}; threshold ratio, median of {len(rows)} "
        f"held-out halves of bench/ood.py ({Path(args.fit_from).name}: {args.arch} {args.sizes} px {args.epochs} epochs)",
    }
    fallback["calibration"] = {k: cal[k] for k in ("ece_before", "ece_after", "nll_before", "nll_after", "n")}
    meta = refit_model_folder(args.model, args.data, fallback, method=args.method)
    return {"fallback": fallback, "calibration": meta["calibration"], "ood": meta["ood"]}


def _ints(s: str) -> tuple[int, ...]:
    return tuple(int(x) for x in s.split(","))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/otters")
    ap.add_argument("--model", help="score this model folder instead of cross-validating")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--max-folds", type=int, default=0, help="stop after this many folds (0: all)")
    ap.add_argument("--only-fold", type=int, default=None, help="run only this fold (to spread folds over processes)")
    ap.add_argument("--variants", help="comma-separated subset of plain,none_class,none_class_lofo")
    ap.add_argument("--arch", default="xresnet18")
    ap.add_argument("--sizes", type=_ints, default=(64, 128))
    ap.add_argument("--epochs", type=_ints, default=(10, 10))
    ap.add_argument("--neg-share", type=float, default=0.5, help="synthetic negatives per training photo")
    ap.add_argument("--n-unknown", type=int, default=140)
    ap.add_argument("--lofo", action="store_true", help="also train on only some negative families")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", help="write the JSON summary here")
    ap.add_argument("--rows", help="append each fold's raw numbers to this JSON-lines file as they come")
    ap.add_argument("--summarise", metavar="ROWS", help="only summarise a --rows file")
    ap.add_argument("--fit-from", metavar="ROWS", help="with --model: fit its calibration and detector from these CV rows")
    ap.add_argument("--method", default="mahalanobis", help="with --fit-from: mahalanobis or knn")
    ap.add_argument("--oof", default=str(Path(__file__).parent / "runs" / "02-scratch-recipes-2" / "recipe_search_run2.jsonl"))
    ap.add_argument("--oof-recipe", default="xr18_norrc_mixup0.2", help="the recipe whose out-of-fold predictions give T")
    ap.add_argument("--record", action="store_true", help="merge the summary into bench/results.json under 'ood'")
    args = ap.parse_args()
    if args.fit_from:
        print(json.dumps(fit_shipped(args), indent=1))
    if args.summarise:  # from rows written so far (e.g. of an unfinished run)
        rows = [json.loads(line) for line in Path(args.summarise).read_text().splitlines() if line.strip()]
        result = summarise(rows, args, 0)
    else:
        result = check_model(args) if args.model else cross_validate(args)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    if args.record:
        from bench.common import record

        record("ood" if not args.model else "ood_model_check", result)


if __name__ == "__main__":
    main()
