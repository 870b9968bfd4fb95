"""The run layer: attack a plan of examples into a resumable run directory.

:func:`run_attack` is what ``solve``, each attack of ``eval`` and ``explain``, and the Python
API's runs share: check or start the run directory (resume key, provenance), attack the batches
not stored yet (:func:`run_all`: each stored atomically as it finishes, live ASR and mean ℓ0 /
ℓ2 in a progress bar, batches shared out over torchrun ranks), then merge them and write the
outputs (metrics.csv, summary.json, adversarial.npz, png/ on the 8-bit grid, figures/).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import attrs
import numpy as np
import torch
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from torch import Tensor, nn

from attacks.targets import Targets
from attacks.result import AttackResult
from attacks.runs.distributed import Ranks
from attacks.runs.figures import draw_examples
from attacks.runs.outputs import result_arrays, summary, to_result, write_outputs, write_pngs
from attacks.runs.provenance import now
from attacks.runs.store import PROVENANCE, RunDir, merge, run_fingerprint


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

    @property
    def originals(self) -> np.ndarray:
        """The clean image of every example, (N, C, H, W)."""
        return self.images.index_select(0, self.index.cpu()).numpy()

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


@attrs.frozen
class Inputs:
    """What every attack of one invocation shares: the model and its device, the plan of
    examples, the 8-bit grid switch, the ranks, and this invocation's provenance ``entry``."""

    model: nn.Module
    device: torch.device
    plan: Plan
    grid: bool
    ranks: Ranks = Ranks()
    entry: Dict[str, Any] = attrs.field(factory=dict)


def start_run(run: RunDir, key: Dict[str, Any], record: Dict[str, Any],
              entry: Dict[str, Any], restart: bool, files: Dict[str, str],
              batches: int = 0) -> List[Any]:
    """Claim and lock ``run`` (``restart``: clear its files), check that it holds the same run
    (resume) or none, list its ``batches`` batch files in the manifest, write ``files`` and
    the provenance with this ``entry`` appended; return the earlier history."""
    run.claim(restart)
    try:
        resuming = run.check_resume(key)
        history = (run.stored_provenance() or {}).get("history", []) if resuming else []
        run.own(run.batch_name(i) for i in range(batches))
        for name, text in files.items():
            run.write(name, text.encode("utf-8"))
        run.write_json(PROVENANCE, {**record, "history": history + [entry]})
    except BaseException:
        run.unlock()
        raise
    return history


@attrs.frozen
class Finished:
    """A finished run: its summary (as in summary.json) and every example's result."""

    summary: Dict[str, Any]
    result: AttackResult


def run_attack(out: Path, inputs: Inputs, attack: Callable, *, name: str,
               key: Dict[str, Any], record: Dict[str, Any], files: Dict[str, str] = {},
               restart: bool = False, quiet: bool = False, figures: int = 0,
               groups=None) -> Optional[Finished]:
    """Run ``attack`` on ``inputs.plan`` into the run directory ``out``; return what it found
    (``None`` on torchrun ranks other than 0, which only attack their batches).

    ``key`` identifies the run (a different stored run is refused, the same one resumed);
    ``record`` is the provenance written with it; ``files`` (e.g. ``spec.toml``) are written
    when the run starts. ``figures`` examples are drawn with the group heatmap of ``groups``.
    An interruption records itself in the provenance and re-raises ``KeyboardInterrupt`` with
    how many batches were kept.
    """
    run, ranks, plan = RunDir(out, fingerprint=run_fingerprint(key)), inputs.ranks, inputs.plan
    entry = dict(inputs.entry)
    record = {**record, "status": "running", "resume_key": key}
    history = ranks.run_on_main(lambda: start_run(run, key, record, entry, restart, files,
                                                  len(plan.slices())))
    try:
        return _attack_and_write(run, inputs, attack, name, record, history, entry, quiet,
                                 figures, groups)
    finally:
        run.unlock()


def _attack_and_write(run: RunDir, inputs: Inputs, attack: Callable, name: str,
                      record: Dict[str, Any], history: List[Any], entry: Dict[str, Any],
                      quiet: bool, figures: int, groups) -> Optional[Finished]:
    ranks, plan = inputs.ranks, inputs.plan
    start = time.perf_counter()
    try:
        parts, resumed = run_all(run, attack, plan, label=name,
                                 quiet=quiet or not ranks.main, ranks=ranks)
    except KeyboardInterrupt:
        done = len(list(run.batches.glob("batch-*.npz")))
        if ranks.main:
            entry.update(finished=now(), interrupted=True)
            run.write_json(PROVENANCE, {**record, "status": "interrupted",
                                        "history": history + [entry]})
        raise KeyboardInterrupt(f"{done} of {len(plan.slices())} batches saved in {run.root}")
    seconds = time.perf_counter() - start
    if parts is None:  # a rank other than 0: its batches are stored, rank 0 merges
        return None

    arrays = merge(parts)
    result = to_result(arrays, name, grid=inputs.grid)
    originals = plan.originals
    summ = summary(result, images=int(plan.images.shape[0]), batches=len(parts),
                   resumed=resumed, seconds=seconds)
    write_outputs(run, arrays, originals, summ)
    if inputs.grid:
        write_pngs(run, arrays)
    if figures:
        draw_examples(run, arrays, originals, figures, inputs.model, inputs.device,
                      groups=groups, attack=name)
    entry.update(finished=now(), batches_computed=len(parts) - resumed,
                 batches_resumed=resumed)
    run.write_json(PROVENANCE, {**record, "status": "complete", "history": history + [entry]})
    return Finished(summ, result)
