"""Indicators of attack failure (attacks.indicators): four broken or masked models — NaN scores
off the 8-bit grid, NaN gradients behind finite logits, input quantisation, a randomised model —
are reported "not judged" with the right reason (never "failed", i.e. robust) by the Python
API, ``solve``, ``eval`` and the torchattacks and foolbox adapters; a healthy model gets only
"success" and "failed". The models are a fixed small linear classifier on 28×28 digits (fast),
built by the factories below (``--model test_indicators:NAME`` for the CLI)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from admmkit.solver.state import IterationInfo
from attacks import StrAttack
from attacks.adapters import FoolboxAttack, TorchattacksAdapter
from attacks.baselines import baseline
from attacks.data import load_dataset
from attacks.indicators import BY_NAME, Evidence, SolveWatch, reason_names, status_names
from attacks.spec import SearchSpec
from test_cli_helpers import assert_user_error, invoke, read_csv, read_json

SEARCH = SearchSpec(iterations=12, rescue_iterations=0, track_every=2)
TINY = dict(search=SEARCH, refine=False)
CLI_TINY = ["--set", "search.iterations=12", "--set", "search.rescue_iterations=0",
            "--set", "search.track_every=2", "--set", "refine.iterations=4"]
COMMON = ["--data", "mnist-test20", "-n", "2", "--threads", "1", "-q", "--figures", "0",
          *CLI_TINY]
CLI = COMMON + ["--targets", "random"]


def _linear() -> nn.Module:
    """A fixed linear classifier of 28×28 images (the same weights every time)."""
    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    with torch.no_grad():
        net[1].weight.copy_(torch.randn(10, 784, generator=g) * 0.3)
        net[1].bias.zero_()
    return net


def _on_grid(x: torch.Tensor) -> torch.Tensor:
    return ((x * 255 - (x * 255).round()).abs() < 1e-4).flatten(1).all(1)


class NaNGradient(torch.autograd.Function):
    """The identity, whose gradient is NaN."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return torch.full_like(grad, math.nan)


class Hostile(nn.Module):
    """The linear classifier behind one of the failures an evaluation must not call robust."""

    def __init__(self, kind: str):
        super().__init__()
        self.net, self.kind = _linear(), kind
        self.noise = torch.Generator().manual_seed(0)

    def forward(self, x):
        if self.kind == "nan_gradient":
            return self.net(NaNGradient.apply(x))
        if self.kind == "quantised":
            return self.net(torch.round(x * 255) / 255)
        if self.kind == "detached":
            return self.net(x.detach())
        out = self.net(x)
        if self.kind == "randomised":
            return out + 100 * torch.randn(out.shape, generator=self.noise).to(out)
        if self.kind in ("nan_scores", "nan_scores_light"):
            broken = ~_on_grid(x)  # finite on the clean (8-bit) images only
            if self.kind == "nan_scores_light":  # only for the images with little ink
                broken = broken & (x.flatten(1).mean(1) < 0.1)
            return torch.where(broken[:, None], torch.full_like(out, math.nan), out)
        return out


def healthy():
    return Hostile("healthy")


def nan_scores():
    return Hostile("nan_scores")


def nan_scores_light():
    return Hostile("nan_scores_light")


def nan_gradient():
    return Hostile("nan_gradient")


def quantised():
    return Hostile("quantised")


def randomised():
    return Hostile("randomised")


#: model factory -> the reason every one of its examples must carry
BROKEN = {"nan_scores": "nonfinite", "nan_gradient": "nonfinite", "quantised": "no_gradient",
          "randomised": "unstable"}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("mnist-test20", n=2)


def assert_not_judged(status, reasons, reason):
    assert status == ["not judged"] * len(status), (status, reasons)
    assert all(reason in r.split("+") for r in reasons), reasons


# -- the Python API ------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(BROKEN) + ["detached"])
def test_the_api_reports_broken_models_not_judged_never_robust(kind, digits):
    x, y = digits
    model = Hostile(kind)
    reason = BROKEN.get(kind, "no_gradient")
    for attack in (StrAttack(model, **TINY), baseline("ifgsm", model)):
        r = attack(x, y, "random")
        assert_not_judged(r.status, r.reasons, reason)
        s = r.summary()
        assert s["failures"] == 0 and s["not_judged"] == 2 and s["judged"] == 0
        assert s["reasons"][reason] == 2 and math.isnan(s["asr"]) and math.isnan(r.success_rate)
        assert not r.judged.any()


def test_a_healthy_model_gets_only_success_and_failed(digits):
    x, y = digits
    r = StrAttack(healthy(), **TINY)(x, y, "all")
    assert set(r.status) <= {"success", "failed"} and "success" in r.status
    assert not (r.flags & ~BY_NAME["incomplete"].bit).any()  # at most the mark on a failure
    s = r.summary()
    assert s["not_judged"] == 0 and s["judged"] == len(r)
    assert s["asr"] == pytest.approx(100 * r.success.float().mean().item())


# -- the CLI -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_solve_exits_with_one_line_naming_the_reason(kind, tmp_path):
    out = tmp_path / "run"
    r = invoke("solve", "--spec", "strattack", "--model", f"test_indicators:{kind}", *CLI,
               "--out", out)
    assert_user_error(r, "none of the 2 examples could be judged", f"{BROKEN[kind]} 2")
    rows = read_csv(out / "metrics.csv")
    assert_not_judged([x["status"] for x in rows], [x["reason"] for x in rows], BROKEN[kind])
    s = read_json(out / "summary.json")
    assert s["not_judged"] == 2 and s["failures"] == 0 and s["reasons"][BROKEN[kind]] == 2


def test_solve_warns_in_one_line_when_some_examples_are_not_judged(tmp_path):
    out = tmp_path / "run"
    r = invoke("solve", "--spec", "strattack", "--model", "test_indicators:nan_scores_light",
               *CLI, "--out", out)
    assert r.exit_code == 0, r.output
    warning = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "1 of 2 examples not judged: nonfinite 1" in warning[0]
    s = read_json(out / "summary.json")
    assert s["not_judged"] == 1 and s["judged"] == 1
    assert s["asr"] == 100.0 * s["successes"]  # the share of the one judged example
    said = " ".join(r.stdout.split())  # the summary table's title may wrap
    assert f"{s['successes']}/1 successful" in said and "1 of 2 not judged" in said
    statuses = [x["status"] for x in read_csv(out / "metrics.csv")]
    assert statuses[0] == "not judged" and statuses[1] in ("success", "failed")


def test_solve_on_a_healthy_model_judges_every_example(tmp_path):
    out = tmp_path / "run"
    r = invoke("solve", "--spec", "strattack", "--model", "test_indicators:healthy", *CLI,
               "--out", out)
    assert r.exit_code == 0, r.output
    assert "warning" not in r.stderr
    assert {x["status"] for x in read_csv(out / "metrics.csv")} <= {"success", "failed"}
    assert read_json(out / "summary.json")["not_judged"] == 0


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_eval_writes_its_tables_then_exits_naming_the_reason(kind, tmp_path):
    out = tmp_path / "ev"
    r = invoke("eval", "--model", f"test_indicators:{kind}", *COMMON, "--attacks",
               "strattack,ifgsm", "--cases", "average", "--out", out)
    assert_user_error(r, "none of the 4 examples could be judged", BROKEN[kind])
    s = read_json(out / "summary.json")
    for row in s["rows"]:
        assert row["not_judged"] == 2 and row["successes"] == 0 and row["asr"] is None  # NaN
    assert s["cost"]["strattack"]["reasons"][BROKEN[kind]] == 2
    assert "(2 not judged)" in (out / "table.md").read_text()


# -- the adapters --------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_the_adapters_say_not_judged_beside_their_answer(kind, compat, digits):
    x, _ = digits  # untargeted, away from the model's own predictions (a success is real)
    atk = TorchattacksAdapter(StrAttack(Hostile(kind), **TINY))
    atk(x)
    assert_not_judged(atk.last_status, atk.last_reasons, BROKEN[kind])

    fb = compat.foolbox
    model = Hostile(kind).eval()
    fmodel = fb.PyTorchModel(model, bounds=(0, 1))
    attack = FoolboxAttack(StrAttack, **TINY)
    predicted = model(x).argmax(1)
    _, _, success = attack(fmodel, x, fb.criteria.Misclassification(predicted), epsilons=None)
    assert success.dtype == torch.bool  # foolbox's success stays a bool
    assert_not_judged(attack.last_status, attack.last_reasons, BROKEN[kind])


# -- the pieces ----------------------------------------------------------------------------------
def test_status_and_reason_texts():
    flags = torch.tensor([0, 0, 1, 6, 16], dtype=torch.int32)
    success = torch.tensor([True, False, False, False, False])
    assert status_names(flags, success).tolist() == ["success", "failed", "not judged",
                                                     "not judged", "failed"]
    assert reason_names(flags).tolist() == ["", "", "nonfinite", "no_gradient+unstable",
                                            "incomplete"]


def test_a_success_keeps_only_unstable_and_no_gradient_needs_most_active_iterations():
    e = Evidence(4, "cpu")
    e.flag(BY_NAME["nonfinite"].bit, torch.tensor([True, False, False, False]))
    e.flag(BY_NAME["unstable"].bit, torch.tensor([False, True, False, False]))
    grad = torch.zeros(4, 3)
    grad[3] = 1.0  # a real gradient on the last row only
    value = torch.ones(4)
    for active in ([True, True, True, True], [False, False, False, True]):
        e.observe_gradient(grad, value, torch.tensor(active))
    flags = e.verdict(torch.tensor([True, True, False, False]))
    # row 0 succeeded: its nonfinite (and no_gradient) evidence does not undo a verified success
    assert reason_names(flags).tolist() == ["", "unstable", "no_gradient", ""]


def test_an_inactive_loss_is_not_a_missing_gradient():
    """The hinge is flat where the constraint holds: those iterations do not count."""
    e = Evidence(1, "cpu")
    for _ in range(5):
        e.observe_gradient(torch.zeros(1, 3), torch.zeros(1), torch.tensor([False]))
    assert int(e.verdict(torch.tensor([False]))) == 0


def test_incomplete_marks_a_solve_cut_off_while_improving():
    class Info:
        def __init__(self, k, excess):
            self.aux, self.rows, self.grad = excess, None, torch.ones(2, 3)
            self.smooth_value = torch.ones(2)
            self.state = type("S", (), {"active": torch.tensor([True, True]),
                                        "iterations": torch.tensor([k, k])})

    e = Evidence(2, "cpu")
    watch = SolveWatch(e, torch.arange(2))
    for k in range(1, 21):  # row 0 keeps decreasing, row 1 stalls after 5 iterations
        watch.observe(Info(k, torch.tensor([10.0 - 0.1 * k, 10.0 - 0.1 * min(k, 5)])))
    result = type("R", (), {"iterations": torch.tensor([20, 20]),
                            "diverged": torch.tensor([False, True])})
    watch.report(result, torch.tensor([20, 20]))
    assert reason_names(e.verdict(torch.tensor([False, False]))).tolist() == [
        "incomplete", "nonfinite"]


def test_a_compacted_batch_is_observed_on_its_own_rows():
    """After the solver compacts the batch (info.rows), the rows it holds are counted."""
    def info(rows, excess):
        n = excess.shape[0]
        state = type("S", (), {"active": torch.ones(n, dtype=torch.bool),
                               "iterations": torch.full((n,), 5)})
        return IterationInfo(k=5, eta=1.0, state=state, smooth_value=torch.ones(n),
                             aux=excess, stats=None, rows=rows, grad=torch.zeros(n, 3))

    e = Evidence(3, "cpu")
    watch = SolveWatch(e, torch.tensor([0, 1, 2]))
    watch.observe(info(torch.tensor([2]), torch.tensor([1.0])))
    watch.observe(info(torch.tensor([0, 2]), torch.tensor([1.0, 0.5])))
    assert watch.active.tolist() == [1, 0, 2] and watch.flat.tolist() == [1, 0, 2]
    assert watch.lowest_at.tolist() == [5, 0, 5] and watch.lowest[2] == 0.5
