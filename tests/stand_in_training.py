"""A stand-in for `otter.model.worker` that dies the way an out-of-memory kill does: it reports a start and a batch,
then gets SIGKILL, without a word. tests/test_worker.py points the app's training at it."""

import argparse
import json
import os
import signal
import time

p = argparse.ArgumentParser()
for name in ("--data", "--model", "--config", "--events"):
    p.add_argument(name)
args = p.parse_args()
with open(args.events, "a") as fh:
    fh.write(json.dumps({"event": {"type": "start", "n_train": 3, "n_valid": 1, "classes": ["a", "b"]}}) + "\n")
    fh.write(json.dumps({"event": {"type": "batch", "batch": 1, "batches": 2, "loss": 0.7, "progress": 0.1}}) + "\n")
time.sleep(1.0)
os.kill(os.getpid(), signal.SIGKILL)
