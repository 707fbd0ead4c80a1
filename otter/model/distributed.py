"""One job over several processes: Hugging Face Accelerate (PyTorch DistributedDataParallel underneath).

`accelerate launch --multi_gpu --num_processes N -m otter train ...` (or torchrun, or two machines with
`--machine_rank`) starts N copies of the command. `ranks()` says which one this is; in a plain
`python -m otter ...` it is the only one, and nothing here imports Accelerate or touches a process group.

How the work is divided:
- training: every process trains the same network on its share of each epoch's batches (fastai's
  `DistributedTrainer`, which wraps the model in DDP and the loaders in `DistributedDL`); the batch size stays
  the job's batch size, split between the processes, so the recipe takes the same steps as in one process;
- work that is the same for every process and has side effects (the training lock, fitting the linear head,
  evaluating, calibrating, writing the model) is rank 0's alone (`on_main`): the others wait for its outcome,
  and fail with it when it fails, without a line of their own;
- embeddings, pooled features and the audit's folds are split by `shard` and put back together by `gather`.

Without a GPU, `Accelerator()` under `accelerate launch --multi_gpu` reports DistributedType.NO in every
process (each would train alone on all the data, silently); `Accelerator(cpu=True)` gives MULTI_CPU over
gloo, so `cpu` is set whenever no GPU is visible.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from ..errors import OtterError

__all__ = ["PeerFailed", "Ranks", "launched", "peer_failure", "ranks", "world_rank", "world_size"]

T = TypeVar("T")

# How long a process waits in a collective for the others. Rank 0 evaluates, calibrates and writes the model
# while the others wait: minutes, more on a big data set. A process that dies closes its connections, so the
# others fail at once rather than at this limit; only a live but stuck process makes them wait this long.
COLLECTIVE_TIMEOUT = timedelta(hours=2)


class PeerFailed(OtterError, RuntimeError):
    """Another process of the job failed; that process reports why (so this one stays silent)."""


def world_size() -> int:
    """How many processes the launcher started for this job (WORLD_SIZE, set by accelerate launch/torchrun)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def world_rank() -> int:
    """This process's rank in the job (RANK, set by the launcher; 0 when alone)."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def launched() -> bool:
    """True in a process of a job of several processes."""
    return world_size() > 1


@dataclass
class Ranks:
    """This process's place in the job: `rank` of `world` (0 of 1 when alone), `local_rank` on its machine."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str | None = None  # "gloo", "nccl"... ; None when alone
    accelerator: Any = field(default=None, repr=False)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    # ----------------------------------------------------------------------------------- collectives

    def barrier(self) -> None:
        if self.distributed:
            self.accelerator.wait_for_everyone()

    def broadcast(self, value: T) -> T:
        """Rank 0's `value`, in every process (pickled between the job's own processes)."""
        if not self.distributed:
            return value
        from accelerate.utils import broadcast_object_list

        return broadcast_object_list([value])[0]

    def gather(self, value: T) -> list[T]:
        """Every process's `value`, in rank order, in every process."""
        if not self.distributed:
            return [value]
        import torch.distributed as dist

        out: list = [None] * self.world
        dist.all_gather_object(out, value)
        return out

    def on_main(self, fn: Callable[[], T]) -> T:
        """Run `fn` in rank 0 alone and return its result in every process. When it raises, rank 0 raises it and
        the others raise `PeerFailed` (silent: rank 0 says what went wrong, once)."""
        if not self.distributed:
            return fn()
        if self.is_main:
            try:
                with self.alone():
                    value = fn()
            except BaseException as ex:
                self.broadcast(("failed", f"{type(ex).__name__}: {ex}"))
                raise
            return self.broadcast(("ok", value))[1]
        status, value = self.broadcast(None)
        if status != "ok":
            raise PeerFailed(f"rank 0 failed ({value})")
        return value

    @contextlib.contextmanager
    def alone(self) -> Iterator[None]:
        """fastai gathers every batch's predictions and losses from all processes whenever WORLD_SIZE > 1, so that
        work this process does alone (rank 0's evaluation, each process's lr_find) would wait for the others
        forever: here fastai sees one process."""
        if not self.distributed:
            yield
            return
        saved = os.environ.get("WORLD_SIZE")
        os.environ["WORLD_SIZE"] = "1"
        try:
            yield
        finally:
            os.environ["WORLD_SIZE"] = saved if saved is not None else str(self.world)

    # ---------------------------------------------------------------------------------------- shards

    def shard(self, n: int) -> range:
        """The indices of `n` items this process takes: every world-th from its rank (balanced to one item)."""
        return range(self.rank, n, self.world)

    def map_sharded(self, fn: Callable[[list], Any], items: Sequence) -> Any:
        """`fn(items)` computed in shares: each process runs `fn` on its `shard`, and every process gets the rows
        of all of them back in the order of `items` (numpy arrays of one row per item, concatenated)."""
        import numpy as np

        if not self.distributed:
            return fn(list(items))
        mine = list(self.shard(len(items)))
        part = fn([items[i] for i in mine]) if mine else None
        parts = self.gather((mine, part))
        shaped = next(p for _, p in parts if p is not None)
        out = np.empty((len(items), *shaped.shape[1:]), dtype=shaped.dtype)
        for idx, p in parts:
            if idx:
                out[idx] = p
        return out

    def local_batch(self, bs: int) -> int:
        """Each process's batch size for a job batch of `bs` images: the same steps per epoch as in one process."""
        return max(1, bs // self.world)

    # ----------------------------------------------------------------------------------------- fastai

    def attach(self, learn) -> None:
        """Make the learner's fits data-parallel over the job's processes (nothing when alone)."""
        if self.distributed and not any(isinstance(cb, _trainer_cls()) for cb in learn.cbs):
            learn.add_cb(_trainer_cls()(self))

    def detach(self, learn) -> None:
        """Back to a learner of this process alone (for rank 0's evaluation, which must not wait for the others)."""
        learn.remove_cbs([cb for cb in learn.cbs if isinstance(cb, _trainer_cls())])

    def split_report(self, learn) -> dict | None:
        """How the last training epoch's images were divided between the processes (every process must call it):
        {"backend", "images_per_process": [...], "images": distinct images trained on, "images_shared": seen by
        more than one (fastai repeats a few to give every process as many)}. None when alone."""
        if not self.distributed:
            return None
        cb = next((c for c in learn.cbs if isinstance(c, _trainer_cls())), None)
        seen = list(cb.train_idxs) if cb is not None else []
        parts = self.gather(seen)
        counts: dict[int, int] = {}
        for part in parts:
            for i in set(part):
                counts[i] = counts.get(i, 0) + 1
        return {
            "backend": self.backend,
            "images_per_process": [len(p) for p in parts],
            "images": len(counts),
            "images_shared": sum(1 for c in counts.values() if c > 1),
        }


@functools.cache
def ranks() -> Ranks:
    """This process's `Ranks`; the first call in a launched job joins its process group (through Accelerate)."""
    if not launched():
        return Ranks()
    import torch
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs

    acc = Accelerator(cpu=not torch.cuda.is_available(), kwargs_handlers=[InitProcessGroupKwargs(timeout=COLLECTIVE_TIMEOUT)])
    if acc.num_processes != world_size():  # never silently N copies each training alone on all the data
        raise OtterError(
            f"launched as {world_size()} processes but Accelerate set up {acc.num_processes} ({acc.distributed_type})"
        )
    return Ranks(acc.process_index, acc.num_processes, acc.local_process_index, acc.state.backend, acc)


def peer_failure(ex: BaseException) -> bool:
    """True when `ex` only says that another process of the job went away (that process reports its own error)."""
    if isinstance(ex, PeerFailed):
        return True
    if "torch" not in sys.modules:  # no tensor work ran, so no peer to lose; and a plain error must not import torch
        return False
    try:
        from torch.distributed import DistBackendError, DistNetworkError
    except ImportError:  # pragma: no cover - torch without distributed support
        return False
    if isinstance(ex, (DistBackendError, DistNetworkError)):
        return True
    text = str(ex)
    gone = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "Socket Timeout")
    return isinstance(ex, RuntimeError) and any(g in text for g in gone)


# ---------------------------------------------------------------------------------------------- fastai


@functools.cache
def _trainer_cls():
    """fastai's DistributedTrainer, with loaders that also run on gloo and record which images each process got."""
    from fastai.distributed import DistributedDL, DistributedTrainer

    class SharedDL(DistributedDL):
        """fastai's DistributedDL broadcasts the epoch's order as a CUDA tensor (NCCL only); this one sends it the
        way the process group can (a CPU tensor on gloo), and tells the trainer which items this process took."""

        def __init__(self, dl, trainer, **kwargs):
            super().__init__(dl, **kwargs)
            self.trainer, self.training = trainer, dl is trainer.learn.dls.train

        def _broadcast(self, t, rank):
            return self.trainer.ranks.broadcast(list(t)) if rank == 0 else list(t)

        def get_idxs(self):
            idxs = super().get_idxs()
            if self.training:
                self.trainer.train_idxs = list(idxs)
            return idxs

    class OtterDistributedTrainer(DistributedTrainer):
        """DDP through Accelerate (fastai's), on gloo when there is no GPU; BatchNorm synchronised on GPUs only
        (SyncBatchNorm does not run on CPU tensors)."""

        def __init__(self, r: Ranks):
            import torch

            gpu = torch.cuda.is_available()
            super().__init__(sync_bn=gpu, cpu=not gpu)
            self.ranks, self.train_idxs = r, []

        def _wrap_dl(self, dl):
            if isinstance(dl, DistributedDL):
                return dl
            return SharedDL(dl, self, rank=self.ranks.rank, world_size=self.ranks.world, device=dl.device)

    return OtterDistributedTrainer
