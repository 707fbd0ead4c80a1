"""Training and embedding throughput over processes (otter.model.distributed) on this CPU: 1 process x 1 thread,
1 process x 2 threads and 2 processes x 1 thread (`accelerate launch --multi_gpu`, gloo), and the scaling
efficiency of 2 processes, throughput(2 x 1) / (2 x throughput(1 x 1)).

    python bench/ddp.py [--data ../shared/otters] [--size 128] [--epochs 3] [--out bench/runs/39-ddp-cpu]
                        [--configs 1x1,1x2,2x1]

Training: the default recipe (EfficientNet-Lite0 from its ImageNet weights, linear head fitted first) at `--size`
px for `--epochs` epochs through `fit_recipe` (DDP when launched), the same 80/20 split; throughput is training
images per second over the epochs after the first (each epoch's validation included). Embeddings: the audit's
vectors of every photo (224 px, with the mirror image) through `embeddings.compute_sharded`, from a barrier to
all vectors gathered in every process. Each configuration runs in fresh processes; raw rows go to
`<out>/rows.jsonl`, the ratios to `<out>/summary.json` and bench/results.json ("ddp_cpu").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore")

CONFIGS = [(1, 1), (1, 2), (2, 1)]  # (processes, threads per process)


def worker(args) -> None:
    """One process of one configuration: embeddings, then training; rank 0 appends the row."""
    import torch

    from otter.model import distributed
    from otter.model.train import TrainConfig, TrainRun, collect_items, fit_recipe, split_valid
    from otter.review import embeddings

    torch.set_num_threads(args.threads)
    ranks = distributed.ranks()
    items, labels, classes = collect_items(args.data)
    embeddings.compute(items[:2])  # load the network and warm up, outside the timing
    ranks.barrier()
    t = time.perf_counter()
    failed = embeddings.compute_sharded(items)
    embed_s = time.perf_counter() - t
    cfg = TrainConfig(sizes=(args.size,), epochs=args.epochs)
    valid_idx = split_valid(len(items), cfg.valid_pct, cfg.seed)
    marks = []
    run = TrainRun(lambda e: marks.append(time.perf_counter()) if e.type == "epoch" and "all" in e.stage else None, None)
    with tempfile.TemporaryDirectory() as workdir:
        fit_recipe(items, labels, classes, valid_idx, cfg, run, workdir)
    n_train = len(items) - len(valid_idx)
    if ranks.is_main:
        row = {
            "processes": ranks.world,
            "threads": args.threads,
            "backend": ranks.backend,
            "n_images": len(items),
            "embed_failed": len(failed),
            "embed_seconds": round(embed_s, 2),
            "embed_images_per_s": round(len(items) / embed_s, 2),
            "n_train": n_train,
            "size": args.size,
            "bs": cfg.bs,
            "epoch_ends": [round(m - marks[0], 2) for m in marks],
            "train_images_per_s": round(n_train * (len(marks) - 1) / (marks[-1] - marks[0]), 2),
            "cpu": torch.backends.cpu.get_cpu_capability(),
            "torch": torch.__version__,
        }
        with open(args.rows, "a") as fh:
            fh.write(json.dumps(row) + "\n")


def launch(processes: int, threads: int, args, rows: Path) -> None:
    work = [str(Path(__file__).resolve()), "--worker", "--threads", str(threads), "--rows", str(rows)]
    work += ["--data", str(args.data), "--size", str(args.size), "--epochs", str(args.epochs)]
    if processes == 1:
        cmd = [sys.executable, *work]
    else:
        from tests.servers import free_port

        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes)]
        cmd += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
        cmd += ["--main_process_port", str(free_port()), *work]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT))
    print(f"== {processes} process(es) x {threads} thread(s): {' '.join(cmd)}", flush=True)
    subprocess.run(cmd, env=env, check=True, cwd=ROOT)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "otters")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "runs" / "39-ddp-cpu")
    p.add_argument("--configs", default="1x1,1x2,2x1", help="PROCESSESxTHREADS to run (rows are appended)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--rows", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    args.out.mkdir(parents=True, exist_ok=True)
    rows_file = args.out / "rows.jsonl"
    for config in args.configs.split(","):
        processes, threads = map(int, config.split("x"))
        launch(processes, threads, args, rows_file)
    rows = {(r["processes"], r["threads"]): r for r in map(json.loads, rows_file.read_text().splitlines())}  # the last
    if not all(c in rows for c in CONFIGS):
        return print(f"rows so far in {rows_file}; the summary needs {', '.join(f'{p}x{t}' for p, t in CONFIGS)}")
    one, two_threads, two_procs = rows[(1, 1)], rows[(1, 2)], rows[(2, 1)]
    summary = {}
    for what in ("train", "embed"):
        key = f"{what}_images_per_s"
        summary[what] = {
            "1x1": one[key],
            "1x2": two_threads[key],
            "2x1": two_procs[key],
            "2x1_over_1x2": round(two_procs[key] / two_threads[key], 3),
            "efficiency_2_processes": round(two_procs[key] / (2 * one[key]), 3),
            "efficiency_2_threads": round(two_threads[key] / (2 * one[key]), 3),
        }
    summary["settings"] = {"size": args.size, "epochs": args.epochs, "data": str(args.data), "n_images": one["n_images"]}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    from bench.common import record

    record("ddp_cpu", summary)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
