"""The batch loop of ``solve``: skip the batches already stored, attack the rest, store each
one atomically as it finishes, and show progress with live ASR and mean ℓ0 / ℓ2."""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import attrs
import numpy as np
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from torch import Tensor

from attacks.api import Attack
from attacks.engine import Targets
from attacks.result import AttackResult
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


def run_batch(attack: Attack, plan: Plan, sl: slice) -> AttackResult:
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


def run_all(run: RunDir, attack: Attack, plan: Plan, *, quiet: bool = False
            ) -> Tuple[List[Dict[str, np.ndarray]], int]:
    """All batches' arrays in order, and how many were loaded from ``run`` (not recomputed)."""
    slices = plan.slices()
    parts: List[Optional[Dict[str, np.ndarray]]] = []
    for i, sl in enumerate(slices):
        parts.append(run.load_batch(i, plan.index[sl].numpy(), plan.targets.targets[sl].numpy()))
    resumed = sum(p is not None for p in parts)
    console = Console(stderr=True)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(bar_width=16),
               MofNCompleteColumn(), TextColumn("{task.fields[stats]}"), TimeElapsedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=console, disable=quiet) as progress:
        label = f"{attack.spec.name}" + (f" (resumed {resumed})" if resumed else "")
        task = progress.add_task(label, total=len(slices), completed=resumed,
                                 stats=live_stats(parts))
        for i, sl in enumerate(slices):
            if parts[i] is not None:
                continue
            result = run_batch(attack, plan, sl)
            arrays = result_arrays(result)
            run.save_batch(i, arrays)
            parts[i] = arrays
            progress.update(task, advance=1, stats=live_stats(parts))
    return parts, resumed  # type: ignore[return-value]
