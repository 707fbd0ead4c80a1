"""`python -m otter COMMAND`: the command line over the otter package. Run a command with --help for examples."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import cli_data, config
from .errors import BadInput, describe
from .model import backbones
from .progress import Printer, parse_ints

# Exit codes, the same for every command (README "Command line"); EXIT_SOME_FAILED is predict's alone.
EXIT_OK = 0
EXIT_ERROR = 1  # an OtterError (no model, a missing folder, a bad value): one line on stderr; a bug: traceback, then a line
EXIT_USAGE = 2  # argparse's: an unknown option, a missing argument
EXIT_SOME_FAILED = 3  # predict: every result printed, but at least one image could not be read
EXIT_INTERRUPTED = 130

PREDICT_EXIT_CODES = """exit codes:
  0  every image classified
  1  nothing printed: no model, a model that cannot be loaded, or --explain cannot write (one line on stderr)
  2  usage error (unknown option, no IMAGE)
  3  every result printed, but at least one image could not be read ("error" in its result)"""


class CliError(BadInput):
    """Options that do not go together, or a file named on the command line that is not there."""


def _models_root(args) -> Path:
    return config.models_dir(getattr(args, "models", None))


def _resolve_model(args) -> Path:
    from .model.io import default_model

    if args.model:
        return Path(args.model)
    return default_model(_models_root(args))


def _ints(text: str) -> tuple[int, ...]:
    try:
        return parse_ints(text)
    except ValueError as ex:
        raise argparse.ArgumentTypeError(str(ex)) from ex


# -------------------------------------------------------------------------------------------- train


def cmd_train(args) -> int:
    from .model.events import calibration_line, kept_line
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
    model_dir = Path(args.model) if args.model else _models_root(args) / default_model_name(data, _models_root(args))
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
                }
            )
        )
    else:
        print(f"model written to {result.model_dir}")
        if replacing:
            print(f"the model it replaced is in the models trash: python -m otter models restore {model_dir.name} --as OLD_NAME")
        for line in (kept_line(m.get("kept")), calibration_line(m.get("calibration"))):
            if line:
                print(line)
        if acc is not None:
            print(f"validation accuracy {acc:.3f} on {m['metrics']['n']} images")
            for c, f in m["metrics"]["per_class"].items():
                print(f"  {c:<20} precision {f['precision']:.3f}  recall {f['recall']:.3f}  n={f['support']}")
            print("confusion (rows true, columns predicted): " + json.dumps(m["confusion"]))
    return 0


# ------------------------------------------------------------------------------------------ predict


def cmd_predict(args) -> int:
    from .data.images import InvalidImage
    from .model.predict import Predictor

    predictor = Predictor.load(_resolve_model(args))
    results = predictor.classify_batch(args.images)
    out, failed = [], 0
    for path, res in zip(args.images, results):
        if isinstance(res, InvalidImage):
            failed += 1
            out.append({"image": path, "error": str(res)})
        else:
            out.append({"image": path, "label": res["label"], "probs": res["probs"], "known": res["known"]})
            if not res["known"]:
                out[-1]["message"] = res["message"]
    if args.explain:
        _write_explanations(predictor, args, out)
    if args.json:
        print(json.dumps(out, indent=None))
    else:
        for r in out:
            if "error" in r:
                print(f"{r['image']}  error: {r['error']}")
            elif not r["known"]:
                print(f"{r['image']}  {r['message']}  ({r['label']} {r['probs'][r['label']]:.3f})")
            else:
                print(f"{r['image']}  {r['label']}  {r['probs'][r['label']]:.3f}")
    return EXIT_SOME_FAILED if failed else EXIT_OK


def _write_explanations(predictor, args, out: list[dict]) -> None:
    """--explain OUT_DIR: one Grad-CAM overlay PNG per readable image, its path added to the image's result."""
    from .model.explain import write_overlays

    written = write_overlays(predictor, args.images, args.explain)  # ExplainError: a one-line OtterError
    for r, dest in zip(out, written):
        if "error" not in r and isinstance(dest, Path):
            r["overlay"] = str(dest)
    if not args.json:
        print(f"where the model looked: {sum('overlay' in r for r in out)} overlay(s) in {args.explain}", file=sys.stderr)


def cmd_evaluate(args) -> int:
    from .data.seen import summary_line
    from .model.evaluate import evaluate
    from .model.predict import Predictor

    report = evaluate(Predictor.load(_resolve_model(args)), args.data_dir)
    if args.json:
        print(json.dumps(report))
    else:
        print(f"accuracy {report['accuracy']:.3f} on {report['n']} images ({report['model']})")
        for c, f in report["per_class"].items():
            print(f"  {c:<20} precision {f['precision']:.3f}  recall {f['recall']:.3f}  f1 {f['f1']:.3f}  n={f['support']}")
        print("confusion (rows true, columns predicted): " + json.dumps(report["confusion"]))
        print(summary_line(report["seen"], report["n"]))
        if report.get("ece") is not None:
            print(
                f"calibration error (ECE, 15 bins) {report['ece']:.3f} (before temperature scaling {report['ece_before']:.3f}; "
                f"a perfectly calibrated model would measure about {report['ece_noise_floor']:.3f} on {report['n']} images); "
                f"'not sure' for {100 * (report['unknown_rate'] or 0):.1f}% of the images"
            )
        for e in report["errors"]:
            print(f"  skipped {e['image']}: {e['error']}")
    return 0


def cmd_verify(args) -> int:
    from .data.dataset import verify_folder
    from .review.similar import find_duplicates

    data = config.data_dir(args.data)
    report = verify_folder(data)
    dups = find_duplicates(data, progress=Printer())
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


# --------------------------------------------------------------------------------- scrape, download


def _download_kwargs(args) -> dict:
    return {"max_workers": args.workers, "timeout": args.timeout, "max_side": args.max_side}


def _finish_download(args, result, found: int | None = None) -> int:
    line = result.summary_line()
    if args.json:
        report = result.to_dict()
        print(json.dumps(({"found": found} if found is not None else {}) | report))
        print(line, file=sys.stderr)
    else:
        print(line)
    return 0


def cmd_scrape(args) -> int:
    from .data import scrape
    from .data.download import download_images
    from .data.safepath import check_name

    cls = check_name(args.cls, "class name")
    queries = args.query or [cls]
    if args.variants:
        queries = [v for q in queries for v in scrape.queries_for_class(q)]
    hits = scrape.search_many(queries, args.max, region=args.region, safesearch=args.safesearch)  # SearchError: one line
    if args.search_only:
        for h in hits:
            print(h["url"])
        return 0
    if not args.quiet:
        print(
            f"{len(hits)} images found for {', '.join(repr(q) for q in queries)}; downloading into class {cls!r}", file=sys.stderr
        )
    data = config.data_dir(args.data)
    result = download_images(hits, data / cls, progress=Printer(args.quiet), **_download_kwargs(args))
    return _finish_download(args, result, found=len(hits))


def cmd_download(args) -> int:
    from .data.download import download_images, read_url_file
    from .data.safepath import check_name

    cls = check_name(args.cls, "class name")
    if not Path(args.urls_file).is_file():
        raise CliError(f"no URL file {args.urls_file!r}")
    urls = read_url_file(args.urls_file)
    if not args.quiet:
        print(f"{len(urls)} URLs in {args.urls_file}; downloading into class {cls!r}", file=sys.stderr)
    data = config.data_dir(args.data)
    result = download_images(urls, data / cls, query=args.query, progress=Printer(args.quiet), **_download_kwargs(args))
    return _finish_download(args, result)


def cmd_audit(args) -> int:
    from .review.audit import audit, quick_config, quick_recipe

    finetune = args.method == "finetune"
    if not finetune and (args.sizes or args.epochs or args.pretrained is not None):
        raise CliError("--sizes, --epochs and --pretrained/--no-pretrained set the networks of --method finetune")
    pretrained = args.pretrained is not False
    overrides = {"pretrained": pretrained}
    if args.sizes:
        overrides["sizes"] = args.sizes
        if not args.epochs:
            overrides["epochs"] = quick_recipe(pretrained)["epochs"][0]
    if args.epochs:
        overrides["epochs"] = args.epochs if len(args.epochs) > 1 else args.epochs[0]
    data = config.data_dir(args.data)
    cfg = quick_config(**overrides) if finetune else None
    result = audit(
        data,
        folds=args.folds,
        seed=args.seed,
        config=cfg,
        progress=Printer(),
        models_dir=args.models,
        method=args.method,
    )
    from .model.distributed import ranks

    if not ranks().is_main:  # the other processes of an `accelerate launch` job: rank 0 reports
        return 0
    if args.json:
        keys = ("image", "label", "suggested", "score", "flagged", "reason")
        print(json.dumps([{k: r[k] for k in keys} for r in result.rows]))
        return 0
    acc = result.meta["accuracy"]
    print(
        f"audited {len(result.rows)} images in {result.meta['seconds']:.0f}s ({args.folds}-fold out-of-fold accuracy of the "
        f"{'fine-tuned networks' if finetune else 'heads on the embeddings'} "
        f"{acc:.3f}); {len(result.flagged)} flagged, most suspect first (paths relative to {data}):"
    )
    for r in result.flagged:
        same = f"  same as {', '.join(r['same_as'])}" if r["same_as"] else ""
        print(f"  {r['image']}  label {r['label']}  suggested {r['suggested']}  score {r['score']:.3f}  ({r['reason']}){same}")
    print(f"saved to {config.state_dir(data) / 'audit.csv'}")
    return 0


# ------------------------------------------------------------------------------------------- models


def cmd_models(args) -> int:
    from .model.default_model import delete_model, model_rows, set_default
    from .model.io import default_name, restore_model, trashed_models

    root = _models_root(args)
    if args.action == "default":
        name = set_default(root, args.name)
        print(json.dumps({"default": name}) if args.json else f"default model: {name} (Predict, /predict, predict)")
        return 0
    if args.action == "restore":
        dest = restore_model(root, args.name, args.as_name)
        print(json.dumps({"restored": str(dest)}) if args.json else f"restored {dest}")
        return 0
    if args.action == "trash":
        rows = trashed_models(root)
        if args.json:
            print(json.dumps(rows))
        for r in [] if args.json else rows:
            print(f"{r['name']}  (trashed {r['id'][:15]}, id {r['id']})")
        if not rows and not args.json:
            print("the models trash is empty")
        return 0
    if args.action == "delete":
        dest = delete_model(root, args.name)
        default = default_name(root)
        if args.json:
            print(json.dumps({"deleted": args.name, "trash": str(dest), "default": default}))
        else:
            print(f"moved {args.name} to {dest} (move it back to restore it); default model: {default or 'none left'}")
        return 0
    rows = model_rows(root)
    if args.json:
        print(json.dumps(rows))
    elif not rows:
        print(f"no model in {root} yet; train one: python -m otter train")
    else:
        width = max(len(r["name"]) for r in rows)
        for r in rows:
            acc = f"{r['accuracy']:.1%}" if r["accuracy"] is not None else "–"
            created = (r["created"] or "")[:16].replace("T", " ")
            mark = "*" if r["default"] else " "
            print(f"{mark} {r['name']:<{width}}  {acc:>6}  {r['size_mb']:>6.1f} MB  {created}")
        print("* the default model (Predict, /predict, predict and evaluate without --model)")
    return 0


# ------------------------------------------------------------------------------------------- parser


def _shared_options(suppress: bool = False) -> dict[str, argparse.ArgumentParser]:
    """--data, --models, --json and --quiet, declared once and given to each command by argparse's `parents=`.
    `suppress`: for a sub-command's sub-command, where the option may also come after the action and an absent
    one must not reset what the command got."""
    default = {"default": argparse.SUPPRESS} if suppress else {}
    options = {}
    for name, flag, kwargs in (
        ("data", "--data", {"help": f"data set folder (default: ${config.DATA_DIR_ENV} or ./data)"}),
        ("models", "--models", {"help": f"models folder (default: ${config.MODELS_DIR_ENV} or ./models)"}),
        ("json", "--json", {"action": "store_true", "help": "print the result as JSON (its shape: see below)"}),
        ("quiet", "--quiet", {"action": "store_true", "help": "no progress on stderr"}),
    ):
        parent = argparse.ArgumentParser(add_help=False)
        parent.add_argument(flag, **kwargs, **default)
        options[name] = parent
    return options


def _command(sub, name: str, help: str, epilog: str, parents: list[argparse.ArgumentParser], func) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help, epilog=epilog, parents=parents, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=func)
    return p


def _train_parser(sub, opts: dict) -> None:
    from .model.recipes import both

    t = _command(
        sub,
        "train",
        "train a model on a folder-per-class data set",
        """examples:
  python -m otter train --data ../shared/otters --model models/my-otters  # EfficientNet-Lite0, ImageNet weights, offline
  python -m otter train --sizes 128 --epochs 3 --lr find
  python -m otter train --no-pretrained --sizes 64,128,192          # xresnet18 from scratch
  python -m otter train --no-pretrained --sizes 32 --epochs 1 --quiet --json

--json prints {"model", "accuracy", "per_class", "confusion", "classes", "train_seconds"}""",
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
    t.add_argument("--sizes", type=_ints, default=None, help=f"image sizes, progressive resizing (default {both('sizes')})")
    t.add_argument(
        "--epochs", type=_ints, default=None, help=f"epochs per size: one number, or one per size (default {both('epochs')})"
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


def _predict_parsers(sub, opts: dict) -> None:
    model_help = "model folder (default: the default model, see `python -m otter models`)"
    pr = _command(
        sub,
        "predict",
        "classify images",
        """examples:
  python -m otter predict photo.jpg other.png
  python -m otter predict --model models/otters --json photo.jpg
  python -m otter predict --explain overlays photo.jpg     # writes overlays/photo.png

--json prints [{"image", "label", "probs", "known"} | {"image", "error"}]

"""
        + PREDICT_EXIT_CODES,
        [opts["models"], opts["json"]],
        cmd_predict,
    )
    pr.add_argument("images", nargs="+", metavar="IMAGE")
    pr.add_argument("--model", help=model_help)
    pr.add_argument(
        "--explain",
        metavar="OUT_DIR",
        help='also write where the model looked (Grad-CAM overlay) as OUT_DIR/<image name>.png; JSON gets "overlay"',
    )
    ev = _command(
        sub,
        "evaluate",
        "accuracy of a model on a folder-per-class data set",
        """Says how many of the images the model trained on and validated on (from the content hashes training
records in model.json) and scores the ones it never saw separately; for a model trained before hashes were
recorded, that the overlap is unknown.
example:
  python -m otter evaluate --model models/otters --json ../shared/otters

--json prints {"accuracy", "n", "classes", "confusion", "per_class", "ece", "ece_before", "ece_noise_floor",
  "unknown_rate", "seen": {"known", "n_train", "n_valid", "n_unseen", "unseen_accuracy"} or {"known": false, "reason"}}""",
        [opts["models"], opts["json"]],
        cmd_evaluate,
    )
    ev.add_argument("data_dir", metavar="DATA_DIR")
    ev.add_argument("--model", help=model_help)


def _models_parser(sub, opts: dict) -> None:
    mo = _command(
        sub,
        "models",
        "list the models, choose the default one, delete one",
        """The default model answers when none is named: the Predict tab, the /predict API, and predict and
evaluate without --model. A new training does not replace it; choose it here or in the Train tab.
examples:
  python -m otter models                       # name, accuracy, size and date; * marks the default
  python -m otter models --json                # [{"name", "accuracy", "size_mb", "created", "default"}]
  python -m otter models default otters        # make otters the default model
  python -m otter models delete river-sea-2026-11-29   # to the models trash (MODELS/.trash/<id>/<name>/)
  python -m otter models trash                 # what the models trash holds (deleted and replaced models)
  python -m otter models restore river-sea-2026-11-29  # back from the trash (--as NEW_NAME if the name is taken)""",
        [opts["models"], opts["json"]],
        cmd_models,
    )
    mo.set_defaults(action=None)
    late = _shared_options(suppress=True)
    mo_sub = mo.add_subparsers(dest="action", metavar="{default,delete,trash,restore}")
    actions = (
        ("default", "make NAME the default model"),
        ("delete", "move model NAME to the models trash"),
        ("trash", "list the models trash (deleted and replaced models)"),
        ("restore", "bring model NAME (or trash id) back from the models trash"),
    )
    for action, text in actions:
        sp = mo_sub.add_parser(action, help=text, description=text, parents=[late["models"], late["json"]])
        if action != "trash":
            sp.add_argument("name", metavar="NAME")
        if action == "restore":
            sp.add_argument("--as", dest="as_name", metavar="NEW_NAME", help="restore under another name")


def _collect_parsers(sub, opts: dict) -> None:
    download_json = '--json prints {"kept", "failed", "duplicates", "summary", "outcomes"}'
    downloading = argparse.ArgumentParser(add_help=False)
    MAX_SIDE, MAX_WORKERS, TIMEOUT = config.DOWNLOAD_MAX_SIDE, config.DOWNLOAD_WORKERS, config.DOWNLOAD_TIMEOUT
    downloading.add_argument("--workers", type=int, default=MAX_WORKERS, help=f"concurrent downloads (default {MAX_WORKERS})")
    downloading.add_argument("--timeout", type=float, default=TIMEOUT, help=f"seconds per request (default {TIMEOUT:g})")
    downloading.add_argument(
        "--max-side", type=int, default=MAX_SIDE, help=f"shrink images to this longer side (default {MAX_SIDE})"
    )
    parents = [opts["data"], downloading, opts["json"], opts["quiet"]]

    v = _command(
        sub,
        "verify",
        "decode every image, trash broken ones, list exact copies and look-alikes (from the embeddings)",
        """example:
  python -m otter verify --data data

--json prints {"checked", "ok", "trashed", "duplicates": {"exact", "near"}}""",
        [opts["data"], opts["json"]],
        cmd_verify,
    )
    del v
    sc = _command(
        sub,
        "scrape",
        "search the web for images and download them into a class",
        """examples:
  python -m otter scrape sea "sea otter" --max 100
  python -m otter scrape river "river otter" --variants     # also "river otter photo", "… close up", …
  python -m otter scrape sea "sea otter" --search-only > urls.txt   # list URLs, download nothing

"""
        + download_json,
        parents,
        cmd_scrape,
    )
    sc.add_argument("cls", metavar="CLASS")
    sc.add_argument("query", metavar="QUERY", nargs="*", help="search text (default: the class name); several allowed")
    sc.add_argument("--max", type=int, default=100, help="images to find in all (default 100)")
    sc.add_argument("--variants", action="store_true", help="search several phrasings of each query")
    sc.add_argument("--region", default="wt-wt", help="search region, e.g. us-en (default: none)")
    sc.add_argument("--safesearch", default="moderate", choices=("on", "moderate", "off"))
    sc.add_argument("--search-only", action="store_true", help="print the image URLs found (a URL file) and stop")
    dl = _command(
        sub,
        "download",
        "download a list of image URLs into a class",
        """URLS_FILE has one URL per line; blank lines and lines starting with # are skipped.
examples:
  python -m otter download sea urls.txt
  python -m otter download river river.txt --query "river otter" --json

"""
        + download_json,
        parents,
        cmd_download,
    )
    dl.add_argument("cls", metavar="CLASS")
    dl.add_argument("urls_file", metavar="URLS_FILE")
    dl.add_argument("--query", default=None, help="recorded in data/index.csv as where the URLs came from")


def _audit_parser(sub, opts: dict) -> None:
    from .model.recipes import QUICK_PRETRAINED_RECIPE, QUICK_RECIPE, both, shown

    au = _command(
        sub,
        "audit",
        "find likely label mistakes and cross-class duplicates (k-fold out-of-fold predictions)",
        """examples:
  python -m otter audit --data ../shared/otters          # heads on cached embeddings: a minute first, then seconds
  python -m otter audit --folds 3 --json > suspects.json     # every image, most suspect first
  python -m otter audit --method finetune                    # fine-tune 5 EfficientNet-Lite0 networks (minutes)
  python -m otter audit --method finetune --no-pretrained    # from-scratch xresnet18 networks (slower, rougher)
  python -m otter audit --method finetune --sizes 32 --epochs 3 --folds 2   # a rough fine-tuned audit

The audit holds the training lock of the models folder (--models), so it never runs beside a training.
--json prints every image, most suspect first: [{"image", "label", "suggested", "score", "flagged", "reason"}]""",
        [opts["data"], opts["models"], opts["json"]],
        cmd_audit,
    )
    au.add_argument("--folds", type=int, default=5, help="number of cross-validation folds (models trained; default 5)")
    au.add_argument("--seed", type=int, default=0, help="seed of the fold split and of training (default 0)")
    au.add_argument(
        "--method",
        choices=("embeddings", "finetune"),
        default="embeddings",
        help="embeddings (default): logistic-regression heads on the pretrained network's cached embeddings; "
        "finetune: train one network per fold (minutes)",
    )
    au.add_argument(
        "--pretrained",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="with --method finetune: EfficientNet-Lite0 networks fine-tuned from ImageNet weights (the default; shipped, "
        "works offline); --no-pretrained: xresnet18 from scratch",
    )
    quick = {"pretrained": QUICK_PRETRAINED_RECIPE, "scratch": QUICK_RECIPE}
    au.add_argument(
        "--sizes", type=_ints, default=None, help=f"with --method finetune: image sizes (default {both('sizes', **quick)})"
    )
    au.add_argument(
        "--epochs",
        type=_ints,
        default=None,
        help=f"with --method finetune: epochs per size (default {shown(QUICK_PRETRAINED_RECIPE['epochs'])} after "
        f"{QUICK_PRETRAINED_RECIPE['frozen_epochs']} head-only; from scratch {shown(QUICK_RECIPE['epochs'])})",
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m otter", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    opts = _shared_options()
    _train_parser(sub, opts)
    _predict_parsers(sub, opts)
    _models_parser(sub, opts)
    cli_data.add_parser(
        sub, [opts["data"], opts["json"]]
    )  # python -m otter data list|move|trash|restore|empty-trash|scan|export-index
    _collect_parsers(sub, opts)
    _audit_parser(sub, opts)
    return p


def main(argv: list[str] | None = None) -> int:
    config.quiet_dependency_warnings()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except Exception as ex:  # an OtterError is its one line; anything else: the traceback, then a line saying so
        from .model import distributed

        if distributed.peer_failure(ex):  # another process of the job failed and says why: one line, not N
            return EXIT_ERROR
        message = describe(ex)
        if distributed.launched():
            message = f"process {distributed.world_rank()} of {distributed.world_size()}: {message}"
        if getattr(args, "json", False):
            print(json.dumps({"error": message}))
        print(f"error: {message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
