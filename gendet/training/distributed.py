"""torch.distributed for the trainer: join torchrun's process group, rank helpers, the few collectives it needs.

Launched by ``torchrun`` (which sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR), ``setup``
joins the process group: NCCL when the rank trains on CUDA (one GPU per local rank), gloo on
CPU. Without those variables (or with WORLD_SIZE=1) nothing is initialised and every helper
here is a no-op that returns the local value, so a plain ``gendet train`` runs exactly as
before. Only rank 0 writes files; ``NullTrainLog`` is what the other ranks log to.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from gendet.training.state import mix_seed, seed_everything

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_world_size() -> int:
    """WORLD_SIZE as torchrun sets it (1 when not launched by torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def setup(device: str) -> tuple[DistInfo, str]:
    """Join the process group torchrun describes; returns (info, this rank's device).

    "cuda" / "auto" (with CUDA present) become ``cuda:LOCAL_RANK``: one GPU per process.
    """
    if env_world_size() <= 1:
        return DistInfo(), device
    rank, world, local = int(os.environ["RANK"]), env_world_size(), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        if device in ("cuda", "auto"):
            gpus = torch.cuda.device_count()
            if local >= gpus:  # NCCL refuses two ranks on one GPU; say so before CUDA says "invalid device ordinal"
                raise RuntimeError(f"DDP on CUDA needs one GPU per process: local rank {local} of a node with {gpus} "
                                   f"GPU(s); start at most {gpus} process(es) per node (torchrun --nproc_per_node)")
            device = f"cuda:{local}"
        torch.cuda.set_device(torch.device(device))
    elif device == "auto":
        device = "cpu"
    backend = "nccl" if use_cuda else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, device_id=torch.device(device) if use_cuda else None)
    return DistInfo(rank, world, local, backend), device


def info() -> DistInfo:
    """The current process group as a DistInfo (rank 0 of 1 when none is initialised)."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistInfo()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return DistInfo(dist.get_rank(), dist.get_world_size(), local, dist.get_backend())


def teardown(success: bool) -> None:
    """Leave the process group. On success every rank waits for the others first: without this
    barrier a gloo rank that leaves early made its peer abort at exit (about 1 run in 3 here)."""
    if dist.is_available() and dist.is_initialized():
        if success:
            dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    if info().enabled:
        dist.barrier()


@contextlib.contextmanager
def main_process_first() -> Iterator[None]:
    """Rank 0 runs the block first (e.g. builds a data cache), the others after it is done."""
    d = info()
    if d.enabled and not d.is_main:
        dist.barrier()
    yield
    if d.enabled and d.is_main:
        dist.barrier()


def _comm_device() -> torch.device:
    # NCCL only moves CUDA tensors; gloo moves CPU tensors.
    return torch.device("cuda", torch.cuda.current_device()) if info().backend == "nccl" else torch.device("cpu")


def all_sum(values: Sequence[float]) -> list[float]:
    """Element-wise sum over ranks (float64)."""
    if not info().enabled:
        return [float(v) for v in values]
    t = torch.tensor(list(values), dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu().tolist()


def gather_ints(values: Sequence[int]) -> list[list[int]]:
    """Every rank's `values` (same length on all ranks), in rank order."""
    if not info().enabled:
        return [[int(v) for v in values]]
    t = torch.tensor(list(values), dtype=torch.int64, device=_comm_device())
    out = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(out, t)
    return [o.cpu().tolist() for o in out]


def gather_objects(obj: T) -> list[T]:
    """Every rank's picklable `obj`, in rank order."""
    if not info().enabled:
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_buffers(module: nn.Module) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank.

    DDP broadcasts buffers at the *start* of each forward, so after the last training
    forward each rank holds statistics updated with its own shard; evaluating or saving
    then needs this.
    """
    if not info().enabled:
        return
    for buf in module.buffers():
        dist.broadcast(buf.data, src=0)


def average_gradients(module: nn.Module) -> None:
    """Mean of the gradients over ranks, by hand: for an accumulation group whose last batch
    (the one DDP would have synchronised) was skipped on every rank."""
    if not info().enabled:
        return
    world = dist.get_world_size()
    for p in module.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(world)


def wrap_ddp(module: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel around `module` when distributed, else `module` itself."""
    if not info().enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel

    # find_unused_parameters=False: every trainable parameter of a gendet detector takes part
    # in its forward; DDP raises (naming the parameters) if one does not.
    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)


def seed_rank(seed: int, rank: int, step: int) -> None:
    """Model-side RNG (dropout) of one rank at one optimizer step, derived from (seed, rank, step).

    Derived, not saved: a state written by N ranks resumes on M ranks with well-defined RNG.
    """
    seed_everything(mix_seed(seed, rank, step) & 0x7FFFFFFF)


def rank_shard(items: Sequence[T], d: DistInfo) -> list[T]:
    """This rank's part of a global batch (or list): every world_size-th item from `rank`."""
    return list(items[d.rank :: d.world_size])


def state_sha256(module: nn.Module) -> str:
    """SHA-256 over the state dict (names, dtypes, shapes, bytes): equal iff the weights are bit-identical."""
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        # reshape first: a 0-d tensor (BatchNorm's num_batches_tracked) cannot be viewed as bytes
        h.update(t.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class NullTrainLog:
    """The log of ranks other than 0: they must not touch the output folder."""

    def start(self, offsets: dict[str, int] | None) -> None:
        pass

    def offsets(self) -> dict[str, int]:
        return {"jsonl": 0, "csv": 0}

    def write(self, row: dict[str, Any]) -> None:
        pass
