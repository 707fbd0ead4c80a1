"""What Curate › Suspects shows, as plain values: the audit's status line, the suspects as gallery items, the
out-of-fold confusion matrix as a table, and which cell a click on it means. No Gradio here."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..errors import escape_md
from ..progress import Event
from ..review.audit import AuditJob, AuditResult, images_in_cell, is_stale
from ..review.confusion import cell_at, confusion_frame
from .jobview import fmt_time

GALLERY_LIMIT = 120  # suspects shown at once; the rest follow as the first are fixed
LABEL_COLUMN = "given \\ predicted"


def status_markdown(data_dir: os.PathLike | str, result: AuditResult | None, job: AuditJob | None = None) -> str:
    """The running audit's progress, or the last audit's summary and whether the data changed since."""
    if job is not None and job.running:
        return job_line(job)
    lines = []
    if job is not None and job.state in ("failed", "cancelled"):
        lines.append(f"⚠️ {job.error}")
    if result is None:
        lines.append(
            "No audit yet. **Run audit** judges every image by models that never saw it (each trained on the other "
            "images' embeddings, as the pretrained network sees them); the first audit computes the embeddings, "
            "about a minute per 250 images on 2 CPU cores, later ones take seconds."
        )
        return "\n\n".join(lines)
    m = result.meta
    acc = result.accuracy()
    acc_text = f", {m.get('folds')}-fold out-of-fold accuracy {acc:.1%}" if acc is not None else ""
    if m.get("method") == "finetune":
        acc_text += " (fine-tuned networks)"
    created = str(m.get("created", "?")).replace("T", " ")[:16]
    lines.append(f"Last audit {created} UTC: {len(result.rows)} images, **{len(result.flagged)} suspects**{acc_text}.")
    if is_stale(data_dir, result):
        lines.append("⚠️ The data changed since this audit (images added, moved or removed): run a new audit.")
    return "\n\n".join(lines)


def job_line(job: AuditJob) -> str:
    # Progress events (otter.progress.Event), then the job's closing JobEnded.
    last = next((e for e in reversed(job.events) if isinstance(e, Event) and e.progress is not None), Event("stage"))
    if last.fold is not None:
        doing = f"model {last.fold} of {last.folds} · "
    else:
        doing = f"{last.stage} · " if last.stage else ""
    return f"Auditing: {doing}{100 * float(last.progress or 0):.0f}% · about {fmt_time(last.eta)} left"


def suspects(result: AuditResult | None, cls: str | None = None) -> list[dict]:
    """Flagged rows, most suspect first, whose given label is `cls` (all classes for None or "all")."""
    if result is None:
        return []
    rows = result.flagged
    if cls and cls != "all":
        rows = [r for r in rows if r["label"] == cls]
    return rows[:GALLERY_LIMIT]


def caption(row: dict) -> str:
    why = {"duplicate": "same file in another class", "near-duplicate": "look-alike in another class"}.get(row["reason"], "")
    text = f"{row['label']} → {row['suggested']}? score {row['score']:.2f}"
    return f"{text} · {why}" if why else text


def gallery(data_dir: os.PathLike | str, rows: list[dict]) -> list[tuple[str, str]]:
    return [(str(Path(data_dir) / r["image"]), caption(r)) for r in rows if (Path(data_dir) / r["image"]).is_file()]


def confusion_table(result: AuditResult | None) -> pd.DataFrame:
    """Rows: given label; columns: the out-of-fold prediction (first column names the row)."""
    if result is None:
        return confusion_frame([], None, LABEL_COLUMN)
    return confusion_frame(result.classes, result.confusion(), LABEL_COLUMN)


def cell_of(result: AuditResult | None, index) -> tuple[str, str] | None:
    """(given, predicted) for a click at table index [row, col] (the row-name column is not a cell)."""
    return cell_at(result.classes, index) if result is not None else None


def cell_rows(result: AuditResult | None, cell: tuple[str, str] | None) -> list[dict]:
    if result is None or cell is None:
        return []
    return images_in_cell(result, *cell)[:GALLERY_LIMIT]


def view_title(cell: tuple[str, str] | None, n: int) -> str:
    if cell is None:
        return f"Suspects, most suspect first ({n}). Click one, then fix it below."
    return f"Given **{escape_md(cell[0])}**, predicted **{escape_md(cell[1])}** ({n} images). Click one, then fix it below."
