"""Prediction speed: our Predictor vs fastai's learn.predict vs a bare model(x) forward (the floor).

    python bench/predict_speed.py [--model models/otters] [--data ../shared/otters]

One image and a batch of 32, median of many runs, all measured in this run on this machine.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from bench.common import median_time, record  # noqa: E402
from otter.data.images import load_image  # noqa: E402
from otter.model.io import load_model  # noqa: E402
from otter.model.predict import Predictor  # noqa: E402
from otter.model.train import TrainConfig, collect_items, make_dataloaders  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/otters")
    ap.add_argument("--data", default="../shared/otters")
    ap.add_argument("--repeat", type=int, default=60)
    args = ap.parse_args()
    import fastai.vision.all as fv

    pred = Predictor.load(args.model)  # precision "auto": bf16 on CPUs with native bf16, else fp32
    pred32 = pred if pred.precision == "fp32" else Predictor.load(args.model, precision="fp32")
    plain, _ = load_model(args.model)  # the model as saved: what fastai and the bare forward run
    size = pred.size
    items, labels, classes = collect_items(args.data)
    cfg = TrainConfig(pretrained=False, bs=32)
    dls = make_dataloaders(items, labels, classes, list(range(0, len(items), 5)), size, cfg, device=pred.device)
    learn = fv.Learner(dls, plain, loss_func=fv.CrossEntropyLossFlat())
    learn.remove_cb(fv.ProgressCallback)
    one = items[0]
    batch = items[:32]
    x1 = pred.tensor(one)[None]
    x32 = torch.stack([pred.tensor(p) for p in batch])

    def bare(x):
        with torch.inference_mode():
            plain(x)

    def decode_resize(p):
        im = load_image(p).resize((size, size), Image.BILINEAR)
        return torch.from_numpy(np.asarray(im).copy())

    with learn.no_bar(), learn.no_logging():
        r = {
            "image_size": size,
            "arch": pred.meta["arch"],
            "threads": torch.get_num_threads(),
            "precision": pred.precision,
            "one_ours_ms": 1e3 * median_time(lambda: pred.predict(one), args.repeat),
            "one_ours_fp32_ms": 1e3 * median_time(lambda: pred32.predict(one), args.repeat),
            "one_fastai_ms": 1e3 * median_time(lambda: learn.predict(one), args.repeat),
            "one_bare_forward_ms": 1e3 * median_time(lambda: bare(x1), args.repeat),
            "one_decode_ms": 1e3 * median_time(lambda: decode_resize(one), args.repeat),
            "batch32_ours_ms": 1e3 * median_time(lambda: pred.predict_batch(batch), max(3, args.repeat // 6)),
            "batch32_ours_fp32_ms": 1e3 * median_time(lambda: pred32.predict_batch(batch), max(3, args.repeat // 6)),
            "batch32_fastai_ms": 1e3
            * median_time(lambda: learn.get_preds(dl=learn.dls.test_dl(batch, bs=32)), max(3, args.repeat // 6)),
            "batch32_bare_forward_ms": 1e3 * median_time(lambda: bare(x32), max(3, args.repeat // 6)),
            "batch32_decode_ms": 1e3 * median_time(lambda: [decode_resize(p) for p in batch], max(3, args.repeat // 6)),
        }
    for n in ("one", "batch32"):
        floor = r[f"{n}_bare_forward_ms"] + r[f"{n}_decode_ms"]
        r[f"{n}_speedup_vs_fastai"] = r[f"{n}_fastai_ms"] / r[f"{n}_ours_ms"]
        r[f"{n}_vs_floor"] = r[f"{n}_ours_ms"] / floor
        print(
            f"{n:>8}: ours {r[f'{n}_ours_ms']:.1f} ms ({pred.precision}; fp32 {r[f'{n}_ours_fp32_ms']:.1f} ms), learn.predict/get_preds {r[f'{n}_fastai_ms']:.1f} ms, "
            f"bare forward {r[f'{n}_bare_forward_ms']:.1f} ms + decode {r[f'{n}_decode_ms']:.1f} ms"
        )
        print(
            f"{n:>8}: {r[f'{n}_speedup_vs_fastai']:.2f}x faster than fastai; {r[f'{n}_vs_floor']:.2f}x of bare forward + decode"
        )
    record("predict", r)


if __name__ == "__main__":
    main()
