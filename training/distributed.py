"""Data-parallel training on PyTorch's own engine: torchrun sets the env, this module sets up the process group.

    torchrun --standalone --nproc_per_node=2 -m training --epochs 40 --data-dir ../shared/data

Under torchrun (`WORLD_SIZE` > 1) every process is one rank: gloo on CPU, NCCL on CUDA (one GPU per local
rank). Without torchrun, `Ranks()` is the single process and every helper here is a no-op.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist

from model_store import devices

log = logging.getLogger(__name__)

RANK_SEED_STRIDE = 1000  # rank r seeds its shuffling/binarization/noise with seed + 1000 * r (rank 0 = single run)


@dataclass(frozen=True)
class Ranks:
    """Where this process stands in the job: global rank, number of processes, rank on this node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes the version, the record and progress bars."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_env(cls) -> Ranks:
        """The ranks torchrun announces in RANK / WORLD_SIZE / LOCAL_RANK (single process when unset)."""
        env = os.environ
        return cls(rank=int(env.get("RANK", 0)), world_size=int(env.get("WORLD_SIZE", 1)),
                   local_rank=int(env.get("LOCAL_RANK", 0)))

    @classmethod
    def current(cls) -> Ranks:
        """The ranks of the initialized default process group, else the single process."""
        if not (dist.is_available() and dist.is_initialized()):
            return cls()
        local_rank = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
        return cls(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank)

    def seed(self, seed: int) -> int:
        """Per-rank seed derived from the run's seed, so ranks draw different noise (rank 0 keeps `seed`)."""
        return seed + RANK_SEED_STRIDE * self.rank

    def shard(self, rows: torch.Tensor) -> torch.Tensor:
        """This rank's rows [rank::world_size], after dropping the < world_size rows that would make shards
        unequal (every rank must take the same number of optimizer steps)."""
        usable = rows.shape[0] - rows.shape[0] % self.world_size
        return rows[:usable][self.rank::self.world_size].contiguous()  # a copy: the full set can be freed

    def all_reduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise sum over ranks (returned on values' device); the input itself when single-process."""
        if not self.is_distributed:
            return values
        work = values.to(_collective_device()).clone()
        dist.all_reduce(work, op=dist.ReduceOp.SUM)
        return work.to(values.device)

    def mean(self, value: float) -> float:
        """The mean of a Python float over ranks."""
        if not self.is_distributed:
            return value
        return self.all_reduce_sum(torch.tensor([value], dtype=torch.float64)).item() / self.world_size

    def broadcast_from_main(self, obj: object) -> object:
        """Rank 0's picklable object, on every rank."""
        if not self.is_distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    @contextlib.contextmanager
    def local_main_first(self) -> Iterator[None]:
        """Local rank 0 of each node runs the block first (e.g. downloads MNIST); the others wait, then run it."""
        if self.is_distributed and self.local_rank != 0:
            dist.barrier()
        yield
        if self.is_distributed and self.local_rank == 0:
            dist.barrier()


def resolve_device(name: str, ranks: Ranks | None = None) -> torch.device:
    """auto (CUDA when available), cpu, cuda or cuda:N; under torchrun CUDA means cuda:LOCAL_RANK."""
    ranks = ranks or Ranks()
    device = devices.resolve_device(name, option="--device")
    if device.type == "cuda" and ranks.is_distributed:
        if device.index is not None:
            raise ValueError(f"--device {name} names one GPU, but under torchrun each rank uses cuda:LOCAL_RANK; "
                             "pass --device cuda (or auto) and choose GPUs with CUDA_VISIBLE_DEVICES")
        device = torch.device("cuda", ranks.local_rank)
    return device


@contextlib.contextmanager
def process_group(device_name: str) -> Iterator[Ranks]:
    """Joins the torchrun job (if any) for the block: NCCL when training on CUDA, else gloo; leaves it after."""
    ranks = Ranks.from_env()
    if not ranks.is_distributed or dist.is_initialized():
        yield Ranks.current()
        return
    device = resolve_device(device_name, ranks)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, device_id=device if device.type == "cuda" else None)
    log.info("rank %d of %d (local rank %d) joined the %s process group", ranks.rank, ranks.world_size,
             ranks.local_rank, backend)
    try:
        yield Ranks.current()
    finally:
        dist.destroy_process_group()


def backend_name() -> str | None:
    return dist.get_backend() if dist.is_available() and dist.is_initialized() else None


def _collective_device() -> torch.device:
    """NCCL reduces CUDA tensors only; gloo reduces CPU tensors."""
    if backend_name() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
