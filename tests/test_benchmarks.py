"""The benchmarks run at a tiny size and report the fields and ratios they promise (no timing
assertions: only counts, shapes and exact byte arithmetic)."""

import json
import math
import sys
import time
from pathlib import Path

import attrs
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import benchutil  # noqa: E402
import grid_roundtrip  # noqa: E402
import indicators  # noqa: E402
import memory  # noqa: E402
import run  # noqa: E402
import solver_overhead  # noqa: E402
import throughput  # noqa: E402
import vs_torchattacks  # noqa: E402
from attacks import CWL2, FGM, IFGSM, StrAttack  # noqa: E402
from attacks.data import load_dataset  # noqa: E402
from attacks.models import load_model  # noqa: E402
from attacks.spec import SearchSpec  # noqa: E402
from attacks.targets import expand_targets  # noqa: E402

TINY = SearchSpec(iterations=10, rescue_iterations=0)
TINY_ATTACKS = {"strattack": lambda m: StrAttack(m, search=TINY, refine=False),
                "cw-l2": lambda m: CWL2(m, search=TINY),
                "fgm": lambda m: FGM(m)}
TINY_LAYOUTS = {(3, 16, 16): [("2x2/2 vs 3x3/2", (2, 2), (3, 2))]}


def finite_positive(v):
    return isinstance(v, float) and math.isfinite(v) and v > 0


def test_throughput_rows_counts_and_ratios():
    r = throughput.bench(n=3, batches=(1, 3), single=2, attacks=TINY_ATTACKS)
    rows = {(row["attack"], row["batch"]): row for row in r["rows"]}
    assert set(rows) == {(a, b) for a in TINY_ATTACKS for b in (1, 3)}
    for (name, batch), row in rows.items():
        assert row["examples"] == (2 if batch == 1 else 3)
        assert row["extrapolated"] == (batch == 1)
        assert finite_positive(row["examples_per_s"])
        assert 0 <= row["asr"] <= 100
        assert 0 < row["model_share"] <= 1 and row["peak_gpu_mib"] is None  # on the CPU
    for b in (1, 3):  # one solve of 10 iterations each; FGM: 13 ε values × 1 step
        assert rows["cw-l2", b]["gradient_evals_per_example"] == 10
        # StrAttack: and the gradient that measures each example's distance to the boundary
        assert rows["strattack", b]["model_grad_rows_per_example"] == 11
        assert rows["fgm", b]["gradient_evals_per_example"] == 13
    # batch 1 is extrapolated with the batch-3 mean evaluations
    assert rows["cw-l2", 1]["extrapolated_with_evals"] == 10
    for key in ("cw-l2: examples/s batch 3 / batch 1",
                "strattack / cw-l2: seconds per example, batch 1",
                "strattack / cw-l2: seconds per example, batch 3",
                "fgm / cw-l2: gradient evals per example"):
        assert finite_positive(r["ratios"][key]), key
    assert r["ratios"]["fgm / cw-l2: gradient evals per example"] == pytest.approx(1.3)
    assert set(r["equal_quality"]) == {a for a in TINY_ATTACKS
                                       if all(rows[a, b]["asr"] == 100 for b in (1, 3))}


def test_throughput_rejects_bad_batches():
    with pytest.raises(ValueError, match="batches"):
        throughput.bench(n=2, batches=(0, 2), single=1, attacks=TINY_ATTACKS)


def test_peak_bytes_counts_a_known_allocation():
    keep, peak = memory.peak_bytes(lambda: torch.ones(10 ** 6, dtype=torch.uint8),
                                   torch.device("cpu"))
    assert keep.numel() == 10 ** 6
    assert 10 ** 6 <= peak < 2 * 10 ** 6


def test_memory_state_bytes_and_ratios():
    r = memory.bench(batch=2, iterations=1, layouts=TINY_LAYOUTS)
    flat, over = r["rows"]
    assert not flat["overlapping"] and over["overlapping"] and over["max_cover"] == 4
    # a partition holds z plus three full copies (l2, groups, valid) and their duals: 7 images
    assert flat["state_mb"] == pytest.approx(7 * flat["input_mb"])
    g, n = over["num_groups"], 3 * 16 * 16
    assert over["state_mb"] == pytest.approx((5 + 2 * g * 27 / n) * over["input_mb"])
    for row in r["rows"]:
        assert row["peak_mb"] >= row["state_mb"] > 0  # the state is allocated by the solve
        assert row["naive_state_mb"] > row["state_mb"]
    key = "16x16x3 2x2/2 vs 3x3/2: peak overlapping / non-overlapping"
    assert r["ratios"][key] == pytest.approx(over["peak_mb"] / flat["peak_mb"])


def test_solver_overhead_report():
    r = solver_overhead.bench(batch=4, iters=2, specs=("cw-l2",))
    (row,) = r["rows"]
    assert row["spec"] == "cw-l2" and row["batch"] == 4
    assert finite_positive(row["model_fwd_bwd_ms"])
    assert r["ratios"]["cw-l2: solver only / model fwd+bwd"] == row["solver_over_model"]


def test_indicators_cost_compares_the_same_attack_with_and_without_them():
    r = indicators.bench(n=2, iterations=3, rounds=1)
    off, on = r["rows"]
    assert (off["indicators"], on["indicators"]) == ("off", "on") and r["same_examples"]
    assert off["gradient_evals_per_example"] == on["gradient_evals_per_example"]
    ratio = r["ratios"]["seconds per example, indicators on / off"]
    assert ratio == pytest.approx(on["seconds"] / off["seconds"]) and ratio > 0


def test_vs_torchattacks_skips_cleanly_without_torchattacks(tmp_path, capsys):
    r = vs_torchattacks.bench(compat=tmp_path / "absent")
    assert r["rows"] == [] and "torchattacks 3.5.1 not available" in r["skipped"]
    assert "absent" in r["skipped"] and "tools/fetch_compat.py" in r["skipped"]
    benchutil.emit(r, vs_torchattacks.COLUMNS)
    line = capsys.readouterr().out.splitlines()[0]
    assert json.loads(line)["skipped"] == r["skipped"]


def test_compare_scores_every_attack_the_same_way():
    model = load_model("mnist-cw")
    x, y, t = benchutil.examples("mnist-heldout", 3, torch.device("cpu"))
    expected = IFGSM(model)(x, y, targets=t)
    runners = [("cw-l2", "tiny", vs_torchattacks.ours(lambda m: CWL2(m, search=TINY))),
               ("ifgsm", "defaults", vs_torchattacks.ours(IFGSM))]
    rows, ratios = vs_torchattacks.compare("mnist", runners, model, x, y, t,
                                           torch.device("cpu"))
    assert [r["attack"] for r in rows] == ["cw-l2", "ifgsm"]
    assert rows[0]["model_grad_rows_per_example"] == 10
    assert rows[1]["asr"] == pytest.approx(100 * expected.success_rate) and expected.success.any()
    assert rows[1]["l2"] == pytest.approx(float(expected.metrics["l2"][expected.success].mean()))
    assert vs_torchattacks.common_l2_ratio(rows[1], rows[1]) == pytest.approx(1.0)
    assert set(ratios) == {"mnist: ifgsm (defaults) / cw-l2: l2 on common successes",
                           "mnist: ifgsm (defaults) / cw-l2: seconds"}


def test_torchattacks_cw_on_the_same_examples():
    """torchattacks from .cache/compat (`make test` fetches it), as the benchmark loads it."""
    with benchutil.compat_libraries() as (libs, why):
        if libs is None:
            pytest.skip(why)
        _torchattacks_cw_on_the_same_examples(libs.torchattacks)


def _torchattacks_cw_on_the_same_examples(ta):
    r = vs_torchattacks.bench(cases=["mnist"], n={"mnist": 2},
                              budgets=[{"c": 1.0, "steps": 5, "lr": 0.01}],
                              ours_factories={"cw-l2": lambda m: CWL2(m, search=TINY)})
    rows = r["rows"]
    assert [(x["attack"], x["settings"]) for x in rows] == [
        ("cw-l2", "defaults"), ("torchattacks-cw", "c=1, steps=50, lr=0.01"),
        ("torchattacks-cw", "c=1, steps=5, lr=0.01")]
    assert rows[1]["model_grad_rows_per_example"] <= 50
    assert rows[2]["model_grad_rows_per_example"] <= 5
    # the documented limitation, seen by the saturated_moved metric: pixels at exactly 0 or 1
    # never move under torchattacks' CW (tanh start at ±inf), while IFGSM moves them
    model = load_model("mnist-cw")
    x, y, t = benchutil.examples("mnist-heldout", 2, torch.device("cpu"))
    cpu = torch.device("cpu")
    ta_row = vs_torchattacks.score("torchattacks-cw", "", vs_torchattacks.torchattacks_cw(
        ta, 100.0, 100, 0.1), model, x, y, t, cpu)
    ifgsm_row = vs_torchattacks.score("ifgsm", "", vs_torchattacks.ours(IFGSM), model, x, y, t,
                                      cpu)
    assert ta_row["asr"] > 0 and ifgsm_row["asr"] > 0
    assert ta_row["saturated_moved"] == 0 < ifgsm_row["saturated_moved"]


def test_run_writes_strict_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(memory, "LAYOUTS", TINY_LAYOUTS)
    out = tmp_path / "bench.json"
    (report,) = run.main(["--only", "memory", "--out", str(out)])
    saved = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(c))
    assert saved["reports"][0]["ratios"].keys() == report["ratios"].keys()
    assert "peak_mb" in capsys.readouterr().out  # the table was printed


def test_table_and_jsonable():
    text = benchutil.table([{"a": 1.23456, "b": float("nan")}], ("a", "b"))
    assert text.splitlines()[2].split() == ["1.235", "nan"]
    assert benchutil.jsonable({"x": [float("inf"), 1.0]}) == {"x": [None, 1.0]}


def test_counting_model_counts_rows_and_keeps_the_models_mode():
    model = load_model("mnist-cw")
    counted = benchutil.CountingModel(model)
    assert not counted.training  # else torchattacks would "restore" training mode (dropout)
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        counted(x)
    counted(x[:2].requires_grad_(True)).sum().backward()
    assert (counted.rows, counted.grad_rows) == (5, 2)


def test_counting_model_times_forward_and_backward_passes():
    """The model's time: forward passes and the backward pass through it, not the work
    around it (here a costly loss after the model)."""
    counted = benchutil.CountingModel(torch.nn.Linear(256, 256))
    x = torch.rand(512, 256, requires_grad=True)
    big = torch.rand(2048, 2048)
    start = time.process_time()
    out = counted(x)
    for _ in range(8):  # outside the model: not counted
        big = (big @ big).tanh()
    (out.sum() + big.sum()).backward()
    total = time.process_time() - start
    assert len(counted._spans) == 2  # one forward, one backward span
    assert 0 < counted.model_seconds < 0.5 * total


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present")
def test_run_stops_with_one_line_without_cuda(capsys):
    with pytest.raises(SystemExit) as e:
        run.main(["--device", "cuda", "--only", "memory"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1
    assert err.startswith("error: --device cuda: CUDA is not available")


def test_threads_report_has_both_loads_and_ratios():
    import threads

    r = threads.bench(n=1, steps=1, iterations=2, rounds=1, threads_all=2, load_processes=1)
    assert [(row["load"], row["threads"]) for row in r["rows"]] == [
        ("quiet", 1), ("quiet", 2), ("loaded", 1), ("loaded", 2)]
    assert all(finite_positive(row["seconds"]) for row in r["rows"])
    assert finite_positive(r["ratios"]["loaded: 2 threads / 1 thread"])
    assert threads.bench(device="cuda")["skipped"]


def test_budget_rows_honour_each_budget_and_write_csv_and_png(tmp_path):
    import budget
    tiny = {"strattack": lambda m, b: StrAttack(m, budget=b),
            "cw-l2": lambda m, b: CWL2(m, budget=b)}
    r = budget.bench(images=1, budgets=(20, 40), imagenet_examples=0, attacks=tiny, peers={},
                     out_dir=str(tmp_path))
    rows = {(row["attack"], row["budget"]): row for row in r["rows"]}
    assert set(rows) == {(a, b) for a in tiny for b in (20, 40)}
    for (name, b), row in rows.items():
        assert row["examples"] == 9 and row["max_evals"] <= b
        assert 0 <= row["asr"] <= 100
    assert (tmp_path / "budget.csv").read_text().startswith("attack,budget")
    assert (tmp_path / "budget.png").stat().st_size > 0
    assert "strattack max l2 / cw-l2, budget 40" in r["ratios"]


def test_budget_peer_rows_count_the_models_evals_and_recheck_success():
    import budget
    model = load_model("mnist-cw")
    x, y = load_dataset("mnist-heldout", n=1)
    index, tg = expand_targets(y, 10, "all")
    expected = IFGSM(model)(x, y, targets="all")

    def fake(libs, b):  # b forward+backward rows per example, then IFGSM's images, two spoilt
        def run(m, xs, ys, t):
            for _ in range(b):
                m(xs.clone().requires_grad_(True)).sum().backward()
            adv = expected.adversarial.clone()
            adv[0], adv[1] = 0, adv[1] + 2  # foolbox's "nothing found"; outside [0, 1]
            return adv
        return "fake settings", run

    rows, l2 = budget.run_peers(None, model, x, y, (3,), {"fake": fake}, torch.device("cpu"),
                                index, tg.targets)
    (row,) = rows
    ok = expected.success.clone()
    ok[:2] = False
    assert ok.any() and expected.success[:2].any()  # the spoilt images were successes
    assert row["settings"] == "fake settings" and row["examples"] == 9
    assert row["evals_per_example"] == 3 and row["zero_images"] == 1
    assert row["asr"] == pytest.approx(100 * ok.float().mean())
    assert torch.isnan(l2["fake", 3][~ok]).all()
    assert torch.allclose(l2["fake", 3][ok], expected.metrics["l2"][ok])
    assert row["groups"] == expected.metrics["groups_nonzero"][ok].median()


def test_budget_runs_the_peers_with_measured_evals(tmp_path):
    import budget
    with benchutil.compat_libraries() as (libs, why):
        if libs is None:
            pytest.skip(why)
    r = budget.bench(images=1, budgets=(20,), peer_budgets=(20,), imagenet_examples=0,
                     attacks={"cw-l2": lambda m, b: CWL2(m, budget=b)}, out_dir=str(tmp_path))
    rows = {row["attack"]: row for row in r["rows"]}
    assert list(rows) == ["cw-l2", "torchattacks-cw", "foolbox-cw", "foolbox-ead"]
    assert rows["torchattacks-cw"]["settings"] == "c=100, steps=20, lr=0.1"
    assert rows["foolbox-cw"]["settings"] == "binary_search_steps=9, steps=2, stepsize=0.1"
    for name in budget.PEERS:
        row = rows[name]
        assert row["examples"] == 9 and row["budget"] == row["cw_budget"] == 20
        # counted on the model, within what the settings allow (9 × 2 for foolbox)
        assert 0 < row["evals_per_example"] <= (20 if name == "torchattacks-cw" else 18)
        assert 0 <= row["asr"] <= 100
        assert math.isnan(row["l2"]) == (row["asr"] == 0)
        assert f"{name} max l2 / cw-l2, budget 20" in r["ratios"]
    assert "peers: torchattacks 3.5.1, foolbox 3.3.4" in " ".join(r["notes"])
    assert "foolbox-ead" in (tmp_path / "budget.csv").read_text()
    compat = str(benchutil.COMPAT)  # afterwards nothing imported from there is left
    assert compat not in sys.path
    assert not [n for n, m in sys.modules.items()
                if str(getattr(m, "__file__", None) or "").startswith(compat)]


def test_budget_runs_without_the_peers_when_compat_is_missing(tmp_path, monkeypatch):
    import budget
    monkeypatch.setattr(benchutil, "COMPAT", tmp_path / "absent")
    r = budget.bench(images=1, budgets=(10,), peer_budgets=(10,), imagenet_examples=0,
                     attacks={"cw-l2": lambda m, b: CWL2(m, budget=b)}, out_dir=None)
    assert [row["attack"] for row in r["rows"]] == ["cw-l2"]
    assert any(n.startswith("peers not run:") and "absent" in n for n in r["notes"])


def test_resnet18_shaped_model_is_scriptable_and_imagenet_sized():
    import budget
    net = torch.jit.script(budget.ResNet18Shaped().eval())
    assert net(torch.rand(1, 3, 224, 224)).shape == (1, 1000)
    assert sum(p.numel() for p in net.parameters()) == 11_689_512  # torchvision's resnet18


def test_adv_lib_peers_count_the_models_evals_and_recheck_success():
    """One image × 2 targets through two adv_lib peers (.cache/compat, as the benchmark loads
    it): every step is one forward+backward per example, counted on the model."""
    import peers_adv_lib as peers
    model = load_model("mnist-cw")
    x, y = load_dataset("mnist-heldout", n=1)
    xs, targets = x.repeat(2, 1, 1, 1), (y.repeat(2) + torch.tensor([1, 2])) % 10
    chosen = {"fmn-l2": peers.AdvLibPeer("fmn", "steps", 7, {"norm": 2}),
              "pdpgd-l0": attrs.evolve(peers.PEERS["pdpgd-l0"], steps=5)}
    with peers.adv_lib() as (lib, why):
        if lib is None:
            pytest.skip(why)
        rows = {r["attack"]: r for r in peers.peers(lib, model, xs, targets, torch.device("cpu"),
                                                    chosen)}
    assert rows["fmn-l2"]["settings"] == "norm=2, steps=7"
    assert rows["pdpgd-l0"]["settings"] == "norm=0, proximal_operator=23, num_steps=5"
    assert rows["fmn-l2"]["evals_per_example"] == 7
    assert rows["pdpgd-l0"]["evals_per_example"] == 5
    for row in rows.values():
        assert row["examples"] == 2
        assert row["asr"] == 50 * row["successes"]
        assert 0 <= row["grid_ok"] <= row["successes"]
        assert math.isnan(row["l2"]) == (row["successes"] == 0)
    compat = str(benchutil.COMPAT)  # afterwards nothing imported from there, no stand-in
    assert compat not in sys.path
    assert not [n for n, m in sys.modules.items()
                if str(getattr(m, "__file__", None) or "").startswith(compat)]
    assert not [n for n in peers.STAND_INS
                if n in sys.modules and sys.modules[n].__doc__.startswith("stand-in")]


def test_adv_lib_absent_and_stand_ins_leave_nothing_behind(tmp_path):
    import peers_adv_lib as peers
    with peers.adv_lib(tmp_path / "absent") as (lib, why):
        assert lib is None and "absent" in why
    with peers.stand_ins(("json", "no_such_module_here")) as added:
        assert added == ["no_such_module_here"]  # json is importable: left alone
        with pytest.raises(RuntimeError, match="no_such_module_here.Visdom is a stand-in"):
            __import__("no_such_module_here").Visdom()
    assert "no_such_module_here" not in sys.modules


def test_frontier_marks_peers_dominated_only_at_fewer_evals_and_full_asr():
    import peers_adv_lib as peers
    row = lambda name, groups, l2, evals, asr=100.0: {
        "attack": name, "groups": groups, "l2": l2, "evals_per_example": evals, "asr": asr}
    rows = [row("strattack tau=1", 20, 2.0, 450), row("strattack tau=4", 10, 3.0, 450),
            row("strattack-overlap tau=8", 5, 2.5, 450, asr=90.0),
            row("fmn-l2", 150, 2.1, 1000), row("fmn-l0", 9, 3.5, 1000),
            row("cheap", 150, 2.1, 100), row("sparse", 5, 3.5, 1000)]
    peers.mark_dominated(rows)
    got = {r["attack"]: r["dominated_by"] for r in rows}
    assert got["fmn-l2"] == "strattack tau=1" and got["cheap"] == ""  # fewer evals than ours
    assert got["fmn-l0"] == "" and got["sparse"] == ""  # fewer groups; 90% ASR does not count
    assert peers.pareto([(20, 2.0), (10, 3.0), (15, 3.5), (5, 2.5)]) == [3, 0]


def test_frontier_compares_a_peer_on_the_examples_it_fooled():
    """A peer that fails on the easiest example has a mean over its successes that ours over
    all examples does not beat; on the peer's own successes ours is compared fairly, both
    for domination and for the cw-l2 ℓ2 ratio."""
    import peers_adv_lib as peers
    per = lambda ok, groups, l2: {"ok": torch.tensor(ok), "groups": torch.tensor(groups),
                                  "l2": torch.tensor(l2)}
    mean_ok = lambda p: {k: float(p[k][p["ok"]].mean()) for k in ("groups", "l2")}
    ours = per([True, True, True], [10.0, 10.0, 10.0], [0.1, 2.0, 2.0])  # means 10 / 1.367
    peer = per([False, True, True], [20.0, 20.0, 20.0], [0.0, 1.9, 1.9])  # fails the easy one
    row = lambda name, p, evals: {"attack": name, "asr": 100.0 * float(p["ok"].float().mean()),
                                  "evals_per_example": evals, **mean_ok(p),
                                  peers.PER_EXAMPLE: p}
    rows = [row("strattack tau=0.8", ours, 240), row("alma-l2", peer, 1000),
            row("cw-l2", ours, 230)]
    assert rows[0]["l2"] < rows[1]["l2"]  # unpaired, ours would look better
    peers.mark_dominated(rows)
    assert rows[1]["dominated_by"] == ""  # on its successes: 2.0 > 1.9
    assert peers.paired_ratios(rows) == {
        "cw-l2 l2 / alma-l2 l2 (on alma-l2's successes)": pytest.approx(2.0 / 1.9)}
    assert all(peers.PER_EXAMPLE not in r for r in peers.public(rows))
    better = per([True, True, True], [10.0, 10.0, 10.0], [3.0, 1.8, 1.8])  # worse unpaired
    rows = [row("strattack tau=0.2", better, 240), row("alma-l2", peer, 1000)]
    peers.mark_dominated(rows)
    assert rows[1]["dominated_by"] == "strattack tau=0.2"


def test_frontier_runs_the_shipped_specs_and_the_l1_goal_is_against_the_better_peer():
    import peers_adv_lib as peers
    from attacks.catalogue import load_spec
    for name in (peers.GROUP_L0, peers.L1_ATTACK):
        assert load_spec(name).origin == f"example:{name}"
    swept = load_spec(peers.GROUP_L0, [f"{peers.LAMBDA_KEY}=0.25"]).spec  # the key λ sweeps
    assert [t.params["weight"] for t in swept.terms if t.kind == "group_l0"] == [0.25]
    assert set(peers.L1_PEERS) <= set(peers.PEERS)
    row = lambda name, l1, groups=10, l2=3.0, evals=240: {
        "attack": name, "l1": l1, "groups": groups, "l2": l2, "evals_per_example": evals,
        "asr": 100.0}
    rows = [row("l1-attack", 13.0), row("fmn-l1", 12.5), row("pdpgd-l1", 14.0),
            row("strattack-group-l0 lambda=0.5", 30.0),
            row("fmn-l0", 20.0, groups=12, l2=4.0, evals=1000)]
    assert peers.l1_ratio(rows) == 13.0 / 12.5
    assert math.isnan(peers.l1_ratio([r for r in rows if r["attack"] != "l1-attack"]))
    peers.mark_dominated(rows)  # the group-l0 StrAttack is a point of our front
    assert {r["attack"]: r["dominated_by"] for r in rows}["fmn-l0"] == \
        "strattack-group-l0 lambda=0.5"


def test_adv_lib_budget_curves_give_each_peer_the_budget_in_steps():
    import peers_adv_lib as peers
    model = load_model("mnist-cw")
    x, y = load_dataset("mnist-heldout", n=1)
    with peers.adv_lib() as (lib, why):
        if lib is None:
            pytest.skip(why)
        rows = peers.curves(lib, model, x, y, (6,), torch.device("cpu"),
                            chosen={"alma-l2": peers.PEERS["alma-l2"]},
                            attacks={"cw-l2": lambda m, b: CWL2(m, budget=b)})
    got = {r["attack"]: r for r in rows}
    assert list(got) == ["cw-l2", "alma-l2"]
    assert got["alma-l2"]["settings"] == "distance=l2, num_steps=6"
    assert got["alma-l2"]["evals_per_example"] == 6 and got["alma-l2"]["examples"] == 9
    assert 0 < got["cw-l2"]["evals_per_example"] <= 6
    assert got["alma-l2"]["cw_budget"] == 6


def test_grid_roundtrip_starts_from_the_continuous_answer():
    """The benchmark compares the continuous attack with its grid version: the attack it runs
    must not be on the grid already (8-bit data turns the grid on by default), so C&W's tiny
    entries are there before rounding drops them."""
    model = load_model("mnist-cw")
    x, y = load_dataset("mnist-test20", n=2)
    row = grid_roundtrip.measure("cw-l2", model, x, y)
    assert row["successes"] == 2 and row["grid_png_survive_pct"] == 100.0
    assert row["l0_continuous"] > row["l0_grid"] and row["l0_grew"] == 0
