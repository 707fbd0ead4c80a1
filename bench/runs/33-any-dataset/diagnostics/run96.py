# One training of the current recipe at one size (argv: data, size, precision, JSON of TrainConfig fields); the
# run96_*.log files. run96_old.log ran the same on commit 0ed418f (the head still fitted by scikit-learn).
import json
import sys
import time

sys.path.insert(0, "/work/i24")
from otter.model.train import TrainConfig, train

data, size, prec = sys.argv[1], int(sys.argv[2]), sys.argv[3]
extra = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
t0 = time.time()


def show(e):
    if e.type in ("epoch", "done"):
        print(
            f"{time.time() - t0:7.1f} {e.type} {e.stage} train {e.train_loss} valid {e.valid_loss} acc {e.accuracy}", flush=True
        )


import tempfile  # noqa: E402

r = train(data, TrainConfig(sizes=(size,), precision=prec, **extra), tempfile.mkdtemp() + "/m/x", on_event=show)
print(json.dumps({k: r.meta[k] for k in ("kept", "head_fit", "batch_size")}))
print(json.dumps(r.meta["calibration"]))
