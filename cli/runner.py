"""The batch loop of ``solve``: skip the batches already stored, attack the rest, store each
one atomically as it finishes, and show progress with live ASR and mean ℓ0 / ℓ2."""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple

import attrs
import numpy as np
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from torch import Tensor

from attacks.engine import Targets
from attacks.result import AttackResult
from cli.distributed import Ranks
from cli.outputs import result_arrays
from cli.store import RunDir


@attrs.frozen
class Plan:
    """The examples to attack (``index`` into the images, with their targets) in batches."""

    images: Tensor
    labels: Tensor
    index: Tensor
    targets: Targets
    batch_size: int

    @property
    def size(self) -> int:
        return int(self.index.shape[0])

    def slices(self) -> List[slice]:
        n, b = self.size, self.batch_size
        return [slice(i, min(n, i + b)) for i in range(0, n, b)]


def run_batch(attack: Callable, plan: Plan, sl: slice) -> AttackResult:
    """Attack the examples ``sl`` of the plan; source indices refer to the full image set."""
    idx = plan.index[sl]
    targets = plan.targets.targets[sl] if bool(plan.targets.targeted.all()) else None
    result = attack(plan.images[idx], plan.labels[idx], targets)
    return attrs.evolve(result.to("cpu"), source_index=idx.cpu())


def live_stats(parts: List[Optional[Dict[str, np.ndarray]]]) -> str:
    done = [p for p in parts if p is not None]
    if not done:
        return "ASR –"
    ok = np.concatenate([p["success"] for p in done])
    text = f"ASR {100.0 * ok.mean():5.1f}% ({int(ok.sum())}/{ok.size})"
    if ok.any():
        l0 = np.concatenate([p["metric_l0"] for p in done])[ok].mean()
        l2 = np.concatenate([p["metric_l2"] for p in done])[ok].mean()
        text += f"  mean ℓ0 {l0:.1f}  ℓ2 {l2:.3f}"
    return text


def run_all(run: RunDir, attack: Callable, plan: Plan, *, label: str, quiet: bool = False,
            ranks: Ranks = Ranks()) -> Tuple[Optional[List[Dict[str, np.ndarray]]], int]:
    """All batches' arrays in order, and how many were loaded from ``run`` (not recomputed).

    Under torchrun each rank computes the missing batches it owns (:class:`Ranks`); after a
    barrier rank 0 reads every batch back and returns them, the other ranks return ``None``.
    """
    slices = plan.slices()
    stored = lambda i: run.load_batch(i, plan.index[slices[i]].numpy(),
                                      plan.targets.targets[slices[i]].numpy())
    parts: List[Optional[Dict[str, np.ndarray]]] = [stored(i) for i in range(len(slices))]
    resumed = sum(p is not None for p in parts)
    todo = [i for i, p in enumerate(parts) if p is None and ranks.owns(i)]
    console = Console(stderr=True)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(bar_width=16),
               MofNCompleteColumn(), TextColumn("{task.fields[stats]}"), TimeElapsedColumn(),
               TimeRemainingColumn())
    if ranks.world > 1:
        label += f" [rank {ranks.rank}/{ranks.world}]"
    with Progress(*columns, console=console, disable=quiet) as progress:
        mine = [p for i, p in enumerate(parts) if ranks.owns(i) and p is not None]
        task = progress.add_task(label + (f" (resumed {resumed})" if resumed else ""),
                                 total=len(todo) + len(mine), completed=len(mine),
                                 stats=live_stats(mine))
        for i in todo:
            arrays = result_arrays(run_batch(attack, plan, slices[i]))
            run.save_batch(i, arrays)
            parts[i] = arrays
            mine.append(arrays)
            progress.update(task, advance=1, stats=live_stats(mine))
    ranks.barrier()
    if not ranks.main:
        return None, resumed
    parts = [p if p is not None else stored(i) for i, p in enumerate(parts)]
    missing = [i for i, p in enumerate(parts) if p is None]
    if missing:
        raise RuntimeError(f"batches {missing} were not found in {run.batches} after every "
                           "rank finished: do all ranks see the same --out directory?")
    return parts, resumed  # type: ignore[return-value]
