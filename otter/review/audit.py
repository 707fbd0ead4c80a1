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

The result is saved beside the data with a fingerprint of the data set, so the app shows the last audit at
once and can say when the data changed since; images the user marked as correct ("keep") are not flagged again
while they keep that label (`otter.review.audit_result`: the result, its files and the actions on it).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..config import models_dir as default_models_dir
from ..data import dataset
from ..model import distributed, heads
from ..model.jobs import BackgroundJob, training_lock
from ..model.recipes import QUICK_PRETRAINED_RECIPE, QUICK_RECIPE
from ..progress import Event
from . import similar
from .audit_result import (
    SCORE_METHOD,
    AuditError,
    AuditResult,
    fingerprint,
    images_in_cell,
    is_stale,
    keep,
    kept,
    kept_with_label,
    load_audit,
    order_key,
    relabel,
    save_audit,
    trash,
)
from .embeddings import Embeddings, embed_folder

if TYPE_CHECKING:  # train imports torch and fastai: an audit on cached embeddings never needs them
    from ..model.train import TrainConfig

# The result and the actions on it live in audit_result; they are offered here too, where callers look for them.
__all__ = [
    "DEFAULT_FOLDS", "DEFAULT_METHOD", "METHODS", "QUICK_PRETRAINED_RECIPE", "QUICK_RECIPE", "AuditError", "AuditJob",
    "AuditResult", "audit", "fingerprint", "images_in_cell", "is_stale", "keep", "kept", "load_audit", "quick_config",
    "quick_recipe", "relabel", "save_audit", "trash",
]  # fmt: skip

METHODS = ("embeddings", "finetune")
DEFAULT_METHOD = "embeddings"
DEFAULT_FOLDS = 5


def quick_config(**overrides) -> TrainConfig:
    """The fine-tuning audit's training recipe (QUICK_PRETRAINED_RECIPE, or QUICK_RECIPE from scratch when
    `pretrained=False`), with any TrainConfig field overridden."""
    from ..model.train import TrainConfig

    return TrainConfig(**(quick_recipe(overrides.get("pretrained", True)) | overrides))


def quick_recipe(pretrained: bool = True) -> dict:
    return dict(QUICK_PRETRAINED_RECIPE if pretrained else QUICK_RECIPE)


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
    confirmed = kept(data_dir)
    rows = []
    for i, image in enumerate(emb.images):
        reason, same_as = conflicts.get(image, (None, []))
        if reason is None and issues[i]:
            reason = "label"
        is_kept = kept_with_label(confirmed, emb.sha256[i], labels[i])
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
    return sorted(rows, key=order_key)


def _checked_config(data_dir: Path, folds: int, method: str, config: TrainConfig | None) -> TrainConfig | None:
    """The fine-tuning recipe (None for the embeddings audit), after checking what can be checked before any work."""
    if method not in METHODS:
        raise AuditError(f"unknown audit method {method!r}; choose one of {', '.join(METHODS)}")
    if folds < 2:
        raise AuditError("an audit needs at least 2 folds")
    if not data_dir.is_dir():
        raise AuditError(
            f"data folder {data_dir} does not exist; collect images in the Curate tab or with `python -m otter scrape`"
        )
    cfg = (config or quick_config()) if method == "finetune" else None
    if cfg is not None:
        cfg.check()
    return cfg


def _meta(
    result: AuditResult, data_dir: Path, method: str, folds: int, seed: int, cfg: TrainConfig | None, emb: Embeddings,
    *, seconds: float, audited: str,
) -> dict:  # fmt: skip
    """audit.json: when and how the audit ran, and what it found; `audited`: the fingerprint of the data it read."""
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(seconds, 1),
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
        "fingerprint": audited,
    }


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
    data_dir = Path(data_dir)
    cfg = _checked_config(data_dir, folds, method, config)
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
    if not np.isfinite(probs).all():  # never save an audit that cannot be read back; the last one stays
        bad = int((~np.isfinite(probs).all(axis=1)).sum())
        raise AuditError(
            f"the fold models gave no usable prediction for {bad} images (training diverged): run the audit again, "
            "or with the embeddings method"
        )
    result = AuditResult(_rows(data_dir, emb, classes, probs, conflicts), classes)
    # The data may change while the audit runs: the fingerprint is of what was audited, so it then reads as stale.
    result.meta = _meta(result, data_dir, method, folds, seed, cfg, emb, seconds=time.monotonic() - start, audited=before)
    emit(Event("stage", stage="saving", progress=1.0, eta=0))
    if save and ranks.is_main:
        save_audit(data_dir, result)
    return result


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
