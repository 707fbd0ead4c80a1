"""Curation actions as the app offers them: on many images at once, each returning a sentence that says what
changed. Views of a data set (gallery items, counts, trash, look-alikes; the review in `review_view`, the export in
`export_view`) as plain lists and tables.
Built on `dataset`; no Gradio here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from .. import config
from ..data import catalog, dataset, intake
from ..data.safepath import check_name
from ..errors import OtterError, escape_md
from ..review import similar

# The export and the review views live in their own modules; the app and scripts find them here too.
from .export_view import EXPORT_DIR as EXPORT_DIR
from .export_view import export_view as export_view
from .export_view import export_zip as export_zip
from .review_view import REVIEW_CORNER as REVIEW_CORNER
from .review_view import review_cell as review_cell
from .review_view import review_confusion as review_confusion
from .review_view import review_key as review_key
from .review_view import review_keys_legend as review_keys_legend
from .review_view import review_table as review_table

PAGE_SIZE = 60  # images per gallery page: a page of thumbnails stays quick to load and to scan
SELECTION_SHOWN = 12  # selected images named in the selection line; the rest are counted
URL_LIMIT = 200  # URLs one paste may download (as many as one web search): keeps a public app polite


def counts_markdown(root: os.PathLike | str) -> str:
    """'river: 120 · sea: 125 · trash: 3' (or how to start when there are no classes); from the catalog."""
    counts = dataset.class_counts(root) if Path(root).is_dir() else {}
    if not counts:
        return "No classes yet: add a class below, then upload images into it (or use Web search)."
    parts = [f"**{escape_md(c)}**: {n}" for c, n in counts.items()]
    parts.append(f"trash: {dataset.trash_count(root)}")
    return f"{sum(counts.values())} images · " + " · ".join(parts)


def class_images(root: os.PathLike | str, cls: str | None) -> list[str]:
    """`class/name` of every image in one class, [] for no or unknown class."""
    if not cls or not Path(root).is_dir():
        return []
    with catalog.connection(root) as con:
        return catalog.images(con, cls) if cls in catalog.classes(con, root) else []


def class_page(
    root: os.PathLike | str, cls: str | None, page: int | None, per_page: int = PAGE_SIZE
) -> tuple[list[str], int, int, int]:
    """(the `class/name`s on `page` of a class, that page clamped to the pages there are, how many pages, how many
    images): one page read from the catalog, whatever the class's size."""
    if not cls or not Path(root).is_dir():
        return [], 1, 1, 0
    with catalog.connection(root) as con:
        total = catalog.counts(con).get(cls, 0) if cls in catalog.classes(con, root) else 0
        pages = max(1, -(-total // per_page))
        page = min(max(1, int(page or 1)), pages)
        return catalog.images(con, cls, per_page, (page - 1) * per_page) if total else [], page, pages, total


def trash_page(root: os.PathLike | str, page: int | None, per_page: int = PAGE_SIZE) -> tuple[list[dict], int, int, int]:
    """(the trashed items on `page`, newest first, the page, how many pages, how many items)."""
    total = dataset.trash_count(root)
    pages = max(1, -(-total // per_page))
    page = min(max(1, int(page or 1)), pages)
    return dataset.list_trash(root, per_page, (page - 1) * per_page) if total else [], page, pages, total


def page_of(items: list, page: int | None, per_page: int = PAGE_SIZE) -> tuple[list, int, int]:
    """(the items on `page`, that page clamped to the pages there are, how many pages): pages count from 1, and an
    empty list has one (empty) page."""
    pages = max(1, -(-len(items) // per_page))
    page = min(max(1, int(page or 1)), pages)
    return items[(page - 1) * per_page : page * per_page], page, pages


def page_line(page: int, pages: int, total: int, noun: str = "image") -> str:
    """'page 2 of 5 · 270 images' (or just the count when everything fits on one page)."""
    count = f"{total} {noun}{'s' if total != 1 else ''}"
    return f"page {page} of {pages} · {count}" if pages > 1 else count


def toggle(selection: list[str], item: str) -> list[str]:
    """`selection` with `item` added, or removed when it was there (a click on a selected image unselects it)."""
    return [s for s in selection if s != item] if item in selection else [*selection, item]


def selection_line(selection: list[str], noun: str = "image") -> str:
    """'**3 selected**: river/a.jpg, river/b.jpg, sea/c.jpg' (the first SELECTION_SHOWN, then how many more)."""
    if not selection:
        return f"Nothing selected: click {noun}s in the gallery to select them (click again to unselect)."
    shown = ", ".join(escape_md(s) for s in selection[:SELECTION_SHOWN])
    more = f" and {len(selection) - SELECTION_SHOWN} more" if len(selection) > SELECTION_SHOWN else ""
    return f"**{len(selection)} selected**: {shown}{more}"


def selection_marks(galleries: dict[str, list[str]], selection: list[str]) -> str:
    """A `<style>` that outlines every selected image in the given galleries ({elem_id: the items shown, in
    order}): Gradio's gallery outlines only the image clicked last, whatever is selected."""
    chosen = set(selection)
    rules = [
        f'#{gallery_id} button[aria-label^="Thumbnail {i} of "]'
        for gallery_id, shown in galleries.items()
        for i, item in enumerate(shown, start=1)
        if item in chosen
    ]
    return f"<style>{', '.join(rules)} {{{SELECTED_STYLE}}}</style>" if rules else ""


SELECTED_STYLE = "outline: 4px solid var(--color-accent); outline-offset: -4px"


def gallery(root: os.PathLike | str, rels: list[str]) -> list[tuple[str, str]]:
    """(path, caption) pairs for a gallery of `class/name` images."""
    return [(str(Path(root) / r), r.split("/", 1)[1]) for r in rels]


def _said(results: list, verb: str, show=lambda image, outcome: image) -> str:
    done = [show(r, o) for r, o in results if not isinstance(o, Exception)]
    failed = [f"{r} ({o})" for r, o in results if isinstance(o, Exception)]
    msg = f"{verb} {len(done)} image{'s' if len(done) != 1 else ''}"
    if done:
        msg += ": " + ", ".join(escape_md(d) for d in done[:10]) + (f" and {len(done) - 10} more" if len(done) > 10 else "")
    if failed:
        msg += f". Could not change {len(failed)}: " + "; ".join(escape_md(f) for f in failed[:5])
    return msg + "."


NOTHING_SELECTED = "Nothing selected: click images in the gallery (or tick them in the list) first."


def delete(root: os.PathLike | str, rels: list[str], reason: str = "deleted in the app") -> str:
    """Move images to the trash, in one transaction; returns what changed (restore them from the trash view)."""
    if not rels:
        return NOTHING_SELECTED
    try:
        results = dataset.trash_many(root, list(rels), reason=reason)
    except OtterError as ex:
        return f"Could not move anything to the trash: {escape_md(ex)}"
    return _said(results, "Moved to the trash") + " Restore them from the Trash view."


def move(root: os.PathLike | str, rels: list[str], new_class: str | None) -> str:
    """Relabel images into `new_class` (created if needed), in one transaction."""
    if not new_class:
        return "Choose the class to move the images to."
    if not rels:
        return NOTHING_SELECTED
    try:
        results = dataset.relabel_many(root, list(rels), new_class)
    except OtterError as ex:
        return f"Could not move anything: {escape_md(ex)}"
    return _said(results, "Moved", lambda r, dest: f"{r} → {dataset.rel(root, dest)}")


def trash_items(root: os.PathLike | str, ids: list[str] | None = None) -> list[dict]:
    """Every trashed item, newest first; or only those with the given ids (read by id, not the whole trash)."""
    if ids is None:
        return dataset.list_trash(root)
    with catalog.connection(root) as con:
        found = {i["id"]: i for i in catalog.trash_by_id(con, ids)}
    return [dataset.trash_item(Path(root), found[i]) for i in ids if i in found]


def trash_label(item: dict) -> str:
    """'sea/img.jpg (deleted in the app)' for a trashed image."""
    return f"{item['class']}/{item['name']} ({item.get('reason', '')})"


def trash_gallery(items: list[dict]) -> list[tuple[str, str]]:
    return [(i["path"], f"{i['class']}/{i['name']}") for i in items]


def empty_trash_prompt(n: int) -> str:
    """The confirmation's wording, with the number of files (`n`) it would delete."""
    return f"I understand this deletes {n} file{'s' if n != 1 else ''} for good" if n else "The trash is empty"


def empty_trash(root: os.PathLike | str, confirmed: bool, expected: int | None = None) -> str:
    """Delete everything in the trash for good, only when `confirmed`; when `expected` (the count the user was
    shown) no longer matches, nothing is deleted and the user confirms again."""
    n = dataset.trash_count(root)
    if not n and not (Path(root) / dataset.TRASH).is_symlink():  # a symlinked trash is listed empty, and refused
        return "The trash is already empty."
    if not confirmed:
        return f'Nothing deleted: tick "I understand this deletes {n} files for good" first.'
    if expected is not None and expected != n:
        return f"Nothing deleted: the trash changed meanwhile and now holds {n} files. Check it, then confirm again."
    try:
        gone = dataset.empty_trash(root)
    except OtterError as ex:
        return f"Could not empty the trash: {escape_md(ex)}"
    return f"Deleted {gone} file{'s' if gone != 1 else ''} from the trash for good."


def restore(root: os.PathLike | str, ids: list[str]) -> str:
    """Put trashed images back, in one transaction."""
    if not ids:
        return "Nothing selected in the trash."
    try:
        results = dataset.restore_many(root, list(ids))
    except OtterError as ex:
        return f"Could not restore: {escape_md(ex)}"
    done = [dataset.rel(root, o) for _, o in results if not isinstance(o, Exception)]
    failed = [str(o) for _, o in results if isinstance(o, Exception)]
    msg = f"Restored {len(done)} image{'s' if len(done) != 1 else ''}" + (
        ": " + ", ".join(escape_md(d) for d in done[:10]) if done else ""
    )
    if failed:
        msg += ". Could not restore: " + "; ".join(escape_md(f) for f in failed[:5])
    return msg + "."


def add_class(root: os.PathLike | str, name: str) -> str:
    try:
        existed = (Path(root) / name.strip()).is_dir() if name and "/" not in name else False
        path = dataset.add_class(root, name)
    except OtterError as ex:
        return f"Cannot add class: {escape_md(ex)}"
    name = escape_md(path.name)
    return f"Class **{name}** already exists." if existed else f"Added class **{name}**."


def upload(root: os.PathLike | str, cls: str | None, files: list[os.PathLike | str] | None) -> str:
    """Copy uploaded files into a class, verifying each and skipping images already in the data set; says what
    was added, skipped and refused ("Added 37 images to **sea**; skipped 83 already in the data set: 80 in river, 3 in sea.")."""
    if not cls:
        return "Choose (or add) a class to upload into first."
    if not files:
        return "No files to add."
    if len(files) > config.MAX_FILES_PER_REQUEST:
        return f"⚠️ {len(files)} files: at most {config.MAX_FILES_PER_REQUEST} per upload (the app's limit, OTTER_MAX_FILES). Nothing was added."
    try:
        result = intake.add_images(root, cls, list(files))
    except OtterError as ex:
        return f"Cannot upload: {escape_md(ex)}"
    added, dups, rejected = result["added"], result["duplicates"], result["rejected"]
    msg = f"Added {len(added)} image{'s' if len(added) != 1 else ''} to **{escape_md(cls)}**"
    if dups:
        where = ", ".join(f"{n} in {escape_md(c)}" for c, n in sorted(intake.duplicates_by_class(dups).items()))
        msg += f"; skipped {len(dups)} already in the data set: {where}"
    if rejected:
        msg += f"; refused {len(rejected)}: " + "; ".join(r["reason"] for r in rejected[:5])
    return msg + "."


def add_urls(
    root: os.PathLike | str,
    cls: str | None,
    text: str | None,
    allow_private: bool = False,
    progress: Callable | None = None,
    **download_options,
) -> str:
    """Download pasted image URLs (one a line; blank lines and `#` comments skipped) into a class, the way
    `python -m otter download` does (`otter.data.download.download_images`: size and type checks, duplicates of any
    class skipped, images trashed before refused). Says what was kept and, per URL, what failed."""
    from ..data.download import download_images, parse_url_lines

    if not cls or not str(cls).strip():
        return "Choose (or add) a class to add the images to first."
    urls = parse_url_lines(text or "")
    if not urls:
        return "Paste image URLs first, one a line."
    if len(urls) > URL_LIMIT:
        return f"Too many URLs ({len(urls)}): paste at most {URL_LIMIT} at a time."
    try:
        name = check_name(str(cls), "class name")
        result = download_images(
            urls, Path(root) / name, query="pasted", progress=progress, allow_private=allow_private, **download_options
        )
    except OtterError as ex:
        return f"Cannot add the URLs: {escape_md(ex)}"
    msg = (
        f"Added {len(result.kept)} image{'s' if len(result.kept) != 1 else ''} to **{escape_md(name)}**: {result.summary_line()}."
    )
    problems = [o for o in result.outcomes if o.status != "kept"]
    problems.sort(key=lambda o: urls.index(o.url) if o.url in urls else len(urls))
    for o in problems[:20]:
        why = f"duplicate of {o.file}" if o.status == "duplicate" else o.reason + (f" ({o.detail})" if o.detail else "")
        msg += f"\n- {o.url}: {why}"
    if len(problems) > 20:
        msg += f"\n- and {len(problems) - 20} more"
    return msg


# ---------------------------------------------------------------------------------------- duplicates


def duplicates_table(root: os.PathLike | str, groups: dict | None = None) -> pd.DataFrame:
    """One row per duplicate group: kind (exact/near), the image kept, the extras to trash. `groups` as
    `similar.groups` gives them; computed (embeddings included) when not given."""
    groups = groups if groups is not None else similar.find_duplicates(root)
    rows = [
        {"kind": kind, "keep": g[0], "extras": ", ".join(g[1:]), "n": len(g)} for kind in ("exact", "near") for g in groups[kind]
    ]
    return pd.DataFrame(rows, columns=["kind", "keep", "extras", "n"])


def duplicate_images(table: pd.DataFrame) -> list[str]:
    """Every image of the groups in `table`, group by group, the kept one first."""
    out: list[str] = []
    for _, row in (table if table is not None else pd.DataFrame()).iterrows():
        out += [row["keep"], *[e.strip() for e in str(row["extras"]).split(",") if e.strip()]]
    return out


def trash_duplicates(root: os.PathLike | str, table: pd.DataFrame) -> str:
    """Move the extras of every group of exact copies to the trash (the first image of each group stays).
    Look-alike groups are left alone: they can join different photos of one scene, so they are checked pair
    by pair (`trash_lookalike`)."""
    if table is None or table.empty:
        return "No duplicate groups to clean: press Find look-alikes first."
    exact = table[table["kind"] == "exact"]
    moved, failed = 0, []
    for _, row in exact.iterrows():
        for extra in [e.strip() for e in str(row["extras"]).split(",") if e.strip()]:
            try:
                dataset.move_to_trash(root, extra, reason=f"exact duplicate of {row['keep']}")
                moved += 1
            except OtterError as ex:
                failed.append(f"{extra} ({ex})")
    msg = f"Moved {moved} exact cop{'ies' if moved != 1 else 'y'} to the trash (one image of each group kept)"
    if failed:
        msg += "; skipped " + "; ".join(failed[:5])
    if len(exact) < len(table):
        msg += ". Look-alike groups are not trashed in bulk: check them pair by pair above"
    return msg + ". Restore from the Trash view if needed."


# ---------------------------------------------------------------------------------------- look-alikes


def lookalike_summary(pairs: pd.DataFrame, groups: pd.DataFrame) -> str:
    """The Duplicates tab's line once the pairs are listed: how many look-alikes and groups there are."""
    if pairs.empty:
        return "No pairs yet: press **Find look-alikes**."
    n = int((pairs["look-alike"] == "yes").sum())
    g = len(groups)
    found = f"{n} look-alike pair{'s' if n != 1 else ''} and {g} group{'s' if g != 1 else ''} of copies"
    return f"{found}. The table lists the most similar pairs, look-alikes first; click one to see it."


PAIRS_SHOWN = 100  # most similar pairs listed in Curate › Duplicates
PAIR_COLUMNS = ["left", "left class", "right", "right class", "score", "look-alike", "hash bits"]


def lookalike_views(root: os.PathLike | str) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(pairs table, groups table, a line on what is missing) from the cached embeddings only: images without
    an embedding yet are left out (the app's Find look-alikes computes them first)."""
    from ..review.embeddings import NOT_YET, embed_folder

    emb = embed_folder(root, compute_missing=False)
    # An image without its perceptual hash yet (a cache from before hashes) is only half searched.
    missing = sum(reason == NOT_YET for reason in emb.failed.values()) + sum(sha not in emb.phash for sha in emb.sha256)
    note = f"{missing} image{'s' if missing != 1 else ''} not searched yet: press Find look-alikes." if missing else ""
    # The candidate pairs are searched once per content of the data set and kept (similar.candidates): a warm
    # open reads the catalog and the kept arrays, no image and no search.
    return pairs_table(similar.top_pairs(emb, root, PAIRS_SHOWN)), duplicates_table(root, similar.groups(emb, root)), note


def more_like_this(root: os.PathLike | str, image: str | None) -> dict:
    """The images most like `image` (class/file), from the cached embeddings only (nothing is computed here):
    {"items": [(path, "class/file · similarity")] for a gallery, "images": their class/file names, "line": what the
    list is, "missing": how many images have no embedding yet (the caller computes them, then asks again)}."""
    from ..review.embeddings import NOT_YET, embed_folder

    if not image:
        return {"items": [], "images": [], "line": "Click an image to see the images most like it.", "missing": 0}
    if not (Path(root) / image).is_file():
        return {"items": [], "images": [], "line": f"{image} is no longer in the data set.", "missing": 0}
    emb = embed_folder(root, compute_missing=False)
    missing = sum(reason == NOT_YET for reason in emb.failed.values())
    found = similar.neighbours(emb, image)
    if image in emb.failed and emb.failed[image] != NOT_YET:
        line = f"{image} cannot be read ({emb.failed[image]})."
    elif image in emb.failed:
        line = f"**More like {image}**: its embedding is not computed yet."
    else:
        line = f"**More like {image}**, most similar first (click one to select it)."
        if missing:
            line += f" {missing} image{'s' if missing != 1 else ''} not compared yet."
    items = [(str(Path(root) / n["image"]), f"{n['image']} · {n['similarity']:.2f}") for n in found]
    return {"items": items, "images": [n["image"] for n in found], "line": line, "missing": missing}


def pairs_table(pairs: list[dict], limit: int = PAIRS_SHOWN) -> pd.DataFrame:
    """The most similar pairs as `similar.pairs` gives them: look-alikes first and, among them and among the rest,
    pairs filed under different classes first (one of the two is mislabelled, or both are the same photo),
    then the highest score. "hash bits": how far apart their perceptual hashes are, when close enough to count."""
    rows = [
        {
            "left": p["a"],
            "left class": p["a"].split("/", 1)[0],
            "right": p["b"],
            "right class": p["b"].split("/", 1)[0],
            "score": round(p["score"], 2),
            "look-alike": "yes" if p["lookalike"] else "",
            "hash bits": "" if p.get("hash_bits") is None else str(p["hash_bits"]),
        }
        for p in pairs
    ]
    rows.sort(key=lambda r: (r["look-alike"] != "yes", r["left class"] == r["right class"], -r["score"]))
    return pd.DataFrame(rows[:limit], columns=PAIR_COLUMNS)


def pair_at(table: pd.DataFrame | None, index) -> tuple[str, str] | None:
    """(left, right) images of the pair in the clicked row (`index` is [row, column]), or None."""
    if table is None or index is None or table.empty:
        return None
    row = index[0] if isinstance(index, (list, tuple)) else index
    if not isinstance(row, int) or not 0 <= row < len(table):
        return None
    return str(table.iloc[row]["left"]), str(table.iloc[row]["right"])


def pair_images(root: os.PathLike | str, pair: tuple[str, str] | None) -> list[tuple[str | None, str]]:
    """[(path or None, caption)] for the left and right image of a pair: 'river/x.jpg (class river)'."""
    if not pair:
        return [(None, "left"), (None, "right")]
    out = []
    for image in pair:
        path = Path(root) / image
        out.append((str(path) if path.is_file() else None, f"{image} (class {image.split('/', 1)[0]})"))
    return out


def trash_lookalike(root: os.PathLike | str, pair: tuple[str, str] | None, side: int) -> str:
    """Move the left (`side` 0) or right (1) image of a pair to the trash, noting its look-alike as the reason."""
    if not pair:
        return "Click a pair in the list first."
    image, other = pair[side], pair[1 - side]
    return delete(root, [image], reason=f"look-alike of {other}")


def not_duplicate(root: os.PathLike | str, pair: tuple[str, str] | None) -> str:
    """Remember that a pair is two different photos: it is not listed or grouped as look-alikes again."""
    if not pair:
        return "Click a pair in the list first."
    try:
        similar.mark_not_duplicate(root, *pair)
    except OtterError as ex:
        return f"Could not remember the pair: {escape_md(ex)}"
    return f"Noted: {pair[0]} and {pair[1]} are different photos; they will not be listed as look-alikes again."
