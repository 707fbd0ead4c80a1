"""`python -m otter data ...`: curate a data set from the command line, for people who script large sets.

Every command reads or writes the catalog (`otter.data.catalog`); each change (move, trash, restore, empty-trash)
is one transaction however many images it names, so a script can move 5,000 photos in one call, and an app
running on the same folder sees all of them or none. IMAGE arguments are `class/name`; `-` reads them from
standard input, one a line. Exit status: 0 when everything named was changed, 1 when anything was not (the rest
still is; each failure is listed).
"""

from __future__ import annotations

import argparse
import json
import sys

from . import config

EPILOG = """examples:
  python -m otter data list                         # classes, counts, trash
  python -m otter data list sea --page 2 --json     # a page of one class
  python -m otter data move river/a.jpg river/b.jpg --to sea
  python -m otter data list river --per-page 0 | grep dsc | python -m otter data trash - --reason blurry
  python -m otter data list --trash
  python -m otter data restore 20260101T120000-1a2b3c4d
  python -m otter data empty-trash --yes
  python -m otter data scan                         # after editing the folders by hand
  python -m otter data export-index                 # write data/index.csv from the catalog"""


def _names(items: list[str]) -> list[str]:
    out = []
    for item in items:
        out += [line.strip() for line in sys.stdin if line.strip()] if item == "-" else [item]
    return out


def _report(args, verb: str, results: list, show=str) -> int:
    done = [{"item": str(r), "result": show(o)} for r, o in results if not isinstance(o, Exception)]
    failed = [{"item": str(r), "error": str(o)} for r, o in results if isinstance(o, Exception)]
    if args.json:
        print(json.dumps({verb: done, "failed": failed}))
    else:
        for d in done:
            print(f"{verb} {d['item']} -> {d['result']}")
        for f in failed:
            print(f"could not change {f['item']}: {f['error']}", file=sys.stderr)
        print(f"{verb} {len(done)}, failed {len(failed)}")
    return 1 if failed else 0


def cmd_list(args) -> int:
    from .data import catalog, dataset

    data = config.data_dir(args.data)
    dataset.data_root(data)
    per_page = args.per_page if args.per_page > 0 else -1
    offset = (max(1, args.page) - 1) * per_page if per_page > 0 else 0
    with catalog.connection(data) as con:
        if args.trash:
            items = [dataset.trash_item(data, i) for i in catalog.trash_items(con, per_page, offset)]
            total = catalog.trash_count(con)
            out = {"trash": items, "total": total}
            lines = [f"{i['id']}  {i['class']}/{i['name']}  ({i['reason']})" for i in items]
        elif args.cls:
            if args.cls not in catalog.classes(con, data):
                raise dataset.DatasetError(f"no class named {args.cls!r} in {data}")
            total = catalog.counts(con).get(args.cls, 0)
            q = "SELECT path, size, sha256, width, height, source, query, added FROM files WHERE class=? ORDER BY name LIMIT ? OFFSET ?"
            items = [dict(r) for r in con.execute(q, (args.cls, per_page, offset))]
            out = {"class": args.cls, "images": items, "total": total}
            lines = [i["path"] for i in items]
        else:
            counts = catalog.counts(con)
            out = {"classes": {c: counts.get(c, 0) for c in catalog.classes(con, data)}, "trash": catalog.trash_count(con)}
            lines = [f"{c}: {n}" for c, n in out["classes"].items()] + [f"trash: {out['trash']}"]
    if per_page > 0 and "total" in out:
        out |= {"page": max(1, args.page), "pages": max(1, -(-out["total"] // per_page))}
    print(json.dumps(out) if args.json else "\n".join(lines))
    return 0


def cmd_move(args) -> int:
    from .data import dataset

    data = config.data_dir(args.data)
    results = dataset.relabel_many(data, _names(args.images), args.to, origin="cli")
    return _report(args, "moved", results, lambda p: dataset.rel(data, p))


def cmd_trash(args) -> int:
    from .data import dataset

    data = config.data_dir(args.data)
    return _report(args, "trashed", dataset.trash_many(data, _names(args.images), reason=args.reason, origin="cli"))


def cmd_restore(args) -> int:
    from .data import dataset

    data = config.data_dir(args.data)
    ids = [i["id"] for i in dataset.list_trash(data)] if args.all else _names(args.ids)
    return _report(args, "restored", dataset.restore_many(data, ids, origin="cli"), lambda p: dataset.rel(data, p))


def cmd_empty(args) -> int:
    from .data import dataset

    if not args.yes:
        print("error: this deletes the trashed files for good; pass --yes to do it", file=sys.stderr)
        return 1
    n = dataset.empty_trash(config.data_dir(args.data), origin="cli")
    print(json.dumps({"deleted": n}) if args.json else f"deleted {n} files from the trash for good")
    return 0


def cmd_scan(args) -> int:
    from .data import catalog, dataset

    data = config.data_dir(args.data)
    dataset.data_root(data)
    counts = catalog.sync(data, full=True)
    print(json.dumps(counts) if args.json else ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def cmd_export_index(args) -> int:
    from .data import catalog, dataset

    data = config.data_dir(args.data)
    dataset.data_root(data)
    path = catalog.export_index(data, args.out)
    print(json.dumps({"index": str(path)}) if args.json else f"wrote {path}")
    return 0


def add_parser(sub, shared: list[argparse.ArgumentParser]) -> None:
    """`data` and its commands, under the main parser's subcommands; `shared`: the --data and --json options
    (otter.cli declares them once)."""
    d = sub.add_parser(
        "data",
        help="list, move, trash, restore and empty the trash from the command line (each change one transaction)",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dsub = d.add_subparsers(dest="data_command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return dsub.add_parser(name, help=help, parents=shared)

    ls = command("list", help="classes and counts; the images of CLASS (a page); or the trash")
    ls.add_argument("cls", nargs="?", metavar="CLASS")
    ls.add_argument("--trash", action="store_true", help="list the trash, newest first")
    ls.add_argument("--page", type=int, default=1)
    ls.add_argument("--per-page", type=int, default=0, help="images per page (default 0: all)")
    ls.set_defaults(func=cmd_list)
    mv = command("move", help="move images to another class (created if needed)")
    mv.add_argument("images", nargs="+", metavar="IMAGE", help="class/name, or - to read them from stdin")
    mv.add_argument("--to", required=True, metavar="CLASS")
    mv.set_defaults(func=cmd_move)
    tr = command("trash", help="move images to the trash (restorable)")
    tr.add_argument("images", nargs="+", metavar="IMAGE", help="class/name, or - to read them from stdin")
    tr.add_argument("--reason", default="trashed from the command line")
    tr.set_defaults(func=cmd_trash)
    rs = command("restore", help="put trashed images back (ids from `data list --trash`)")
    rs.add_argument("ids", nargs="*", metavar="ID", help="trash ids, or - to read them from stdin")
    rs.add_argument("--all", action="store_true", help="restore everything in the trash")
    rs.set_defaults(func=cmd_restore)
    em = command("empty-trash", help="delete the trashed files for good")
    em.add_argument("--yes", action="store_true", help="confirm")
    em.set_defaults(func=cmd_empty)
    sc = command("scan", help="reconcile the catalog with folders edited by hand (stats every file)")
    sc.set_defaults(func=cmd_scan)
    ex = command("export-index", help="write index.csv (file, class, source_url, query, sha256, ...)")
    ex.add_argument("--out", default=None, help="where (default: <data>/index.csv)")
    ex.set_defaults(func=cmd_export_index)
