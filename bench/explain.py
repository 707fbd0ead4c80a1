"""Cost of an explanation: Predictor.explain (Grad-CAM + overlay) vs Predictor.predict on the same photo.

    python bench/explain.py [--model models/otters] [--image ../shared/otters/sea/<first>.jpg]

Without the model folder it builds an untrained xresnet18 at 192 px (the shipped size): the cost does not
depend on the weights. Medians of many runs, interleaved, both measured in this run on this machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore")

import torch  # noqa: E402

from bench.common import record  # noqa: E402
from otter.data.images import load_image  # noqa: E402
from otter.model.io import build_model  # noqa: E402
from otter.model.predict import Predictor  # noqa: E402


def main() -> None:
    root = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(root / "models" / "otters"))
    ap.add_argument("--image", default=None, help="default: the first sea otter sample photo")
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    if Path(args.model, "model.json").is_file():
        pred = Predictor.load(args.model)
    else:
        meta = {"classes": ["river", "sea"], "arch": "xresnet18", "input_size": 192}
        pred = Predictor(build_model(meta), meta, None)
    image = args.image or str(sorted((root / ".." / "shared" / "otters" / "sea").glob("*.jpg"))[0])
    photo = load_image(image)  # decoded once, so both timings are model work (+ the overlay for explain)
    r = {
        "arch": pred.meta["arch"],
        "image_size": pred.size,
        "photo": f"{photo.width}x{photo.height}",
        "threads": torch.get_num_threads(),
    }
    # Interleaved, so that both see the same load on a shared machine.
    for _ in range(2):
        pred.predict(photo), pred.explain(photo)
    times = {"predict_ms": [], "explain_ms": []}
    for _ in range(args.repeat):
        for key, fn in (("predict_ms", pred.predict), ("explain_ms", pred.explain)):
            t = time.perf_counter()
            fn(photo)
            times[key].append(1e3 * (time.perf_counter() - t))
    r |= {key: statistics.median(v) for key, v in times.items()}
    r["explain_vs_predict"] = r["explain_ms"] / r["predict_ms"]
    print(
        f"{r['arch']} at {r['image_size']} px, photo {r['photo']}: predict {r['predict_ms']:.1f} ms, "
        f"explain {r['explain_ms']:.1f} ms ({r['explain_vs_predict']:.2f}x predict)"
    )
    record("explain", r)


if __name__ == "__main__":
    main()
