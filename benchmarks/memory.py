"""Peak memory of one StrAttack solve: overlapping vs non-overlapping groups.

The groups are stored as one copy of each coordinate per group that contains it
((B, G, C·size²), admmkit.groups), so memory grows with the cover, not with the number of
groups. Compared on 32×32×3 and 224×224×3 inputs: non-overlapping 2×2 stride 2 vs overlapping
3×3 stride 2 (cover ≤ 4), and on 224×224×3 also the paper's ImageNet groups, 13×13 stride 13
vs stride 6 (cover ≤ 9). Target: overlapping ≤ 3× non-overlapping. For context, the layout
that keeps a full image per group (the paper's eq. 16 taken literally) is estimated, not run.

What is measured: the peak of the bytes held by tensors allocated during one solve
(``iterations`` ADMM iterations of problem (4)/(16) on a tiny two-layer CNN built here — the
solver's state and step temporaries are the subject, not the model), above what was live
before. On CUDA: ``torch.cuda.max_memory_allocated``. On CPU: the torch profiler's memory
events (``profile_memory=True``), whose "Total Allocated" is the CPU allocator's own running
count of live tensor bytes — exact and deterministic, unlike process RSS (allocator caching,
other threads). Kernel-internal scratch buffers that bypass torch's allocator are not counted.

    python benchmarks/memory.py [--full] [--device cpu] [--batch 8]
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Callable, Tuple

import torch
from torch import nn

import benchutil as common
from admmkit.solver import LinearizedADMM
from attacks.builtin import strattack
from attacks.problems import attack_problem, loss_term, term_blocks
from attacks.spec import valid_box
from attacks.targets import Targets

# (name, non-overlapping (size, stride), overlapping (size, stride)) per input shape
LAYOUTS = {(3, 32, 32): [("2x2/2 vs 3x3/2", (2, 2), (3, 2))],
           (3, 224, 224): [("2x2/2 vs 3x3/2", (2, 2), (3, 2)),
                           ("13x13/13 vs 13x13/6", (13, 13), (13, 6))]}
COLUMNS = ("shape", "groups", "overlapping", "num_groups", "max_cover", "peak_mb",
           "peak_over_input", "state_mb", "model_peak_mb", "naive_state_mb")


class TinyNet(nn.Module):
    """Two strided convolutions, global pooling and a linear layer: 10 logits."""

    def __init__(self, channels: int = 3):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(channels, 8, 3, 2, 1), nn.ReLU(),
                                 nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU(),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))

    def forward(self, x):
        return self.net(x)


def peak_bytes(fn: Callable[[], object], device: torch.device) -> Tuple[object, int]:
    """``(fn(), peak bytes of tensors allocated while it ran, above the start)``."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        out = fn()
        torch.cuda.synchronize(device)
        return out, torch.cuda.max_memory_allocated(device) - start
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = fn()
    fd, path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    try:
        prof.export_chrome_trace(path)
        with open(path) as f:
            events = [e["args"] for e in json.load(f)["traceEvents"]
                      if e.get("name") == "[memory]" and e["args"].get("Device Type") == 0]
    finally:
        os.remove(path)
    if not events:
        return out, 0
    base = events[0]["Total Allocated"] - events[0]["Bytes"]
    return out, max(e["Total Allocated"] for e in events) - base


def measure(shape, size: int, stride: int, batch: int, device, iterations: int = 3) -> dict:
    """Peak memory of one ``iterations``-long solve with ``size × size`` groups at ``stride``."""
    torch.manual_seed(0)
    dev = torch.device(device)
    model = TinyNet(shape[0]).to(dev).eval().requires_grad_(False)
    x0 = torch.rand(batch, *shape, device=dev)
    labels = torch.zeros(batch, dtype=torch.long, device=dev)
    targets = torch.ones_like(labels)
    targeted = torch.ones(batch, dtype=torch.bool, device=dev)
    c = torch.full((batch,), 1.0, device=dev)
    spec = strattack(group_size=size, stride=stride, overlapping=stride < size)
    groups = spec.groups(shape)
    smooth = loss_term(model, x0, Targets(labels, targets, targeted), c, 0.0)
    problem = attack_problem(spec, term_blocks(spec, shape), valid_box(x0, spec.eps), smooth)
    solver = LinearizedADMM(spec.solver.settings(iterations))
    z0 = torch.zeros_like(x0)
    solver.solve(problem, z0)  # warm-up: one-off kernel set-up is not the solver's memory
    result, peak = peak_bytes(lambda: solver.solve(problem, z0), dev)
    _, model_peak = peak_bytes(lambda: smooth.value_and_grad(z0), dev)
    st = result.state
    tensors = [st.z, *st.xs, *st.us]
    state = sum(t.numel() * t.element_size() for t in tensors)
    n, size_of = x0[0].numel(), x0.element_size()
    # the group block's copy x and dual u: in-group (measured) vs a full image per group
    in_groups = 2 * batch * groups.num_groups * groups.group_dim * size_of
    naive = state - in_groups + 2 * batch * groups.num_groups * n * size_of
    input_bytes = batch * n * size_of
    mb = 2.0 ** -20
    return {"shape": f"{shape[1]}x{shape[2]}x{shape[0]}",
            "groups": f"{size}x{size}/{stride}", "overlapping": stride < size, "batch": batch,
            "iterations": iterations, "num_groups": groups.num_groups,
            "max_cover": int(groups.cover(x0).max()), "peak_mb": peak * mb,
            "peak_over_input": peak / input_bytes, "state_mb": state * mb,
            "model_peak_mb": model_peak * mb, "naive_state_mb": naive * mb,
            "input_mb": input_bytes * mb}


def bench(full: bool = False, device: str = "cpu", threads: int = 1, *, batch: int = 8,
          iterations: int = 3, layouts=None) -> dict:
    """Every layout of :data:`LAYOUTS` (or ``layouts``); quick and full are the same run (it
    takes seconds)."""
    dev = common.setup(device, threads)
    rows, ratios = [], {}
    for shape, pairs in (layouts or LAYOUTS).items():
        for label, (s0, t0), (s1, t1) in pairs:
            flat = measure(shape, s0, t0, batch, dev, iterations)
            over = measure(shape, s1, t1, batch, dev, iterations)
            rows += [flat, over]
            key = f"{flat['shape']} {label}"
            ratios[f"{key}: peak overlapping / non-overlapping"] = over["peak_mb"] / flat["peak_mb"]
            ratios[f"{key}: state overlapping / non-overlapping"] = (over["state_mb"]
                                                                   / flat["state_mb"])
            ratios[f"{key}: naive copy-per-group state (estimate) / non-overlapping peak"] = (
                over["naive_state_mb"] / flat["peak_mb"])
    how = ("torch.cuda.max_memory_allocated" if dev.type == "cuda" else
           "the CPU allocator's live-tensor bytes from the torch profiler's memory events")
    notes = [f"peak of one {iterations}-iteration solve at batch {batch} above the bytes live "
             f"before it, by {how}; state = z plus every block's copy and dual",
             "naive_state_mb: the same state with the group block's copy and dual holding a "
             "full image per group (estimated, not allocated)",
             "target: peak overlapping / non-overlapping <= 3"]
    return {"benchmark": "memory", "config": {"batch": batch, "iterations": iterations},
            "provenance": common.provenance(dev, threads), "rows": rows, "ratios": ratios,
            "notes": notes}


if __name__ == "__main__":
    p = common.parser(__doc__, full="same as the default (kept for run.py)")
    p.add_argument("--batch", type=int, default=8)
    a = p.parse_args()
    common.emit(bench(a.full, a.device, a.threads, batch=a.batch), COLUMNS)
