"""Scale-out under ``torchrun`` (torch.distributed): each rank attacks its share of the batches
on its own device; rank 0 merges.

Batch ``i`` belongs to rank ``i mod world``. Every rank stores its batches in the run
directory exactly as a single process would, so after a barrier rank 0 reads them all back
and writes the merged outputs: the same batches, seed and targets give the same files as a
single-process run, and an interrupted distributed run resumes like any other. The ranks must
see the same run directory (one machine, or a shared file system).

    torchrun --standalone --nproc_per_node 2 -m cli solve --spec strattack ... --out runs/x
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any, Callable, Optional, TypeVar

import attrs
import torch
import torch.distributed as dist

T = TypeVar("T")
#: ranks may wait for each other for as long as a long attack takes
TIMEOUT = dt.timedelta(hours=48)


@attrs.frozen
class Ranks:
    """This process's place in the job: ``rank`` of ``world``, GPU ``local_rank``."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def owns(self, batch: int) -> bool:
        return batch % self.world == self.rank

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def run_on_main(self, fn: Callable[[], T]) -> Optional[T]:
        """Run ``fn`` on rank 0 only; every rank re-raises its exception (so none is left
        waiting) and the others get ``None``."""
        error: Optional[BaseException] = None
        value = None
        if self.main:
            try:
                value = fn()
            except Exception as e:  # re-raised on every rank below
                error = e
        if self.world > 1:
            box: list[Any] = [error]
            dist.broadcast_object_list(box, src=0)
            error = box[0]
        if error is not None:
            raise error
        return value


def current() -> Ranks:
    """The ranks of this process: joins the process group when launched by ``torchrun``
    (``WORLD_SIZE`` > 1; NCCL on CUDA machines, else gloo); a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(local % torch.cuda.device_count())
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo",
                                timeout=TIMEOUT)
    return Ranks(dist.get_rank(), dist.get_world_size(), local)


def rank_device(name: str, ranks: Ranks) -> str:
    """``--device auto``/``cuda`` under torchrun means this rank's own GPU."""
    if ranks.world > 1 and name in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{ranks.local_rank % torch.cuda.device_count()}"
    return name
