"""The baseline a pretrained recipe must beat: frozen EfficientNet-Lite0 ImageNet features + logistic regression.

    python bench/runs/19-linear-probe/linear_probe.py --data ../shared/otters --folds 5

Same stratified folds as bench/recipe_search.py (StratifiedKFold, shuffle, random_state=0). Features are the
pooled 1280-d output of the last block at 224 px, inputs squished and scaled to [-1, 1] as the training does;
C is chosen inside each training fold (LogisticRegressionCV), so the validation fold is never looked at.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository root


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/otters")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--flip", action="store_true", help="average the features of the image and its mirror image")
    args = ap.parse_args()

    import numpy as np
    import timm
    import torch
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold

    from otter.data.images import load_image
    from otter.model import backbones
    from otter.model.preprocess import preprocess
    from otter.model.train import collect_items

    items, labels, classes = collect_items(args.data)
    y = np.array([classes.index(lbl) for lbl in labels])
    t0 = time.time()
    net = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0).eval()
    state = {k: v for k, v in backbones.imagenet_state_dict("efficientnet_lite0").items() if not k.startswith("classifier.")}
    net.load_state_dict(state)
    bb = backbones.get("efficientnet_lite0")
    mean, std = torch.tensor(bb.mean).view(3, 1, 1), torch.tensor(bb.std).view(3, 1, 1)
    feats = []
    with torch.inference_mode():
        for i in range(0, len(items), 32):
            x = torch.stack([preprocess(load_image(p), args.size, mean, std) for p in items[i : i + 32]])
            f = net(x)
            if args.flip:
                f = (f + net(x.flip(-1))) / 2
            feats.append(f.numpy())
    X = np.concatenate(feats)
    feat_s = time.time() - t0
    accs, nlls = [], []
    skf = StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=0)
    for tr, va in skf.split(X, y):
        clf = LogisticRegressionCV(Cs=10, max_iter=5000).fit(X[tr], y[tr])
        p = clf.predict_proba(X[va])
        accs.append(float((p.argmax(1) == y[va]).mean()))
        nlls.append(float(-np.log(np.clip(p[np.arange(len(va)), y[va]], 1e-9, 1)).mean()))
    out = {
        "name": f"linear probe {args.size}px" + (" flip" if args.flip else ""),
        "acc": float(np.mean(accs)),
        "acc_sd": float(np.std(accs)),
        "fold_acc": accs,
        "nll": float(np.mean(nlls)),
        "feature_s": round(feat_s, 1),
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
