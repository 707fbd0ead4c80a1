"""Does bfloat16 prediction give the same answers as float32? The shipped model on every sample photo, both ways.

    python bench/bf16_agreement.py [--model models/otters] [--data ../shared/otters]

Prints how many photos get the same predicted class and the largest probability difference. Numerics only: on a CPU
without native bfloat16 the bf16 pass is emulated and slow, so no speed is measured here (bench/predict_speed.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import record  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(ROOT / "models" / "otters"))
    ap.add_argument("--data", default=str(ROOT / ".." / "shared" / "otters"))
    args = ap.parse_args()
    import numpy as np

    from otter.data.dataset import list_classes, list_images
    from otter.model.predict import Predictor

    photos = [p for c in list_classes(args.data) for p in list_images(args.data, c)]
    probs = {}
    for precision in ("fp32", "bf16"):
        predictor = Predictor.load(args.model, precision=precision)
        rows = predictor.predict_batch(photos)
        probs[precision] = np.array([[r[c] for c in predictor.classes] for r in rows])
    same = int((probs["fp32"].argmax(1) == probs["bf16"].argmax(1)).sum())
    worst = float(np.abs(probs["fp32"] - probs["bf16"]).max())
    print(f"{same} of {len(photos)} photos get the same class in bf16 as in fp32; largest probability difference {worst:.4f}")
    record("bf16_agreement", {"photos": len(photos), "same_class": same, "max_probability_difference": round(worst, 4)})


if __name__ == "__main__":
    main()
