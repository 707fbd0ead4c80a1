import threading

import pytest

from otter.jobs import BackgroundJob, TrainingBusy, TrainingCancelled
from otter.train import TrainJob


class GatedJob(BackgroundJob):
    kind, noun = "gated", "a gated job"

    def __init__(self, outcome=None, on_done=None):
        super().__init__(on_done)
        self.gate = threading.Event()
        self.outcome = outcome

    def work(self):
        self.events.append({"type": "stage", "stage": "waiting"})
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
    assert [e["type"] for e in job.events] == ["stage", "done"] and job.last("stage")["stage"] == "waiting"
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
    assert failing.wait(10).state == "failed" and failing.error == "gated failed: ValueError: boom"
    assert failing.events[-1] == {"type": "failed", "error": "gated failed: ValueError: boom"}
