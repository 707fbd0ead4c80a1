"""Training over several processes (otter.model.distributed): real `accelerate launch` jobs of 2 CPU processes on
gloo, on one "machine" and on two (loopback), and a job one of whose processes fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from servers import free_port

from conftest import ROOT, make_small_set, weights_bytes

TINY = ["--no-pretrained", "--arch", "resnet18", "--sizes", "32", "--mixup", "0", "--quiet"]
RECIPE_64 = ["--sizes", "64", "--epochs", "1", "--bs", "8", "--quiet"]  # the default recipe, at 64 px
LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--mixed_precision", "no", "--dynamo_backend", "no"]


def launch(args: list[str], *, machines: int = 1, machine_rank: int = 0, port: int | None = None, background=False):
    """`accelerate launch` of 2 processes in all (over `machines` machines) on 127.0.0.1 running `args`."""
    cmd = [*LAUNCH, "--num_processes", "2", "--num_machines", str(machines), "--main_process_port", str(port or free_port())]
    if machines > 1:
        cmd += ["--machine_rank", str(machine_rank), "--main_process_ip", "127.0.0.1"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]), OMP_NUM_THREADS="1")
    kwargs = dict(cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if background:
        return subprocess.Popen(cmd + args, **kwargs)
    return subprocess.run(cmd + args, timeout=400, **kwargs)


@pytest.fixture(scope="module")
def two_process_model(tmp_path_factory):
    """(data, model folder) of a model trained by 2 CPU processes: the default recipe (EfficientNet-Lite0, its linear
    head fitted on the features of both processes, then one epoch of everything), shortened to 64 px photos."""
    base = tmp_path_factory.mktemp("ddp")
    data = make_small_set(base / "data", per_class=10, size=64)
    model = base / "models" / "ddp"
    done = launch(["-m", "otter", "train", "--data", str(data), "--model", str(model), *RECIPE_64])
    assert done.returncode == 0, done.stderr[-3000:]
    return data, model


def test_two_cpu_processes_train_one_model_that_predicts_like_one_process(two_process_model):
    from otter.model.predict import Predictor

    data, model = two_process_model
    meta = json.loads((model / "model.json").read_text())
    assert meta["processes"] == 2 and meta["distributed"]["backend"] == "gloo"
    assert meta["classes"] == ["river", "sea"]
    assert [p.name for p in model.parent.iterdir() if not p.name.startswith(".")] == ["ddp"], "one model, written once"
    images = sorted(data.glob("*/*.jpg"))
    predicted = [max(d, key=d.get) for d in Predictor.load(model).predict_batch(images)]
    # A one-process training of the same recipe agreed on all 20 photos, probabilities within 0.02 (not rerun here:
    # it took 100-150 s of a loaded CI machine).
    assert np.mean([a == p.parent.name for a, p in zip(predicted, images)]) >= 0.8  # measured: 0.95


def test_the_two_processes_split_each_epoch_between_them(two_process_model):
    """Each process trained on its half of the training images (fastai repeats one when the count is odd)."""
    _, model = two_process_model
    meta = json.loads((model / "model.json").read_text())
    n_train, split = meta["dataset"]["n_train"], meta["distributed"]
    assert split["images"] == n_train  # together they saw every training image...
    assert split["images_per_process"] == [(n_train + 1) // 2] * 2  # ...each about half of them...
    assert split["images_shared"] == n_train % 2  # ...and none twice but the one that evens the shares


def test_two_machines_on_loopback_train_one_model(tmp_path):
    """Two launches, machine rank 0 and 1, one process each, meeting at 127.0.0.1: the multi-machine path."""
    data = make_small_set(tmp_path / "data", per_class=6, size=48)
    model = tmp_path / "models" / "two"
    args = ["-m", "otter", "train", "--data", str(data), "--model", str(model), *TINY, "--epochs", "1", "--bs", "8"]
    port = free_port()
    second = launch(args, machines=2, machine_rank=1, port=port, background=True)
    try:
        first = launch(args, machines=2, machine_rank=0, port=port)
        out, err = second.communicate(timeout=120)
    finally:
        second.kill()
    assert first.returncode == 0, first.stderr[-3000:]
    assert second.returncode == 0, err[-3000:]
    meta = json.loads((model / "model.json").read_text())
    assert meta["processes"] == 2 and meta["distributed"]["images"] == meta["dataset"]["n_train"]
    assert "model written to" in first.stdout and "model written to" not in out  # rank 0 reports, once


def test_a_process_that_raises_fails_the_job_with_one_line_and_keeps_the_model(model_copy, tmp_path):
    data = make_small_set(tmp_path / "data", per_class=8, size=48)
    before = weights_bytes(model_copy)
    args = [
        str(ROOT / "tests" / "ddp_failing_rank.py"),
        "train",
        "--data",
        str(data),
        "--model",
        str(model_copy),
        *TINY,
        "--epochs",
        "3",
    ]
    done = launch([*args, "--bs", "4"])
    assert done.returncode != 0
    errors = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("error:")]
    assert errors == ["error: process 1 of 2: stand-in failure in this process"]
    assert weights_bytes(model_copy) == before
    assert [p.name for p in Path(model_copy).parent.iterdir() if p.is_dir() and not p.name.startswith(".")] == ["tiny"]


def test_sharded_embeddings_equal_one_process_and_the_audit_folds_run_across_both(tmp_path):
    """`accelerate launch -m otter audit`: each process embeds its share, rank 0 writes the cache and the audit."""
    import shutil

    from otter.review.audit import audit, load_audit
    from otter.review.embeddings import cache_path, embed_folder, load_cache, spec

    shared = make_small_set(tmp_path / "shared", per_class=7, size=64)  # 14 images: 7 for each process
    alone = tmp_path / "alone"
    shutil.copytree(shared, alone)
    args = ["-m", "otter", "audit", "--data", str(shared), "--models", str(tmp_path / "models"), "--folds", "2"]
    done = launch([*args, "--json"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(json.loads(done.stdout)) == 14  # rank 0 printed the audit, once
    ours, theirs = load_cache(cache_path(shared), spec()), load_cache(cache_path(alone), spec())
    assert not theirs
    embed_folder(alone)
    theirs = load_cache(cache_path(alone), spec())
    assert sorted(ours) == sorted(theirs) and len(ours) == 14
    assert max(float(np.abs(ours[k] - theirs[k]).max()) for k in ours) < 1e-4
    by_image = {r["image"]: r["probs"] for r in load_audit(shared).rows}
    for row in audit(alone, folds=2, models_dir=tmp_path / "models").rows:
        assert np.allclose(row["probs"], by_image[row["image"]], atol=1e-4)


def test_each_process_of_a_machine_takes_the_gpu_of_its_local_rank(monkeypatch):
    import torch

    from otter.model.device import pick_device

    monkeypatch.delenv("OTTER_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert pick_device() == torch.device("cuda", 1)
    monkeypatch.setenv("LOCAL_RANK", "3")  # more processes than GPUs: they share, round robin
    assert pick_device() == torch.device("cuda", 1)
    monkeypatch.delenv("LOCAL_RANK")
    assert pick_device() == torch.device("cuda")
    monkeypatch.setenv("OTTER_DEVICE", "cpu")
    assert pick_device() == torch.device("cpu")


def test_alone_a_process_is_the_whole_job(monkeypatch):
    from otter.model.distributed import Ranks, launched, peer_failure, ranks

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not launched() and ranks() == Ranks() and ranks().is_main
    r = Ranks()
    assert r.on_main(lambda: 7) == 7 and r.gather("x") == ["x"] and r.broadcast(3) == 3 and list(r.shard(3)) == [0, 1, 2]
    assert r.map_sharded(lambda part: np.array([[len(part)]] * len(part)), ["a", "b"]).tolist() == [[2], [2]]
    assert peer_failure(RuntimeError("[gloo] Connection closed by peer [127.0.0.1]:123")) and not peer_failure(ValueError("x"))
    # in a job of 2, process 1 of them takes every other item: shares differ by one at most
    assert list(Ranks(rank=1, world=2).shard(5)) == [1, 3] and Ranks(world=4).local_batch(16) == 4
