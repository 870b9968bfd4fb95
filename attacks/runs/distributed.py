"""Scale-out under ``torchrun`` (torch.distributed): each rank attacks its share of the batches
on its own device; rank 0 merges.

The batches are handed out as ranks free up (:meth:`Ranks.share`: a counter in the process
group's store), so a rank whose batches ran long (the rescue) takes fewer and every rank stays
busy until the last batch. The batches themselves do not depend on the number of ranks. Every
rank stores its batches in the run directory exactly as a single process would, so after a
barrier rank 0 reads them all back and writes the merged outputs: the same batches, seed and
targets give the same files as a single-process run, and an interrupted distributed run resumes
like any other. The ranks must see the same run directory (one machine, or a shared file
system).

    torchrun --standalone --nproc_per_node 2 -m cli solve --spec strattack ... --out runs/x
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
from typing import Any, Callable, Iterator, Optional, TypeVar

import attrs
import torch
import torch.distributed as dist

T = TypeVar("T")
#: ranks may wait for each other for as long as a long attack takes
TIMEOUT = dt.timedelta(hours=48)
#: numbers the queues of :meth:`Ranks.share` (every rank opens them in the same order)
_QUEUES = itertools.count()


@attrs.frozen
class Ranks:
    """This process's place in the job: ``rank`` of ``world``, GPU ``local_rank``; ``store``
    the process group's key-value store (None when the group was joined elsewhere)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    store: Optional[dist.Store] = attrs.field(default=None, eq=False, repr=False)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def share(self, n: int) -> Iterator[int]:
        """This rank's items of ``0 … n−1``, each item going to exactly one rank: the next item
        nobody has taken yet, whenever this rank asks for one (the store's atomic counter), so
        ranks that finish early take more. Every rank must open its queues in the same order.
        One process: all of them; without a store: item ``i`` to rank ``i mod world``."""
        if self.world == 1 or self.store is None:
            yield from range(self.rank, n, self.world)
            return
        key = f"admm-attack/queue-{next(_QUEUES)}"
        while (i := self.store.add(key, 1) - 1) < n:
            yield i

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


_store: Optional[dist.Store] = None  # the store of the process group this module joined


def current() -> Ranks:
    """The ranks of this process: joins the process group when launched by ``torchrun``
    (``WORLD_SIZE`` > 1; NCCL on CUDA machines, else gloo); a single process otherwise."""
    global _store
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(local % torch.cuda.device_count())
        store, rank, size = next(dist.rendezvous("env://", timeout=TIMEOUT))
        store.set_timeout(TIMEOUT)
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", store=store,
                                rank=rank, world_size=size, timeout=TIMEOUT)
        _store = store
    return Ranks(dist.get_rank(), dist.get_world_size(), local, _store)


def rank_device(name: str, ranks: Ranks) -> str:
    """``--device auto``/``cuda`` under torchrun means this rank's own GPU."""
    if ranks.world > 1 and name in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{ranks.local_rank % torch.cuda.device_count()}"
    return name
