"""The paper's search (``[search.binary]``, Sec. 4 and appendix F): per sample and fully
batched, ``c`` grows by ``growth`` until a success bounds it, then is bisected, one restarted
solve per step; a sample leaves the search once a step succeeds without improving its best
distortion, and samples that never succeeded get one cold rescue solve. The refine runs at the
search's own fixed ``c``, as published (the base rule)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from admmkit import batch_where
from attacks.search.base import Best, Solves, Start, Strategy, register_strategy
from attacks.search_spec import BinarySearch
from attacks.targets import Targets
from attacks.verify import Evaluations


@register_strategy
class Binary(Strategy):
    """``steps`` solves at a constant ``c`` each, bisecting ``c`` per sample, then the rescue."""

    name = BinarySearch.name

    def run(self, engine: Solves, x0: Tensor, tg: Targets, evals: Evaluations,
            limit: int, start: Start) -> Best:
        s, b, best = self.search, self.settings, start.best
        c = engine.c0(x0)
        c0 = c.clone()
        lo, hi = torch.zeros_like(c), torch.full_like(c, math.inf)
        last_z = start.z0.clone()
        running = torch.ones(x0.shape[0], dtype=torch.bool, device=x0.device)
        for _ in range(b.steps):
            cap = torch.clamp(evals.left(until=limit), max=s.iterations)
            idx = (running & (cap > 0)).nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            cc, part = c.index_select(0, idx), best.select(idx)
            before = part.score.clone()
            if b.warm_start:  # from the best success so far, else from where the last step ended
                z0 = batch_where(part.found, part.delta, last_z.index_select(0, idx))
            else:
                z0 = start.z0.index_select(0, idx)
            result, hit = engine.solve(idx, x0, tg, cc, part, z0, cap.index_select(0, idx),
                                       evals)
            best.put(idx, part)
            last_z.index_copy_(0, idx, result.z)
            # per-sample binary search on c
            lo_i, hi_i = lo.index_select(0, idx), hi.index_select(0, idx)
            hi_i = torch.where(hit, torch.minimum(hi_i, cc), hi_i)
            lo_i = torch.where(hit, lo_i, torch.maximum(lo_i, cc))
            c_i = torch.where(torch.isfinite(hi_i), (lo_i + hi_i) / 2, cc * b.growth)
            lo.index_copy_(0, idx, lo_i)
            hi.index_copy_(0, idx, hi_i)
            c.index_copy_(0, idx, c_i)
            stalled = hit & torch.isfinite(before) & (part.score > before * (1 - b.patience_tol))
            running.index_copy_(0, idx, ~stalled)
        # Samples that never succeeded get one cold restart at c0·growth²: a warm start from a
        # failed large-c step can sit far outside the valid box, where linearizing is useless.
        cap = torch.clamp(evals.left(until=limit), max=s.rescue_iterations)
        idx = (~best.found & (cap > 0)).nonzero().squeeze(1)
        if s.rescue_iterations and idx.numel():
            part = best.select(idx)
            cc = c0.index_select(0, idx) * b.growth ** 2
            engine.solve(idx, x0, tg, cc, part, torch.zeros_like(part.delta),
                         cap.index_select(0, idx), evals)
            best.put(idx, part)
        return best
