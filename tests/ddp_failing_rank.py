"""`python -m otter train` in which process 1 of the job raises at its third batch: run under accelerate launch by
tests/test_distributed.py (the whole job must fail, with one line, and leave the previous model)."""

import os
import sys

from otter.cli import main
from otter.model import train
from otter.model.jobs import TrainError

_batch_done = train.TrainRun.batch_done


def batch_done(self, i, n, loss):
    if os.environ.get("RANK") == "1" and i >= 3:
        raise TrainError("stand-in failure in this process")
    _batch_done(self, i, n, loss)


train.TrainRun.batch_done = batch_done
sys.exit(main(sys.argv[1:]))
