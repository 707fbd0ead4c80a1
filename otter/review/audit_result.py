"""An audit's result (`AuditResult`: every image, most suspect first), saved beside the data
(`<data>/.otter/audit.csv` + `audit.json`) with a fingerprint of the data set so it can say when the data changed
since, and kept current by the actions taken from it: relabel, trash, and keep (remembered by content hash in
`<data>/.otter/keep.json`, so an image the user confirmed is not flagged again while it keeps its label).
`otter.review.audit` computes the result."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..config import state_dir
from ..data import catalog, dataset
from ..data.fingerprint import sha256_file
from ..model.jobs import TrainError

AUDIT_CSV = "audit.csv"
AUDIT_JSON = "audit.json"
KEEP_JSON = "keep.json"
SCORE_METHOD = "self_confidence"  # cleanlab's score: the out-of-fold probability of the given label

# Order of the reasons in the ranking: certain conflicts first.
REASONS = ("duplicate", "near-duplicate", "label")
COLUMNS = ["image", "label", "suggested", "score", "flagged", "reason", "kept", "same_as", "sha256", "probs"]


class AuditError(TrainError):
    """An audit cannot run or its files are unusable; the message says why."""


# --------------------------------------------------------------------------------------------- result


@dataclass
class AuditResult:
    """Rows most suspect first: image (class/file), label, suggested, score (0..1, low = suspect), flagged,
    reason ("duplicate", "near-duplicate", "label" or None), kept, same_as (look-alikes), sha256, probs
    (out-of-fold probabilities in `classes` order). `meta` holds time, settings, fingerprint and accuracy."""

    rows: list[dict]
    classes: list[str]
    meta: dict = field(default_factory=dict)

    @property
    def flagged(self) -> list[dict]:
        return [r for r in self.rows if r["flagged"]]

    def confusion(self) -> list[list[int]]:
        """Out-of-fold confusion matrix: rows are the given labels, columns the models' predictions."""
        k = len(self.classes)
        conf = np.zeros((k, k), dtype=int)
        for r in self.rows:
            if r["label"] in self.classes and r["suggested"] in self.classes:
                conf[self.classes.index(r["label"]), self.classes.index(r["suggested"])] += 1
        return conf.tolist()

    def accuracy(self) -> float | None:
        conf = np.array(self.confusion())
        return float(np.trace(conf) / conf.sum()) if conf.sum() else None


def images_in_cell(result: AuditResult, true_class: str, predicted_class: str) -> list[dict]:
    """The rows behind one confusion-matrix cell (given label `true_class`, predicted `predicted_class`), most suspect first."""
    return [r for r in result.rows if r["label"] == true_class and r["suggested"] == predicted_class]


def order_key(row: dict) -> tuple:
    reason_rank = REASONS.index(row["reason"]) if row["flagged"] and row["reason"] in REASONS else len(REASONS)
    return (reason_rank, row["score"], row["image"])


def label_score(probs: list[float], label_index: int) -> float:
    from cleanlab.rank import get_label_quality_scores

    return float(get_label_quality_scores(np.array([label_index]), np.array([probs], dtype=float), method=SCORE_METHOD)[0])


# ------------------------------------------------------------------------------------------- the data


def _state(data_dir: os.PathLike | str) -> Path:
    return state_dir(data_dir)


def fingerprint(data_dir: os.PathLike | str) -> str:
    """A hash of every image's class/file, size and modification time: changes when anything is added,
    removed, relabelled or edited, and costs no image reads."""
    h = hashlib.sha256()
    if catalog.exists(data_dir):  # the catalog's sizes and times (a stat per class folder, not per image)
        with catalog.connection(data_dir) as con:
            for r in con.execute("SELECT path, size, mtime_ns FROM files ORDER BY class, name"):
                h.update(f"{r[0]}\t{r[1]}\t{r[2]}\n".encode())
        return h.hexdigest()
    for p in dataset.list_images(data_dir):
        st = p.stat()
        h.update(f"{dataset.rel(data_dir, p)}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def is_stale(data_dir: os.PathLike | str, result: AuditResult) -> bool:
    """True when the data set changed (outside the audit's own actions) since the audit ran."""
    return result.meta.get("fingerprint") != fingerprint(data_dir)


# --------------------------------------------------------------------------------------------- keep


# audit.csv / keep.json within this process (the data lock guards the data itself). Re-entrant: an action holds it
# from loading the audit to saving it (`_apply`), so two tabs' relabels both land.
_files_lock = threading.RLock()


def kept(data_dir: os.PathLike | str) -> dict[str, dict]:
    """{sha256: {"label", "image", "time"}} of images the user confirmed as correctly labelled."""
    path = _state(data_dir) / KEEP_JSON
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as ex:
        raise AuditError(f"{path} is unreadable ({ex}); delete it to forget the kept images") from ex
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def kept_with_label(keep: dict, sha: str, label: str) -> bool:
    return sha in keep and keep[sha].get("label") == label


# ---------------------------------------------------------------------------------------------- files


def save_audit(data_dir: os.PathLike | str, result: AuditResult) -> None:
    """Write `<data>/.otter/audit.csv` (one row per image, most suspect first) and `audit.json` (meta), atomically."""
    import pandas as pd

    state = _state(data_dir)
    state.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(
        [r | {"same_as": json.dumps(r["same_as"]), "probs": json.dumps(r["probs"])} for r in result.rows], columns=COLUMNS
    )
    with _files_lock:
        tmp = state / f".{AUDIT_CSV}.{os.getpid()}.tmp"
        df.to_csv(tmp, index=False)
        os.replace(tmp, state / AUDIT_CSV)
        _write_json(state / AUDIT_JSON, result.meta | {"classes": result.classes})


def load_audit(data_dir: os.PathLike | str) -> AuditResult | None:
    """The last saved audit of this data set, or None if there is none."""
    import pandas as pd

    state = _state(data_dir)
    if not (state / AUDIT_JSON).is_file() or not (state / AUDIT_CSV).is_file():
        return None
    try:
        meta = json.loads((state / AUDIT_JSON).read_text())
        df = pd.read_csv(state / AUDIT_CSV, dtype=str, keep_default_na=False)
        rows = [
            {
                "image": r["image"],
                "label": r["label"],
                "suggested": r["suggested"],
                "score": float(r["score"]),
                "flagged": r["flagged"] == "True",
                "reason": r["reason"] or None,
                "kept": r["kept"] == "True",
                "same_as": json.loads(r["same_as"] or "[]"),
                "sha256": r["sha256"],
                "probs": json.loads(r["probs"] or "[]"),
            }
            for r in df.to_dict("records")
        ]
    except (OSError, ValueError, KeyError) as ex:
        raise AuditError(f"the saved audit in {state} is unreadable ({ex}); run a new audit") from ex
    classes = meta.pop("classes")
    return AuditResult(rows, classes, meta)


# -------------------------------------------------------------------------------------------- actions


def _find_row(result: AuditResult, image: str) -> dict | None:
    return next((r for r in result.rows if r["image"] == image), None)


def _apply(data_dir: Path, image: str, action: Callable[[], object], change: Callable[[AuditResult, dict | None, object], None]):
    """Run a data-set action, then record it in the saved audit (kept current if it was current before): load, act
    and save under one lock, so a second action (another tab) starts from the audit the first one saved."""
    with _files_lock:
        result = load_audit(data_dir)
        was_fresh = result is not None and not is_stale(data_dir, result)
        out = action()
        if result is not None:
            change(result, _find_row(result, image), out)
            result.rows.sort(key=order_key)
            result.meta["n_flagged"] = len(result.flagged)
            if was_fresh:
                result.meta["fingerprint"] = fingerprint(data_dir)
            save_audit(data_dir, result)
        return out


def _rel_image(data_dir: Path, image: os.PathLike | str) -> str:
    return dataset.rel(data_dir, dataset.resolve_image(data_dir, image))


def relabel(data_dir: os.PathLike | str, image: os.PathLike | str, new_class: str) -> str:
    """Move an image to `new_class` (dataset.relabel: manifest updated, undone by relabelling back); returns
    its new class/file."""
    data_dir = Path(data_dir)
    image = _rel_image(data_dir, image)

    def change(result: AuditResult, row: dict | None, new_image: str) -> None:
        if row is None:
            return
        row["image"], row["label"] = new_image, new_class
        if new_class in result.classes and row["probs"]:
            row["score"] = label_score(row["probs"], result.classes.index(new_class))
        row["flagged"], row["reason"] = False, None

    return _apply(data_dir, image, lambda: dataset.rel(data_dir, dataset.relabel(data_dir, image, new_class)), change)


def trash(data_dir: os.PathLike | str, image: os.PathLike | str) -> str:
    """Move an image to the data set's trash (dataset.move_to_trash: restorable); returns the trash id."""
    data_dir = Path(data_dir)
    image = _rel_image(data_dir, image)

    def change(result: AuditResult, row: dict | None, _trash_id: str) -> None:
        if row is not None:
            result.rows.remove(row)

    return _apply(data_dir, image, lambda: dataset.move_to_trash(data_dir, image, reason="audit: suspect label"), change)


def keep(data_dir: os.PathLike | str, image: os.PathLike | str) -> None:
    """Remember that this image's label is right: it is not flagged again while it keeps this label."""
    data_dir = Path(data_dir)
    path = dataset.resolve_image(data_dir, image)
    image = dataset.rel(data_dir, path)
    sha = sha256_file(path)

    def action() -> None:
        with _files_lock:
            data = kept(data_dir)
            data[sha] = {
                "label": path.parent.name,
                "image": image,
                "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
            _write_json(_state(data_dir) / KEEP_JSON, data)

    def change(result: AuditResult, row: dict | None, _none: None) -> None:
        if row is not None:
            row["flagged"], row["reason"], row["kept"] = False, None, True

    _apply(data_dir, image, action, change)
