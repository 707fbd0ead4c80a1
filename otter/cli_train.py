"""`python -m otter train`: train a model on a folder-per-class data set (the library: `otter.model.train`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from . import config
from .cli_common import command, ints, models_root
from .model import backbones
from .progress import Printer


def cmd_train(args) -> int:
    from .model.events import calibration_line, kept_line, mirror_line
    from .model.recipes import recipe_line
    from .model.train import RECIPE, TrainConfig, train

    epochs = args.epochs if args.epochs is None or len(args.epochs) > 1 else args.epochs[0]
    lr = None if args.lr == "find" else (float(args.lr) if args.lr is not None else RECIPE)
    cfg = TrainConfig(
        arch=args.arch,
        pretrained=args.pretrained,
        sizes=args.sizes,
        epochs=epochs,
        frozen_epochs=args.frozen_epochs,
        head=args.head,
        lr=lr,
        bs=args.bs,
        valid_pct=args.valid_pct,
        seed=args.seed,
        precision=args.precision,
        **({"mixup": args.mixup} if args.mixup is not None else {}),
    )
    from .model.default_model import default_model_name, keep_default

    data = config.data_dir(args.data)
    model_dir = Path(args.model) if args.model else models_root(args) / default_model_name(data, models_root(args))
    from .model.distributed import ranks

    replacing = (model_dir / "model.json").exists()
    if ranks().is_main:
        keep_default(model_dir.parent)  # the new model does not become the default by being the newest
        if replacing and not args.quiet:
            print(f"{model_dir.name} exists: when this training finishes it goes to the models trash", file=sys.stderr)
    result = train(data, cfg, model_dir, on_event=Printer(args.quiet), half=args.half)
    if not ranks().is_main:  # the other processes of an `accelerate launch` job: rank 0 reports
        return 0
    m = result.meta
    acc = m["metrics"]["accuracy"]
    if args.json:
        print(
            json.dumps(
                {
                    "model": str(result.model_dir),
                    "accuracy": acc,
                    "per_class": m["metrics"]["per_class"],
                    "confusion": m["confusion"],
                    "classes": m["classes"],
                    "train_seconds": m["train_seconds"],
                    "kept": m.get("kept"),
                    "calibration": m.get("calibration"),
                    "recipe": m.get("recipe"),
                    "head_fit": m.get("head_fit"),
                }
            )
        )
    else:
        print(f"model written to {result.model_dir}")
        if replacing:
            print(f"the model it replaced is in the models trash: python -m otter models restore {model_dir.name} --as OLD_NAME")
        said = (recipe_line(m.get("recipe")), mirror_line(m.get("head_fit")), kept_line(m.get("kept")))
        for line in (*said, calibration_line(m.get("calibration"))):
            if line:
                print(line)
        if acc is not None:
            print(f"validation accuracy {acc:.3f} on {m['metrics']['n']} images")
            for c, f in m["metrics"]["per_class"].items():
                print(f"  {c:<20} precision {f['precision']:.3f}  recall {f['recall']:.3f}  n={f['support']}")
            print("confusion (rows true, columns predicted): " + json.dumps(m["confusion"]))
    return 0


def add_parser(sub, opts: dict) -> None:
    from .model.recipes import both

    t = command(
        sub,
        "train",
        "train a model on a folder-per-class data set",
        """examples:
  python -m otter train --data ../shared/otters --model models/my-otters  # EfficientNet-Lite0, ImageNet weights, offline
  python -m otter train --sizes 128 --epochs 3 --lr find
  python -m otter train --no-pretrained --sizes 64,128,192          # xresnet18 from scratch
  python -m otter train --no-pretrained --sizes 32 --epochs 1 --quiet --json

--json prints {"model", "accuracy", "per_class", "confusion", "classes", "train_seconds", "kept", "calibration",
"recipe", "head_fit"}""",
        [opts["data"], opts["models"], opts["json"], opts["quiet"]],
        cmd_train,
    )
    t.add_argument(
        "--model",
        help="model folder to write (default: MODELS/<classes>-<date>, as the app names models); "
        "a model already there goes to the models trash",
    )
    t.add_argument(
        "--arch",
        default=None,
        choices=backbones.NAMES,
        help=f"default: {backbones.PRETRAINED_DEFAULT}, or {backbones.SCRATCH_DEFAULT} with --no-pretrained. "
        + backbones.arch_help(),
    )
    t.add_argument("--sizes", type=ints, default=None, help=f"image sizes, progressive resizing (default {both('sizes')})")
    t.add_argument(
        "--epochs", type=ints, default=None, help=f"epochs per size: one number, or one per size (default {both('epochs')})"
    )
    t.add_argument(
        "--head",
        choices=("linear", "fastai"),
        default=None,
        help="linear (pretrained default): one layer fitted exactly by logistic regression on the frozen features before "
        "fine-tuning; fastai: fastai's two-layer head trained by SGD (the from-scratch default)",
    )
    t.add_argument(
        "--frozen-epochs", type=int, default=None, help=f"head-only SGD epochs per size (default {both('frozen_epochs')})"
    )
    t.add_argument("--lr", default=None, help=f"learning rate, or 'find' to run lr_find (default {both('lr')})")
    t.add_argument("--bs", type=int, default=None, help=f"batch size (default {both('bs')})")
    t.add_argument("--valid-pct", type=float, default=0.2, help="share of images held out for validation (default 0.2)")
    t.add_argument("--mixup", type=float, default=None, help=f"MixUp alpha, 0 = off (default {both('mixup')})")
    t.add_argument("--seed", type=int, default=42, help="seed of the validation split and of training (default 42)")
    t.add_argument(
        "--precision",
        choices=config.PRECISION_CHOICES,
        default="auto",
        help=f"auto (default; ${config.PRECISION_ENV} overrides it): bfloat16 autocast on CPUs with native bf16 "
        "(~1.7x faster), else float32",
    )
    t.add_argument(
        "--no-pretrained", dest="pretrained", action="store_false", help="train from scratch (xresnet18 unless --arch)"
    )
    t.add_argument("--half", action="store_true", help="store float16 weights (half the file size)")
