"""`python -m otter verify`, `scrape`, `download` and `audit`: fill a data set from the web, check its images,
and find likely label mistakes (the libraries: `otter.data.scrape`, `otter.data.download`, `otter.review.audit`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import config
from .cli_common import CliError, command, ints
from .progress import Printer


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


def add_collect_parsers(sub, opts: dict) -> None:
    download_json = '--json prints {"kept", "failed", "duplicates", "summary", "outcomes"}'
    downloading = argparse.ArgumentParser(add_help=False)
    MAX_SIDE, MAX_WORKERS, TIMEOUT = config.DOWNLOAD_MAX_SIDE, config.DOWNLOAD_WORKERS, config.DOWNLOAD_TIMEOUT
    downloading.add_argument("--workers", type=int, default=MAX_WORKERS, help=f"concurrent downloads (default {MAX_WORKERS})")
    downloading.add_argument("--timeout", type=float, default=TIMEOUT, help=f"seconds per request (default {TIMEOUT:g})")
    downloading.add_argument(
        "--max-side", type=int, default=MAX_SIDE, help=f"shrink images to this longer side (default {MAX_SIDE})"
    )
    parents = [opts["data"], downloading, opts["json"], opts["quiet"]]

    v = command(
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
    sc = command(
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
    dl = command(
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


def add_audit_parser(sub, opts: dict) -> None:
    from .model.recipes import QUICK_PRETRAINED_RECIPE, QUICK_RECIPE, both, shown

    au = command(
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
    quick = {"pretrained": QUICK_PRETRAINED_RECIPE, "scratch": QUICK_RECIPE, "small": None}
    au.add_argument(
        "--sizes", type=ints, default=None, help=f"with --method finetune: image sizes (default {both('sizes', **quick)})"
    )
    au.add_argument(
        "--epochs",
        type=ints,
        default=None,
        help=f"with --method finetune: epochs per size (default {shown(QUICK_PRETRAINED_RECIPE['epochs'])} after "
        f"{QUICK_PRETRAINED_RECIPE['frozen_epochs']} head-only; from scratch {shown(QUICK_RECIPE['epochs'])})",
    )
