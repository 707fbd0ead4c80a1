"""`python -m otter predict PHOTO` from a cold process: seconds to the printed answer, against the same run's
`python -c "import torch"` (the floor while prediction runs on torch) and a bare `python -c pass`.

python bench/cli_predict.py [--image ../shared/otters/sea/00000001.jpg] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import record  # noqa: E402


def seconds(argv: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--image", default=str(ROOT / ".." / "shared" / "otters" / "sea" / "00000001.jpg"))
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    commands = {
        "python": [sys.executable, "-c", "pass"],
        "import torch": [sys.executable, "-c", "import torch"],
        "otter predict": [sys.executable, "-m", "otter", "predict", "--models", str(ROOT / "models"), args.image],
    }
    times = {name: [] for name in commands}
    for _ in range(args.runs):  # interleaved, so a busy moment hits all three alike
        for name, argv in commands.items():
            times[name].append(seconds(argv))
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        print(f"{name:14s} median {medians[name]:.2f} s  ({', '.join(f'{x:.2f}' for x in t)})")
    rest = medians["otter predict"] - medians["import torch"]
    print(
        f"otter predict is {medians['otter predict'] / medians['import torch']:.2f}x `import torch`; "
        f"{rest:.2f} s beyond it (our imports, loading the model, one forward pass)"
    )
    record("cli_predict", {k.replace(" ", "_") + "_s": round(v, 3) for k, v in medians.items()})


if __name__ == "__main__":
    main()
