"""`python -m otter COMMAND`: the command line over the otter package. Run a command with --help for examples."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from . import config


class CliError(Exception):
    """An expected failure: printed as one line, exit code 1."""


def _models_root(args) -> Path:
    return config.models_dir(getattr(args, "models", None))


def _resolve_model(args) -> Path:
    from .model_io import newest_model

    if args.model:
        return Path(args.model)
    return newest_model(_models_root(args))


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.replace(" ", "").split(",") if x)
    except ValueError as ex:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from ex


def _fmt_eta(seconds) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(seconds)
    return f"{seconds // 60:d}:{seconds % 60:02d}"


# -------------------------------------------------------------------------------------------- train


def cmd_train(args) -> int:
    from .train import TrainConfig, train

    epochs = args.epochs if args.epochs is None or len(args.epochs) > 1 else args.epochs[0]
    lr = None if args.lr == "find" else (float(args.lr) if args.lr is not None else TrainConfig.lr)
    cfg = TrainConfig(
        arch=args.arch,
        pretrained=args.pretrained,
        sizes=args.sizes,
        epochs=epochs,
        frozen_epochs=args.frozen_epochs,
        lr=lr,
        bs=args.bs,
        valid_pct=args.valid_pct,
        seed=args.seed,
        **({"mixup": args.mixup} if args.mixup is not None else {}),
    )
    model_dir = Path(args.model) if args.model else _models_root(args) / "model"
    data = config.data_dir(args.data)
    last_line = [0.0]

    def show(e: dict) -> None:
        if args.quiet:
            return
        t = e["type"]
        if t == "start":
            print(
                f"training on {e['n_train']} images, validating on {e['n_valid']}; classes: {', '.join(e['classes'])}",
                file=sys.stderr,
            )
        elif t == "stage":
            print(f"== {e['stage']}", file=sys.stderr)
        elif t == "lr_find":
            print(f"learning rate found: {e['lr']:.2e}", file=sys.stderr)
        elif t == "epoch":
            vals = "  ".join(
                f"{k} {v:.4f}" for k, v in e.items() if k in ("train_loss", "valid_loss", "accuracy") and v is not None
            )
            print(
                f"epoch {e['epoch']}/{e['epochs']} {e['size']}px  {vals}  elapsed {_fmt_eta(e['elapsed'])}  eta {_fmt_eta(e['eta'])}",
                file=sys.stderr,
            )
        elif t == "batch" and sys.stderr.isatty() and time.monotonic() - last_line[0] > 0.5:
            last_line[0] = time.monotonic()
            print(
                f"\r  batch {e['batch']}/{e['batches']}  {100 * e['progress']:.0f}%  eta {_fmt_eta(e['eta'])}  ",
                end="",
                file=sys.stderr,
            )

    result = train(data, cfg, model_dir, on_event=show, half=args.half)
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
                }
            )
        )
    else:
        print(f"model written to {result.model_dir}")
        if acc is not None:
            print(f"validation accuracy {acc:.3f} on {m['metrics']['n']} images")
            for c, f in m["metrics"]["per_class"].items():
                print(f"  {c:<20} precision {f['precision']:.3f}  recall {f['recall']:.3f}  n={f['support']}")
            print("confusion (rows true, columns predicted): " + json.dumps(m["confusion"]))
    return 0


# ------------------------------------------------------------------------------------------ predict


def cmd_predict(args) -> int:
    from .images import InvalidImage
    from .predict import Predictor, top_label

    predictor = Predictor.load(_resolve_model(args))
    results = predictor.predict_batch(args.images)
    out, failed = [], 0
    for path, res in zip(args.images, results):
        if isinstance(res, InvalidImage):
            failed += 1
            out.append({"image": path, "error": str(res)})
        else:
            label, prob = top_label(res)
            out.append({"image": path, "label": label, "probs": res})
    if args.json:
        print(json.dumps(out, indent=None))
    else:
        for r in out:
            if "error" in r:
                print(f"{r['image']}  error: {r['error']}")
            else:
                print(f"{r['image']}  {r['label']}  {r['probs'][r['label']]:.3f}")
    return 1 if failed == len(out) else 0


def cmd_evaluate(args) -> int:
    from .evaluate import evaluate
    from .predict import Predictor

    report = evaluate(Predictor.load(_resolve_model(args)), args.data_dir)
    if args.json:
        print(json.dumps(report))
    else:
        print(f"accuracy {report['accuracy']:.3f} on {report['n']} images ({report['model']})")
        for c, f in report["per_class"].items():
            print(f"  {c:<20} precision {f['precision']:.3f}  recall {f['recall']:.3f}  f1 {f['f1']:.3f}  n={f['support']}")
        print("confusion (rows true, columns predicted): " + json.dumps(report["confusion"]))
        for e in report["errors"]:
            print(f"  skipped {e['image']}: {e['error']}")
    return 0


def cmd_verify(args) -> int:
    from .dataset import find_duplicates, verify_folder

    data = config.data_dir(args.data)
    report = verify_folder(data)
    dups = find_duplicates(data)
    if args.json:
        print(json.dumps(report | {"duplicates": dups}))
        return 0
    for t in report["trashed"]:
        print(f"trashed {t['file']}: {t['reason']} (restore id {t['trash_id']})")
    for group in dups["exact"]:
        print("exact duplicates: " + "  ".join(group))
    for group in dups["near"]:
        print("near duplicates: " + "  ".join(group))
    print(
        f"checked {report['checked']}, ok {report['ok']}, trashed {len(report['trashed'])}, "
        f"duplicate groups {len(dups['exact'])} exact, {len(dups['near'])} near"
    )
    return 0


# ------------------------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m otter", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser(
        "train",
        help="train a model on a folder-per-class data set",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""examples:
  python -m otter train --data ../shared/otters --no-pretrained --model models/otters
  python -m otter train --sizes 64,128 --epochs 5 --lr find        # with ImageNet weights (needs internet once)
  python -m otter train --no-pretrained --sizes 32 --epochs 1 --quiet --json""",
    )
    t.add_argument("--data", help="data set folder (default: $OTTER_DATA_DIR or ./data)")
    t.add_argument("--models", help="models folder (default: $OTTER_MODELS_DIR or ./models)")
    t.add_argument("--model", help="model folder to write (default: MODELS/model)")
    t.add_argument(
        "--arch", default=None, help="resnet18/34/50 or xresnet18/34/50 (default: xresnet18 from scratch, resnet34 pretrained)"
    )
    t.add_argument("--sizes", type=_ints, default=None, help="progressive resizing, e.g. 64,128,192")
    t.add_argument("--epochs", type=_ints, default=None, help="epochs per size: one number, or one per size (e.g. 20,25,20)")
    t.add_argument("--frozen-epochs", type=int, default=1, help="head-only epochs per size (pretrained only)")
    t.add_argument("--lr", default=None, help="learning rate, or 'find' to run lr_find (default 3e-3)")
    t.add_argument("--bs", type=int, default=32, help="batch size")
    t.add_argument("--valid-pct", type=float, default=0.2, help="share of images held out for validation")
    t.add_argument("--mixup", type=float, default=None, help="MixUp alpha (0 = off)")
    t.add_argument("--seed", type=int, default=42)
    t.add_argument("--no-pretrained", dest="pretrained", action="store_false", help="train from scratch (no download)")
    t.add_argument("--half", action="store_true", help="store float16 weights (half the file size)")
    t.add_argument("--json", action="store_true", help="print the result as JSON")
    t.add_argument("--quiet", action="store_true", help="no progress on stderr")
    t.set_defaults(func=cmd_train)

    pr = sub.add_parser(
        "predict",
        help="classify images",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""examples:
  python -m otter predict photo.jpg other.png
  python -m otter predict --model models/otters --json photo.jpg""",
    )
    pr.add_argument("images", nargs="+", metavar="IMAGE")
    pr.add_argument("--model", help="model folder (default: newest in the models folder)")
    pr.add_argument("--models", help="models folder (default: $OTTER_MODELS_DIR or ./models)")
    pr.add_argument("--json", action="store_true", help='print [{"image", "label", "probs"} | {"image", "error"}]')
    pr.set_defaults(func=cmd_predict)

    ev = sub.add_parser(
        "evaluate",
        help="accuracy of a model on a folder-per-class data set",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  python -m otter evaluate --model models/otters --json ../shared/otters",
    )
    ev.add_argument("data_dir", metavar="DATA_DIR")
    ev.add_argument("--model", help="model folder (default: newest in the models folder)")
    ev.add_argument("--models", help="models folder (default: $OTTER_MODELS_DIR or ./models)")
    ev.add_argument("--json", action="store_true", help='print {"accuracy", "n", "classes", "confusion", "per_class"}')
    ev.set_defaults(func=cmd_evaluate)

    v = sub.add_parser(
        "verify",
        help="decode every image, trash broken ones, list duplicates",
        epilog="example:\n  python -m otter verify --data data",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    v.add_argument("--data", help="data set folder (default: $OTTER_DATA_DIR or ./data)")
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=cmd_verify)
    return p


EXTRA_COMMANDS = []  # (module, function) pairs that add their own sub-commands; see register()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .dataset import DatasetError
    from .evaluate import EvaluateError
    from .images import InvalidImage
    from .model_io import ModelError
    from .safepath import UnsafePath
    from .train import TrainError

    expected = (CliError, DatasetError, EvaluateError, InvalidImage, ModelError, UnsafePath, TrainError, FileNotFoundError)
    try:
        return args.func(args)
    except expected as ex:
        if getattr(args, "json", False):
            print(json.dumps({"error": str(ex)}))
        print(f"error: {ex}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
