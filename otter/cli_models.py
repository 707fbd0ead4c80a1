"""`python -m otter predict`, `evaluate` and `models`: use the trained models, and choose the default one."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .cli_common import EXIT_OK, EXIT_SOME_FAILED, command, models_root, resolve_model, shared_options

PREDICT_EXIT_CODES = """exit codes:
  0  every image classified
  1  nothing printed: no model, a model that cannot be loaded, or --explain cannot write (one line on stderr)
  2  usage error (unknown option, no IMAGE)
  3  every result printed, but at least one image could not be read ("error" in its result)"""


def cmd_predict(args) -> int:
    from .data.images import InvalidImage
    from .model.predict import Predictor

    predictor = Predictor.load(resolve_model(args))
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

    report = evaluate(Predictor.load(resolve_model(args)), args.data_dir)
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


def cmd_models(args) -> int:
    from .model.default_model import delete_model, model_rows, set_default
    from .model.io import default_name, restore_model, trashed_models

    root = models_root(args)
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


def add_predict_parsers(sub, opts: dict) -> None:
    model_help = "model folder (default: the default model, see `python -m otter models`)"
    pr = command(
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
    ev = command(
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


def add_models_parser(sub, opts: dict) -> None:
    mo = command(
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
    late = shared_options(suppress=True)
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
