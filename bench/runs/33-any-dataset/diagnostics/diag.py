# Ran on commit fefba3e (before train.py was split; T._fastai and T._device are now run.fastai_vision and
# run.training_device). 32 px digits at 224 px: features, scikit-learn LogisticRegressionCV, then epochs; log: diag_bf16.log
import sys
import tempfile
import time
import warnings

sys.path.insert(0, "/work/i24")
import numpy as np
import torch

from otter.model import backbones
from otter.model import train as T
from otter.model.device import autocast

warnings.simplefilter("ignore")
torch.set_num_threads(2)
prec = sys.argv[1] if len(sys.argv) > 1 else "bf16"
items, labels, classes = T.collect_items("/tmp/i24digits/train")
cfg = T.TrainConfig(precision=prec)
valid_idx = T.split_valid(len(items), cfg.valid_pct, cfg.seed)
hv = set(valid_idx)
tr = [i for i in range(len(items)) if i not in hv]
run = T.TrainRun(None, None)
wd = tempfile.mkdtemp()
fv = T._fastai()
fv.set_seed(42, reproducible=True)
with autocast(T._device(), prec):
    dls = T.make_dataloaders(items, labels, classes, valid_idx, 224, cfg, device=T._device())
    learn = T.make_learner(dls, classes, cfg, wd)
    t = time.time()
    x = T.pooled_features(learn, [items[i] for i in tr])
    xv = T.pooled_features(learn, [items[i] for i in valid_idx])
    print("features", time.time() - t, x.shape, "norm", np.linalg.norm(x, axis=1).mean(), flush=True)
    vocab = list(learn.dls.vocab)
    y = np.array([vocab.index(labels[i]) for i in tr])
    yv = np.array([vocab.index(labels[i]) for i in valid_idx])
    np.savez(f"/tmp/i24/feats_{prec}.npz", x=x, y=y, xv=xv, yv=yv)
    from sklearn.linear_model import LogisticRegressionCV

    t = time.time()
    clf = LogisticRegressionCV(Cs=10, cv=5, max_iter=5000).fit(x, y)
    print(
        "LRCV",
        time.time() - t,
        "C",
        clf.C_[:3],
        "coef norm",
        np.linalg.norm(clf.coef_),
        "max|coef|",
        np.abs(clf.coef_).max(),
        flush=True,
    )
    print("LR valid acc (sklearn)", (clf.predict(xv) == yv).mean())
    z = clf.decision_function(x)
    print("train logit range", z.min(), z.max(), "gap", (np.sort(z, 1)[:, -1] - np.sort(z, 1)[:, -2]).mean())
    np.savez(f"/tmp/i24/head_{prec}.npz", coef=clf.coef_, bias=clf.intercept_, C=clf.C_)
    last = backbones.features_and_classifier(learn.model)[1]
    with torch.no_grad():
        last.weight.copy_(torch.as_tensor(clf.coef_))
        last.bias.copy_(torch.as_tensor(clf.intercept_))
    print("validate after head", learn.validate(), flush=True)
    learn.unfreeze()
    for ep in range(3):
        t = time.time()
        learn.fit_one_cycle(1, slice(1e-5, 2e-4))
        print("epoch", ep, time.time() - t, [float(v) for v in learn.recorder.values[-1]], flush=True)
