"""What a training run reports as it goes (`train(on_event=...)`, `TrainJob.events`): typed events, read by
attribute, as fastai's callbacks read the learner's typed attributes. They are every long job's events
(`otter.progress.Event`), kept importable here under training's names.
"""

from __future__ import annotations

from ..progress import Event, EventSink, JobEnded, event_type

TrainEvent = Event

__all__ = ["Event", "EventSink", "JobEnded", "TrainEvent", "event_type"]
