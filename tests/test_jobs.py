import threading
import time

import numpy as np
import pytest

from otter.model.events import JobEnded
from otter.model.jobs import BackgroundJob, TrainingBusy, TrainingCancelled
from otter.model.train import TrainJob
from otter.progress import Event


class GatedJob(BackgroundJob):
    kind, noun = "gated", "a gated job"

    def __init__(self, outcome=None, on_done=None):
        super().__init__(on_done)
        self.gate = threading.Event()
        self.outcome = outcome

    def work(self):
        self.events.append(Event("stage", stage="waiting"))
        while not self.gate.wait(0.01):
            if self._cancel.is_set():
                raise TrainingCancelled("gated job cancelled")
        if self.outcome is not None:
            raise self.outcome
        return 42


def test_one_job_at_a_time_across_kinds_and_the_result_when_done(tmp_path):
    done = []
    job = GatedJob(on_done=done.append).start()
    try:
        assert job.running and GatedJob.current() is job
        with pytest.raises(TrainingBusy, match="a gated job is already running"):
            GatedJob().start()
        # another kind is refused too: both keep the CPU busy
        with pytest.raises(TrainingBusy, match="a gated job is running; start a training job when it has finished"):
            TrainJob(tmp_path / "data", tmp_path / "models" / "m").start()
        assert TrainJob.current() is None or not TrainJob.current().running
    finally:
        job.gate.set()
        job.wait(10)
    assert (job.state, job.result, job.error) == ("done", 42, None)
    assert job.events == [Event("stage", stage="waiting"), JobEnded("done")] and job.last("stage").stage == "waiting"
    assert done == [job]
    second = GatedJob().start()  # the slot is free again
    second.gate.set()
    assert second.wait(10).state == "done"


def test_cancel_and_failure_end_with_one_line_messages():
    job = GatedJob().start()
    job.cancel()
    assert job.wait(10).state == "cancelled" and job.error == "gated job cancelled"
    failing = GatedJob(outcome=ValueError("boom")).start()
    failing.gate.set()
    assert failing.wait(10).state == "failed" and failing.error == "gated failed: internal error (ValueError), see the log"
    assert failing.events[-1] == JobEnded("failed", "gated failed: internal error (ValueError), see the log")


def test_predict_items_leaves_the_callers_grad_mode_as_it_was():
    import torch

    from otter.model.train import predict_items

    class Learn:  # the two things predict_items uses of a fastai Learner; get_preds switches grad off, as fastai may
        class dls:
            vocab = ["a", "b"]

            @staticmethod
            def test_dl(items, bs):
                return items

        @staticmethod
        def get_preds(dl):
            torch.set_grad_enabled(False)
            return torch.tensor([[0.25, 0.75]] * len(dl)), None

    for mode in (False, True):
        with torch.set_grad_enabled(mode):
            probs, losses = predict_items(Learn, ["x.jpg"], ["b"])
            assert torch.is_grad_enabled() is mode
    assert losses[0] == pytest.approx(-np.log(0.75))


def test_a_job_counts_as_running_until_its_cleanup_is_over():
    from otter.model.jobs import BackgroundJob, TrainingBusy

    release = threading.Event()

    class Slow(BackgroundJob):
        kind, noun = "slow", "a slow job"

        def work(self):
            return 1

        def cleanup(self):
            release.wait(10)

    job = Slow().start()
    time.sleep(0.2)  # work is done; cleanup is waiting
    assert job.running and job.state == "running"
    with pytest.raises(TrainingBusy):
        Slow().start()
    release.set()
    job.wait(10)
    assert job.state == "done" and job.events[-1] == JobEnded("done")
