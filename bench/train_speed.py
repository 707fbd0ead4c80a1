"""Training speed: images/second of `otter train` (fastai, our data pipeline, augmentation, MixUp) against a
bare PyTorch loop on pre-made tensors with the same model, data, size, batch size and optimiser.

    python bench/train_speed.py [--size 128] [--epochs 4] [--arch xresnet18] [--precision auto]

Both train the same 80% split and validate on the other 20% every epoch, in the same precision (float32,
or bfloat16 autocast where `--precision` resolves to bf16); the first epoch of each is warm-up and not
counted. Printed as a ratio measured in this run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore")

import torch  # noqa: E402

from bench.common import record  # noqa: E402
from otter.config import IMAGENET_MEAN, IMAGENET_STD, PRECISION_CHOICES  # noqa: E402
from otter.data.images import load_image  # noqa: E402
from otter.model.device import autocast  # noqa: E402
from otter.model.io import build_model  # noqa: E402
from otter.model.preprocess import preprocess  # noqa: E402
from otter.model.train import TrainConfig, TrainRun, collect_items, fit_recipe, split_valid, training_precision  # noqa: E402


def otter_speed(items, labels, classes, valid_idx, cfg, precision: str) -> float:
    marks = []

    def on_event(e):
        if e.type == "epoch":
            marks.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as wd:
        fit_recipe(items, labels, classes, valid_idx, cfg, TrainRun(on_event, None), wd, precision)
    n_train = len(items) - len(valid_idx)
    return n_train * (len(marks) - 1) / (marks[-1] - marks[0])


def bare_speed(items, labels, classes, valid_idx, cfg, precision: str) -> float:
    size = cfg.sizes[0]
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    x = torch.stack([preprocess(load_image(p), size, mean, std) for p in items])  # pre-made: decoded, resized, normalised once
    y = torch.tensor([classes.index(lbl) for lbl in labels])
    valid = torch.zeros(len(items), dtype=torch.bool)
    valid[valid_idx] = True
    xt, yt, xv, yv = x[~valid], y[~valid], x[valid], y[valid]
    model = build_model({"arch": cfg.arch, "classes": classes}).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    steps = cfg.epochs_per_size()[0] * ((len(xt) + cfg.bs - 1) // cfg.bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    marks = []
    with autocast(torch.device("cpu"), precision):
        for _ in range(cfg.epochs_per_size()[0]):
            model.train()
            for idx in torch.randperm(len(xt)).split(cfg.bs):
                loss = loss_fn(model(xt[idx]), yt[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
            model.eval()
            with torch.no_grad():
                correct = sum(
                    int((model(xv[i : i + cfg.bs]).argmax(1) == yv[i : i + cfg.bs]).sum()) for i in range(0, len(xv), cfg.bs)
                )
            assert 0 <= correct <= len(yv)
            marks.append(time.perf_counter())
    return len(xt) * (len(marks) - 1) / (marks[-1] - marks[0])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/otters")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--arch", default="xresnet18")
    ap.add_argument("--precision", choices=PRECISION_CHOICES, default="auto")
    args = ap.parse_args()
    items, labels, classes = collect_items(args.data)
    cfg = TrainConfig(pretrained=False, arch=args.arch, sizes=(args.size,), epochs=args.epochs, precision=args.precision)
    precision = training_precision(cfg)
    valid_idx = split_valid(len(items), cfg.valid_pct, cfg.seed)
    bare = bare_speed(items, labels, classes, valid_idx, cfg, precision)
    ours = otter_speed(items, labels, classes, valid_idx, cfg, precision)
    ratio = ours / bare
    print(
        f"{args.arch} {args.size}px bs {cfg.bs} {precision}: otter train {ours:.1f} img/s, bare PyTorch loop {bare:.1f} img/s, ratio {ratio:.2f}"
    )
    record(
        f"train_speed_{args.size}_{precision}",
        {
            "arch": args.arch,
            "precision": precision,
            "size": args.size,
            "otter_img_s": ours,
            "bare_img_s": bare,
            "ratio": ratio,
            "threads": torch.get_num_threads(),
        },
    )


if __name__ == "__main__":
    main()
