"""Find the data's mistakes: rank every image by how likely its label is wrong (confident learning).

A model that trained on an image has memorised its label, so its loss says little about that image. The
audit scores every image by models that never saw it (out-of-fold), then asks cleanlab (Northcutt et al.,
"Confident Learning", JAIR 2021) for a label-quality score per image and for the set of likely label errors
(it also estimates how many to flag). Two ways to get the out-of-fold probabilities:

- "embeddings" (the default): logistic-regression heads on the pretrained network's embeddings
  (`otter.review.embeddings`, cached, so a second audit takes seconds; `otter.model.heads`);
- "finetune": k networks fine-tuned (or trained from scratch) on k stratified folds (`crossval.out_of_fold`).

Byte-identical copies filed under two classes are certain conflicts and come first; look-alikes across
classes (`otter.review.similar`, from the same embeddings) come next.

The result is saved beside the data (`<data>/.otter/audit.csv` + `audit.json`) with a fingerprint of the
data set, so the app shows the last audit at once and can say when the data changed since. Images the
user marked as correct ("keep") are remembered by content hash in `<data>/.otter/keep.json` and not
flagged again while they keep that label.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..config import models_dir as default_models_dir
from ..config import state_dir
from ..data import catalog, dataset
from ..data.fingerprint import sha256_file
from ..model import distributed, heads
from ..model.jobs import BackgroundJob, TrainError, training_lock
from ..model.recipes import QUICK_PRETRAINED_RECIPE, QUICK_RECIPE
from ..progress import Event
from . import similar
from .embeddings import Embeddings, embed_folder

if TYPE_CHECKING:  # train imports torch and fastai: an audit on cached embeddings never needs them
    from ..model.train import TrainConfig

AUDIT_CSV = "audit.csv"
AUDIT_JSON = "audit.json"
KEEP_JSON = "keep.json"

METHODS = ("embeddings", "finetune")
DEFAULT_METHOD = "embeddings"
DEFAULT_FOLDS = 5
SCORE_METHOD = "self_confidence"  # cleanlab's score: the out-of-fold probability of the given label

# Order of the reasons in the ranking: certain conflicts first.
REASONS = ("duplicate", "near-duplicate", "label")
COLUMNS = ["image", "label", "suggested", "score", "flagged", "reason", "kept", "same_as", "sha256", "probs"]


class AuditError(TrainError):
    """An audit cannot run or its files are unusable; the message says why."""


def quick_config(**overrides) -> TrainConfig:
    """The fine-tuning audit's training recipe (QUICK_PRETRAINED_RECIPE, or QUICK_RECIPE from scratch when
    `pretrained=False`), with any TrainConfig field overridden."""
    from ..model.train import TrainConfig

    return TrainConfig(**(quick_recipe(overrides.get("pretrained", True)) | overrides))


def quick_recipe(pretrained: bool = True) -> dict:
    return dict(QUICK_PRETRAINED_RECIPE if pretrained else QUICK_RECIPE)


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


def _order_key(row: dict) -> tuple:
    reason_rank = REASONS.index(row["reason"]) if row["flagged"] and row["reason"] in REASONS else len(REASONS)
    return (reason_rank, row["score"], row["image"])


def _score(probs: list[float], label_index: int) -> float:
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


def _conflicts(data_dir: Path, emb: Embeddings) -> dict[str, tuple[str, list[str]]]:
    """{class/file: (reason, the other images)} for copies and look-alikes filed under different classes."""
    groups = similar.groups(emb, data_dir)
    out: dict[str, tuple[str, list[str]]] = {}
    for reason, key in (("duplicate", "exact"), ("near-duplicate", "near")):
        for group in groups[key]:
            if len({g.split("/")[0] for g in group}) < 2:
                continue  # same class: harmless for labels (verify lists it for removal)
            for g in group:
                out.setdefault(g, (reason, [o for o in group if o != g]))
    return out


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


def _is_kept(keep: dict, sha: str, label: str) -> bool:
    return sha in keep and keep[sha].get("label") == label


# ---------------------------------------------------------------------------------------------- audit


def _labels(data_dir: Path, emb: Embeddings) -> list[str]:
    """The classes that have images, in folder order; clear errors for sets that cannot be audited."""
    if not data_dir.is_dir():
        raise AuditError(
            f"data folder {data_dir} does not exist; collect images in the Curate tab or with `python -m otter scrape`"
        )
    if emb.failed:
        image, reason = next(iter(emb.failed.items()))
        more = f" (and {len(emb.failed) - 1} more)" if len(emb.failed) > 1 else ""
        raise AuditError(f"{image}{more}: {reason}; run `python -m otter verify` to move broken files to the trash")
    counts = {c: emb.labels.count(c) for c in dataset.list_classes(data_dir)}
    classes = [c for c, n in counts.items() if n > 0]
    if len(classes) < 2:
        found = ", ".join(f"{c} ({n})" for c, n in counts.items()) or "none"
        raise AuditError(f"an audit needs at least two classes with images in {data_dir} (found: {found})")
    if min(counts[c] for c in classes) < 2:
        raise AuditError("every class needs at least 2 images for an audit")
    return classes


def _rows(data_dir: Path, emb: Embeddings, classes: list[str], probs: np.ndarray, conflicts: dict) -> list[dict]:
    """One row per image from the out-of-fold probabilities, most suspect first (see AuditResult)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    labels = emb.labels
    y = np.array([classes.index(lbl) for lbl in labels])
    scores = get_label_quality_scores(y, probs, method=SCORE_METHOD)
    # cleanlab estimates how many labels are wrong from the confident joint and flags that many.
    issues = find_label_issues(y, probs, filter_by="prune_by_noise_rate", n_jobs=1)
    keep = kept(data_dir)
    rows = []
    for i, image in enumerate(emb.images):
        reason, same_as = conflicts.get(image, (None, []))
        if reason is None and issues[i]:
            reason = "label"
        is_kept = _is_kept(keep, emb.sha256[i], labels[i])
        rows.append(
            {
                "image": image,
                "label": labels[i],
                "suggested": classes[int(probs[i].argmax())],
                "score": float(scores[i]),
                "flagged": reason is not None and not is_kept,
                "reason": None if is_kept else reason,
                "kept": is_kept,
                "same_as": same_as,
                "sha256": emb.sha256[i],
                "probs": [float(x) for x in probs[i]],
            }
        )
    return sorted(rows, key=_order_key)


def audit(
    data_dir: os.PathLike | str,
    *,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
    config: TrainConfig | None = None,
    progress: Callable[[Event], None] | None = None,
    cancel: threading.Event | None = None,
    models_dir: os.PathLike | str | None = None,
    save: bool = True,
    method: str = DEFAULT_METHOD,
) -> AuditResult:
    """Score every image of a folder-per-class data set by k-fold out-of-fold predictions and save the result.

    `method` "embeddings" (default): heads on the cached embeddings (`config` is not used); "finetune": k networks
    trained with `config` (default `quick_config()`). Holds the training lock of `models_dir` (default: the models
    folder), so an audit and a training job never compete for the CPU. `progress` receives `otter.progress.Event`s: "embed"
    while embeddings are computed, "stage"s, and training's events with fold and folds when fine-tuning, all with
    the whole audit's progress (0..1) and a stage; setting `cancel` stops within one batch (raises TrainingCancelled)."""
    if method not in METHODS:
        raise AuditError(f"unknown audit method {method!r}; choose one of {', '.join(METHODS)}")
    if folds < 2:
        raise AuditError("an audit needs at least 2 folds")
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise AuditError(
            f"data folder {data_dir} does not exist; collect images in the Curate tab or with `python -m otter scrape`"
        )
    cfg = (config or quick_config()) if method == "finetune" else None
    if cfg is not None:
        cfg.check()
    ranks = distributed.ranks()  # under `accelerate launch`: embeddings and folds shared, rank 0 locks and saves
    if ranks.distributed and method == "finetune":
        raise AuditError("--method finetune runs in one process; the embeddings audit runs over several")
    emit = (progress if ranks.is_main else None) or (lambda e: None)
    share = 0.9 if method == "embeddings" else 1.0  # of the progress bar: the heads take seconds, training minutes

    def embed_event(e: Event) -> None:
        stage = f"computing embeddings ({e.done}/{e.total} new images)"
        emit(replace(e, stage=stage, progress=share * e.progress if method == "embeddings" else e.progress))

    start = time.monotonic()
    before = fingerprint(data_dir)
    lock = training_lock(models_dir or default_models_dir()) if ranks.is_main else contextlib.nullcontext()
    with lock:
        emit(Event("stage", stage="reading the images", progress=0.0))
        emb = embed_folder(data_dir, progress=embed_event, cancel=cancel)
        classes = _labels(data_dir, emb)
        labels = emb.labels
        conflicts = _conflicts(data_dir, emb)
        if method == "embeddings":
            emit(Event("stage", stage=f"fitting {folds}-fold heads", progress=share))
            probs = heads.out_of_fold(emb.vectors, labels, classes, folds=folds, seed=seed, cancel=cancel)
        else:
            from ..model.crossval import out_of_fold

            emit(Event("stage", stage=f"training {folds} models", progress=0.0))
            items = [data_dir / image for image in emb.images]
            probs = out_of_fold(items, labels, classes, cfg, folds=folds, seed=seed, on_event=emit, cancel=cancel)
    result = AuditResult(_rows(data_dir, emb, classes, probs, conflicts), classes)
    result.meta = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - start, 1),
        "data_dir": str(data_dir.resolve()),
        "n_images": len(result.rows),
        "method": method,
        "folds": folds,
        "seed": seed,
        "config": asdict(cfg) if cfg is not None else None,
        "heads": {"model": "logistic regression", "C": heads.C, "repeats": heads.REPEATS} if cfg is None else None,
        "embeddings_computed": emb.computed,
        "score_method": SCORE_METHOD,
        "near_score": similar.NEAR_SCORE,
        "near_hash_bits": similar.MAX_HASH_BITS,
        "accuracy": result.accuracy(),
        "n_flagged": len(result.flagged),
        # The data changed while the audit ran: keep the fingerprint of what was audited, so it reads as stale.
        "fingerprint": before,
    }
    emit(Event("stage", stage="saving", progress=1.0, eta=0))
    if save and ranks.is_main:
        save_audit(data_dir, result)
    return result


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
            result.rows.sort(key=_order_key)
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
            row["score"] = _score(row["probs"], result.classes.index(new_class))
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


# ------------------------------------------------------------------------------------------------ job


class AuditJob(BackgroundJob):
    """An audit in a background thread, like TrainJob: `events` grows as it runs, `cancel()` stops it within
    one batch, and only one audit or training job runs at a time."""

    kind, noun = "audit", "an audit"
    cancelled_message = "audit cancelled; the previous audit is unchanged"

    def __init__(
        self,
        data_dir: os.PathLike | str,
        *,
        folds: int = DEFAULT_FOLDS,
        seed: int = 0,
        config: TrainConfig | None = None,
        models_dir: os.PathLike | str | None = None,
        on_done: Callable[[AuditJob], None] | None = None,
        method: str = DEFAULT_METHOD,
    ):
        super().__init__(on_done)
        self.data_dir, self.folds, self.seed, self.config = Path(data_dir), folds, seed, config
        self.models_dir, self.method = models_dir, method
        self.result: AuditResult | None = None

    def work(self) -> AuditResult:
        return audit(
            self.data_dir,
            folds=self.folds,
            seed=self.seed,
            config=self.config,
            progress=self.events.append,
            cancel=self._cancel,
            models_dir=self.models_dir,
            method=self.method,
        )
