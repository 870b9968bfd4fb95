"""The cost of the indicators of attack failure (attacks.indicators) on a healthy model: seconds
per example of StrAttack on mnist-cw with the indicators as shipped, and with their hooks
replaced by no-ops (the violation the loss term hands over, the per-iteration gradient and
violation bookkeeping, the solve's report, the two stability passes at the finish), on the
same examples, in the same run; rounds alternate between the two and each figure is the
fastest round. The answers must be the same
(the indicators only read). On a CPU shared with other processes the two timings move by a
few percent from round to round; the share of the attack's time spent inside the indicators'
hooks (timed in one more run, :func:`timing_hooks`) is the steadier figure.

Seconds are CPU seconds of this process on a CPU device (wall seconds on a GPU).

    python benchmarks/indicators.py [--full] [--device cpu] [--threads 1]
    quick (default): 16 examples, 100 iterations, 7 rounds each; --full: 32 examples, the
    default search (500 + 500 rescue iterations, refine 200), 3 rounds each
"""

from __future__ import annotations

import contextlib
import time
from unittest import mock

import torch

import benchutil as common
from attacks import StrAttack
from attacks import base, indicators, problems
from attacks.models import load_model
from attacks.spec import SearchSpec

QUICK = dict(n=16, iterations=100, rounds=7)
FULL = dict(n=32, iterations=None, rounds=3)
COLUMNS = ("indicators", "examples", "asr", "seconds_per_example", "gradient_evals_per_example")


@contextlib.contextmanager
def without_indicators():
    """The indicators' hooks as no-ops: what the attack costs without them."""
    never = lambda model, final, x0: torch.zeros(x0.shape[0], dtype=torch.bool,
                                                 device=x0.device)
    no_margin = lambda logits, *a: logits.new_zeros(logits.shape[0])  # the loss term's aux
    with mock.patch.object(indicators.SolveWatch, "observe", lambda self, info: None), \
            mock.patch.object(problems, "margin", no_margin), \
            mock.patch.object(indicators.SolveWatch, "report", lambda self, result, cap: None), \
            mock.patch.object(indicators.Evidence, "observe_gradient",
                              lambda self, *a, **k: None), \
            mock.patch.object(base, "unstable", never):
        yield


@contextlib.contextmanager
def timing_hooks(spent: list):
    """The indicators' hooks as shipped, each call's CPU seconds of this process added to
    ``spent[0]`` (on a GPU: the time to launch their work): their share of the attack's time,
    a figure other processes hardly disturb."""
    clock = time.process_time

    def timed(fn):
        def wrapper(*a, **k):
            start = clock()
            out = fn(*a, **k)
            spent[0] += clock() - start
            return out
        return wrapper
    with mock.patch.object(indicators.SolveWatch, "observe",
                           timed(indicators.SolveWatch.observe)), \
            mock.patch.object(problems, "margin", timed(problems.margin)), \
            mock.patch.object(indicators.SolveWatch, "report",
                              timed(indicators.SolveWatch.report)), \
            mock.patch.object(base, "unstable", timed(base.unstable)):
        yield


def bench(full: bool = False, device: str = "cpu", threads: int = 1, *, n=None,
          iterations=None, rounds=None, data: str = "mnist-heldout") -> dict:
    cfg = dict(FULL if full else QUICK)
    cfg.update({k: v for k, v in dict(n=n, iterations=iterations, rounds=rounds).items()
                if v is not None})
    dev = common.setup(device, threads)
    model = load_model("mnist-cw", device=dev)
    x, y, t = common.examples(data, cfg["n"], dev)
    common.warm_up(model, x)
    kw = {} if cfg["iterations"] is None else dict(
        search=SearchSpec(iterations=cfg["iterations"], rescue_iterations=cfg["iterations"]))
    attack = StrAttack(model, **kw)
    best = {"on": None, "off": None}
    results = {}
    for _ in range(cfg["rounds"]):
        for mode in ("off", "on"):
            with (without_indicators() if mode == "off" else contextlib.nullcontext()):
                results[mode], sec, _ = common.timed(lambda: attack(x, y, targets=t), dev)
            best[mode] = sec if best[mode] is None else min(best[mode], sec)
    spent = [0.0]
    with timing_hooks(spent):
        _, hooked, _ = common.timed(lambda: attack(x, y, targets=t), dev)
    rows = []
    for mode in ("off", "on"):
        s = results[mode].summary()
        rows.append({"indicators": mode, "examples": cfg["n"], "asr": s["asr"],
                     "seconds": best[mode], "seconds_per_example": best[mode] / cfg["n"],
                     "gradient_evals_per_example": s["gradient_evals"]})
    same = bool((results["on"].adversarial == results["off"].adversarial).all()
                and (results["on"].success == results["off"].success).all())
    notes = [f"StrAttack on mnist-cw, the first {cfg['n']} images of {data} with one seeded "
             f"random target each, {cfg['rounds']} alternating rounds, the fastest of each",
             "the same adversarial examples with and without the indicators: "
             + ("yes" if same else "NO"),
             "statuses with the indicators: " + ", ".join(
                 f"{k} {v}" for k, v in indicators.counts(results["on"].flags,
                                                          results["on"].success).items()
                 if k in ("successes", "failures", "not_judged"))]
    return {"benchmark": "indicators", "config": {**cfg, "data": data},
            "provenance": common.provenance(dev, threads), "rows": rows,
            "ratios": {"seconds per example, indicators on / off": best["on"] / best["off"],
                       "seconds inside the indicators' hooks / attack": spent[0] / hooked},
            "same_examples": same, "notes": notes}


if __name__ == "__main__":
    p = common.parser(__doc__)
    a = p.parse_args()
    common.emit(bench(a.full, a.device, a.threads), COLUMNS)
