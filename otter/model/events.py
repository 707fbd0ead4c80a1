"""What a training run reports as it goes (`train(on_event=...)`, `TrainJob.events`): typed events, read by
attribute, as fastai's callbacks read the learner's typed attributes. They are every long job's events
(`otter.progress.Event`), kept importable here under training's names, and the lines that describe a finished
training's choices.
"""

from __future__ import annotations

from ..progress import Event, EventSink, JobEnded, event_type

TrainEvent = Event

__all__ = ["Event", "EventSink", "JobEnded", "TrainEvent", "calibration_line", "event_type", "kept_line", "mirror_line"]


def kept_line(kept: dict | None) -> str | None:
    """One line saying which stage's state a training kept (model.json's "kept"), or None if it does not say."""
    if not kept or not kept.get("stage"):
        return None
    if kept.get("chosen") == "last":
        return f"kept the last state ({kept['stage']}): {kept.get('reason', 'no validation split')}"
    stage = kept["stage"] if "epoch" not in kept or "head" in kept["stage"] else f"{kept['stage']}, epoch {kept['epoch']}"
    acc = kept.get("accuracy")
    return f"kept {stage}: the best of {kept.get('of', 1)} on the validation split" + (
        f" (accuracy {acc:.3f})" if acc is not None else ""
    )


def calibration_line(cal: dict | None) -> str | None:
    """One line saying whether a temperature was fitted (model.json's "calibration"), or None if nothing is known."""
    if not cal:
        return None
    if cal.get("skipped"):
        return f"calibration: none ({cal['skipped']})"
    where = cal.get("fitted_on") or f"{cal.get('n', '?')} validation images, {cal.get('errors', '?')} wrong"
    return f"calibration: temperature {cal['temperature']:.2f} fitted on {where}"


def mirror_line(head_fit: dict | None) -> str | None:
    """One line when the fitted head's test left mirror images out (model.json's "head_fit"), else None."""
    if not head_fit or head_fit.get("mirror") != "none" or head_fit.get("mirror_loss_ratio") is None:
        return None
    z = f", z {head_fit['mirror_z']:.1f}" if "mirror_z" in head_fit else ""
    limits = f"{head_fit['mirror_limit']:.2f}x" + (f" and z {head_fit['mirror_min_z']:g}" if "mirror_min_z" in head_fit else "")
    return (
        f"mirror images left out (no flips): they look like other classes here (held-out loss "
        f"{head_fit['mirror_loss_ratio']:.2f}x the images'{z}; limits {limits})"
    )
