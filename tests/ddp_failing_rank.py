"""`python -m otter train` in which process 1 of the job fails at its fifth image (as with a file that cannot be
read in its share of an epoch): run under accelerate launch by tests/test_distributed.py, where the whole job must
fail, with one line, and leave the previous model."""

import os
import sys

from otter.cli import main
from otter.model import loading
from otter.model.jobs import TrainError

_load = loading.load_training_image
_calls = [0]


def load_training_image(path, size):
    _calls[0] += 1
    if os.environ.get("RANK") == "1" and _calls[0] >= 5:
        raise TrainError("stand-in failure in this process")
    return _load(path, size)


loading.load_training_image = load_training_image
sys.exit(main(sys.argv[1:]))
