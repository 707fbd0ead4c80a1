"""Which images a model has seen: the content hashes of its training and validation images, kept in
model.json["seen"] by training, and how much of an evaluation set overlaps them.

The hash is the data set's own (`fingerprint.sha256_file`, as in index.csv and the intake `Ledger`), cut to its
first `HASH_CHARS` hex digits: model.json is read on every model list and load, and 16 digits (64 bits) take a
quarter of the room of all 64 while a chance collision stays out of reach (about n² / 2⁶⁵: one in 10¹¹ for
20,000 images). Bytes, not names: a renamed or copied photo is still recognised; a re-encoded one is not.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from .fingerprint import sha256_file

HASH_CHARS = 16
KEY = "seen"  # model.json key
UNKNOWN_REASON = "the model does not record which images it trained on (trained before this was recorded)"


def image_hash(path: os.PathLike | str) -> str:
    return sha256_file(path)[:HASH_CHARS]


def training_record(train: Iterable[os.PathLike | str], valid: Iterable[os.PathLike | str]) -> dict:
    """model.json["seen"]: {"hash", "train": [hex], "valid": [hex]}, sorted so a model's file is stable."""
    return {
        "hash": f"sha256, first {HASH_CHARS} hex digits",
        "train": sorted({image_hash(p) for p in train}),
        "valid": sorted({image_hash(p) for p in valid}),
    }


def splits_by_hash(meta: dict) -> dict[str, str] | None:
    """{hash: "train" | "valid"} from a model's meta; None when the model does not record it. An image in both
    splits (the same bytes under two names) counts as trained on."""
    rec = meta.get(KEY)
    if not isinstance(rec, dict) or not isinstance(rec.get("train"), list):
        return None
    return {h: "valid" for h in rec.get("valid", [])} | {h: "train" for h in rec["train"]}


def overlap(meta: dict, images: Sequence[os.PathLike | str], correct: Sequence[bool]) -> dict:
    """How many of the evaluated `images` (each scored right or wrong in `correct`) the model trained on and
    validated on, and the accuracy on the rest ("unseen"). Validation images are not unseen: they chose the
    temperature and the "not sure" threshold, and their accuracy is already in model.json["metrics"].

    {"known": False, "reason"} for a model without the record; else {"known": True, "n_train", "n_valid",
    "n_unseen", "unseen_accuracy" (None when no image is unseen)}."""
    splits = splits_by_hash(meta)
    if splits is None:
        return {"known": False, "reason": UNKNOWN_REASON}
    where = [splits.get(image_hash(p), "unseen") for p in images]
    unseen = [ok for ok, w in zip(correct, where) if w == "unseen"]
    return {
        "known": True,
        "n_train": where.count("train"),
        "n_valid": where.count("valid"),
        "n_unseen": len(unseen),
        "unseen_accuracy": sum(unseen) / len(unseen) if unseen else None,
    }


def summary_line(seen: dict, n: int) -> str:
    """One line for people: the overlap of `n` evaluated images with what the model saw, and the honest score."""
    if not seen["known"]:
        return f"which of these images the model trained on is unknown: {seen['reason']}"
    if seen["n_unseen"] == n:
        return f"none of these {n} images was in the model's training or validation split"
    acc = f"{seen['unseen_accuracy']:.3f}" if seen["unseen_accuracy"] is not None else "– (none left)"
    return (
        f"warning: the model trained on {seen['n_train']} of these {n} images and validated on {seen['n_valid']}; "
        f"accuracy on the {seen['n_unseen']} it never saw: {acc}"
    )
