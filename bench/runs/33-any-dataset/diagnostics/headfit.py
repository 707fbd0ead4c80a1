# The head fit on the features diag.py saved: C chosen by choose_c, without and with label smoothing; log in the README.
import sys
import time

import numpy as np
import torch

sys.path.insert(0, "/work/i24")
torch.set_num_threads(int(sys.argv[1]))
from otter.model.heads import choose_c, fit_logistic  # noqa: E402

d = np.load("/tmp/i24/feats_bf16.npz")
x, y, xv, yv = d["x"], d["y"], d["xv"], d["yv"]
for sm in (0.0, 0.1):
    t = time.time()
    c, cv = choose_c(x, y, 10, sm)
    t1 = time.time() - t
    t = time.time()
    w, b = fit_logistic(x, y, 10, c, sm)
    t2 = time.time() - t
    z = xv @ w.T + b
    print(
        sm,
        "C",
        c,
        cv,
        "choose",
        round(t1, 1),
        "fit",
        round(t2, 1),
        "valid acc",
        (z.argmax(1) == yv).mean(),
        "norm",
        np.linalg.norm(w),
        "logit range",
        z.min(),
        z.max(),
    )
