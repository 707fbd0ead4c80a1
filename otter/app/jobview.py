"""Turn what a training job reports (its events and its model.json) into what a person reads: a status line,
a progress fraction, an epoch table, loss curves, the lr_find curve and per-class figures. Plain values only.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ..errors import escape_md
from ..model.events import TrainEvent, calibration_line, kept_line
from ..model.train import PRETRAINED_RECIPE, RECIPE, SCRATCH_RECIPE, TrainConfig, TrainError
from ..progress import clock, parse_ints

ARCH_DEFAULT = "default (by recipe)"


def parse_settings(
    arch: str | None,
    pretrained: bool,
    sizes: str,
    epochs: str,
    lr: str,
    bs: float | int | str,
    valid_pct: float | int | str,
) -> TrainConfig:
    """A `TrainConfig` from the Train tab's text fields; blank fields take the recipe's defaults.
    `valid_pct` is a percentage (20 = 20 %). Raises `TrainError` with a message naming the bad field."""
    sizes_t = _ints(sizes, "sizes")
    epochs_t = _ints(epochs, "epochs")
    lr_text = (lr or "").strip().lower()
    if lr_text == "":
        lr_value = RECIPE
    elif lr_text in ("find", "auto"):
        lr_value = None
    else:
        try:
            lr_value = float(lr_text)
        except ValueError as ex:
            raise TrainError(f"learning rate must be a number like 0.001, 'find', or blank for the recipe's (got {lr!r})") from ex
    try:
        bs_value = None if bs is None or str(bs).strip() == "" else int(float(bs))  # blank: the recipe's
        pct = float(valid_pct)
    except (TypeError, ValueError) as ex:
        raise TrainError("batch size and validation % must be numbers") from ex
    if sizes_t and not epochs_t:
        # Sizes given without epochs: the recipe's epochs if they fit, else its first count for every size.
        recipe = (PRETRAINED_RECIPE if pretrained else SCRATCH_RECIPE)["epochs"]
        epochs_t = tuple(recipe) if len(recipe) == len(sizes_t) else (recipe[0],)
    cfg = TrainConfig(
        arch=None if not arch or arch == ARCH_DEFAULT else arch,
        pretrained=bool(pretrained),
        sizes=sizes_t or None,
        epochs=(epochs_t[0] if len(epochs_t) == 1 else epochs_t) if epochs_t else None,
        lr=lr_value,
        bs=bs_value,
        valid_pct=pct / 100.0,
    )
    cfg.epochs_per_size()
    cfg.check()
    return cfg


def _ints(text: str | None, what: str) -> tuple[int, ...]:
    try:
        return parse_ints(text)
    except ValueError as ex:
        raise TrainError(f"{what}: {ex}") from ex


fmt_time = clock  # the app's name for it


def training_events(events: list) -> list[TrainEvent]:
    """The training's own events of a job's list (without the job's closing `JobEnded`)."""
    return [e for e in events if isinstance(e, TrainEvent)]


def last_event(events: list, type_: str | None = None) -> TrainEvent | None:
    for e in reversed(training_events(events)):
        if type_ is None or e.type == type_:
            return e
    return None


def progress(events: list) -> float:
    """Fraction of the whole schedule done (0..1)."""
    e = next((e for e in reversed(training_events(events)) if e.progress is not None), None)
    return float(e.progress) if e else 0.0


def status_markdown(state: str | None, events: list, error: str | None = None, model_dir: str | None = None) -> str:
    """The job in a few lines: state, stage, epoch, batch, share done, elapsed time and ETA (the bar itself is
    `progress_html`)."""
    if state is None:
        return "No training has run since the server started."
    if state == "failed":
        return f"**Training failed:** {escape_md(error)}"
    if state == "cancelled":
        return f"**Cancelled.** {escape_md(error) if error else 'The previous model is unchanged.'}"
    last = last_event(events)
    frac = progress(events)
    if state == "done":
        done = last_event(events, "done")
        acc = done.accuracy if done else None
        acc_text = f", validation accuracy **{acc:.1%}**" if acc is not None else ""
        where = (done and done.model_dir) or model_dir
        saved = f" Saved as model **{escape_md(Path(where).name)}**." if where else ""
        lines = [f"**Done** in {fmt_time(done.elapsed if done else None)}{acc_text}.{saved}"]
        start = last_event(events, "start")
        lines += [escape_md(note) for note in (start and start.note, done and done.note) if note]
        lines += [line for line in (kept_line(done and done.kept), calibration_line(done and done.calibration)) if line]
        return "  \n".join(lines)
    start = last_event(events, "start")
    lines = ["**Training…**"]
    if start:
        lines.append(f"{start.n_train} training and {start.n_valid} validation images; classes: {', '.join(start.classes)}")
        if start.note:
            lines.append(escape_md(start.note))
    stage = (last and last.stage) or "preparing"
    epoch = f" · epoch {min(last.epoch + 1, last.epochs)}/{last.epochs}" if last and last.epochs else ""
    batch = last_event(events, "batch")
    batch_text = f" · batch {batch.batch}/{batch.batches}" if batch and last.type == "batch" else ""
    lines.append(f"Stage: {stage}{epoch}{batch_text}")
    elapsed, eta = (last.elapsed, last.eta) if last else (None, None)
    lines.append(f"{frac:.0%} · elapsed {fmt_time(elapsed)} · about {fmt_time(eta)} left")
    return "  \n".join(lines)


def progress_html(state: str | None, events: list) -> str:
    """A real progress bar (HTML `<progress>`) for a running job; empty otherwise."""
    if state not in ("pending", "running"):
        return ""
    pct = round(100 * min(max(progress(events), 0.0), 1.0))
    return (
        f'<progress id="train-progress-bar" value="{pct}" max="100" aria-label="training progress" '
        f'style="width:100%;height:14px;accent-color:var(--color-accent)">{pct}%</progress>'
    )


def form_values(cfg: TrainConfig, model_name: str) -> dict:
    """The Train form's fields as `cfg` fills them (what a page shows for a job started elsewhere):
    architecture, pretrained, sizes, epochs, lr, batch size, validation % and model name."""
    epochs = cfg.epochs_per_size() if cfg.sizes else []
    return {
        "arch": cfg.arch,
        "pretrained": cfg.pretrained,
        "sizes": ",".join(map(str, cfg.sizes or ())),
        "epochs": ",".join(map(str, epochs)),
        "lr": "find" if cfg.lr is None else f"{cfg.lr:g}",
        "bs": str(cfg.bs),
        "valid": round(cfg.valid_pct * 100),
        "model_name": model_name,
    }


EPOCH_COLUMNS = ["stage", "epoch", "train_loss", "valid_loss", "accuracy", "time"]


def epoch_table(events: list) -> pd.DataFrame:
    """One row per finished epoch: stage, epoch, train loss, valid loss, accuracy, elapsed time."""
    rows = []
    stage, n = "", 0
    for e in training_events(events):
        if e.type != "epoch":
            continue
        if e.stage != stage:
            stage, n = e.stage, 0
        n += 1
        rows.append(
            {
                "stage": stage,
                "epoch": n,
                "train_loss": _round(e.train_loss),
                "valid_loss": _round(e.valid_loss),
                "accuracy": _round(e.accuracy),
                "time": fmt_time(e.elapsed),
            }
        )
    return pd.DataFrame(rows, columns=EPOCH_COLUMNS)


def _round(v, digits: int = 4):
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else round(float(v), digits)


def loss_frame(events: list, smooth: float = 0.9) -> pd.DataFrame:
    """Long-format losses for a line plot: columns step, loss, series ("train (batch)", "valid (epoch)").
    Batch losses are smoothed like fastai's Recorder (exponential moving average, debiased)."""
    rows, step, avg, n = [], 0, 0.0, 0
    for e in training_events(events):
        if e.type == "batch" and e.loss is not None and math.isfinite(e.loss):
            step += 1
            n += 1
            avg = smooth * avg + (1 - smooth) * e.loss
            rows.append({"step": step, "loss": avg / (1 - smooth**n), "series": "train (batch)"})
        elif e.type == "epoch" and e.valid_loss is not None and math.isfinite(e.valid_loss):
            rows.append({"step": step, "loss": float(e.valid_loss), "series": "valid (epoch)"})
    # Typed columns even when empty: the plot picks numeric axes from the first frame it sees.
    return pd.DataFrame(rows, columns=["step", "loss", "series"]).astype({"step": "int64", "loss": "float64", "series": "str"})


def loss_figure(events: list):
    """The loss curves as a matplotlib figure (None before the first batch): smoothed training loss per batch,
    validation loss per epoch. A figure, not a Gradio LinePlot: the plot keeps the series it saw first, so a
    curve that starts later (validation) would never be drawn while the data grows."""
    df = loss_frame(events)
    if df.empty:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3))
    for series, style in (("train (batch)", "-"), ("valid (epoch)", "o-")):
        part = df[df["series"] == series]
        if not part.empty:
            ax.plot(part["step"], part["loss"], style, label=series, markersize=4)
    ax.set_title("Loss")
    ax.set_xlabel("batch")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    plt.close(fig)
    return fig


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def lr_find_frame(meta: dict | None) -> pd.DataFrame:
    """lr_find's curve as columns log10_lr, loss (empty when the learning rate was given, not found)."""
    data = (meta or {}).get("lr_find") or {}
    lrs, losses = data.get("lrs") or [], data.get("losses") or []
    rows = [
        {"log10_lr": math.log10(lr), "loss": float(loss)}
        for lr, loss in zip(lrs, losses)
        if lr > 0 and math.isfinite(float(loss))
    ]
    return pd.DataFrame(rows, columns=["log10_lr", "loss"]).astype("float64")


def per_class_frame(meta: dict | None) -> pd.DataFrame:
    """Precision, recall, F1 and support per class from model.json."""
    per_class = ((meta or {}).get("metrics") or {}).get("per_class") or {}
    rows = [{"class": c} | {k: _round(v, 3) if k != "support" else v for k, v in figs.items()} for c, figs in per_class.items()]
    return pd.DataFrame(rows, columns=["class", "precision", "recall", "f1", "support"])


def confusion_frame(meta: dict | None) -> pd.DataFrame:
    """The confusion matrix as a table: one row per true class, one column per predicted class."""
    meta = meta or {}
    conf, classes = meta.get("confusion"), meta.get("classes") or []
    if not conf:
        return pd.DataFrame()
    df = pd.DataFrame(conf, columns=[f"→ {c}" for c in classes])
    df.insert(0, "true class", classes)
    return df


def confusion_figure(meta: dict | None):
    """A matplotlib figure of the confusion matrix (None when the model has no validation set)."""
    meta = meta or {}
    conf, classes = meta.get("confusion"), meta.get("classes") or []
    if not conf:
        return None
    plt = _pyplot()
    # At least 4 inches wide: the title is wider than a 2-class matrix and would be cut off.
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 + 0.9 * len(classes)), 1.2 + 0.8 * len(classes)))
    ax.imshow(conf, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = max(max(r) for r in conf) or 1
    for i, row in enumerate(conf):
        for j, v in enumerate(row):
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > top / 2 else "black")
    ax.set_title("Confusion matrix (validation)")
    fig.tight_layout()
    plt.close(fig)
    return fig
