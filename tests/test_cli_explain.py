"""``admm-attack explain``: an end-to-end run on bundled data with tiny budgets (files and their
agreement), CAM on a GAP model given as module:factory, resuming, and user errors (exit 2, one
line naming the option)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from test_cli_helpers import assert_user_error
from test_cli_helpers import invoke, read_csv, read_json

# every attack of these tests takes about a second on one core
TINY = ["--set", "search.binary.steps=3", "--set", "search.iterations=40",
        "--set", "search.rescue_iterations=0", "--set", "strattack:refine.iterations=10"]
BASE = ["--data", "mnist-test20", "--threads", "1", "-q"]
NUS = [30.0, 60.0, 90.0]


@pytest.fixture(autouse=True)
def _restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def explain(out, *extra, model="mnist-cw", n=2):
    return invoke("explain", "--model", model, *BASE, "-n", n, "--nus", "30,60,90",
                  "--out", out, *extra)


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("explain") / "run"
    r = explain(out, *TINY, "--figures", 1)
    return out, r


def test_explain_writes_consistent_curves_tables_and_figures(mnist_run):
    out, r = mnist_run
    assert r.exit_code == 0, r.output
    s = read_json(out / "summary.json")
    assert s["nus"] == NUS and s["examples"] == 2
    assert s["maps"].keys() == {"asm", "gradcam-true", "gradcam-target"}   # auto, no GAP head
    assert list(s["attacks"]) == ["strattack", "cw-l2"]
    fooled_by_all = s["counted"]
    assert fooled_by_all >= 1  # mnist-cw falls on these digits even with tiny budgets
    assert s["fooled"] == {a: s["attacks"][a]["successes"] for a in ("strattack", "cw-l2")}
    # is_curve.csv: one row per (map, attack + reference, ν), the summary's means
    rows = read_csv(out / "is_curve.csv")
    assert len(rows) == 3 * 3 * 3
    for row in rows:
        mean = s["mean_is"][row["map"]][row["attack"]][NUS.index(float(row["nu"]))]
        assert math.isclose(float(row["mean_is"]), mean, abs_tol=1e-6)
        assert 0 <= mean <= 1 and int(row["examples"]) == fooled_by_all
    # per-example scores average to the curve over the examples every attack fooled
    per = read_csv(out / "is_per_example.csv")
    assert len(per) == 3 * 2 * 3 * 2   # maps x attacks x ν x examples (no reference rows)
    for m in s["mean_is"]:
        for a in ("strattack", "cw-l2"):
            for j, nu in enumerate(NUS):
                vals = [float(p["is"]) for p in per if p["map"] == m and p["attack"] == a
                        and float(p["nu"]) == nu and p["is"]]
                assert len(vals) == fooled_by_all
                assert math.isclose(np.mean(vals), s["mean_is"][m][a][j], abs_tol=1e-5)
    # IS from the saved perturbations and the ASM recomputed here: eq. 23 by hand
    from attacks.interpret import adversarial_saliency_map, percentile_mask
    from attacks.models import load_model
    with np.load(out / "attacks" / "strattack" / "adversarial.npz") as z:
        x0, delta = torch.from_numpy(z["original"]), torch.from_numpy(z["delta"]).double()
        labels, targets, ok = (torch.from_numpy(z[k]) for k in ("labels", "targets", "success"))
    asm = adversarial_saliency_map(load_model("mnist-cw"), x0, labels, targets)
    b = percentile_mask(asm, 90)
    by_hand = ((b * delta).flatten(1).norm(dim=1) / delta.flatten(1).norm(dim=1))
    written = [float(p["is"]) if p["is"] else math.nan for p in per
               if p["map"] == "asm" and p["attack"] == "strattack" and float(p["nu"]) == 90]
    for i in range(2):
        if ok[i]:
            assert math.isclose(written[i], float(by_hand[i]), abs_tol=1e-5)
    # figures, provenance, the attack runs, the printed table
    pngs = sorted((out / "figures").glob("example-*.png"))
    assert len(pngs) == 1 and (out / "is_curve.png").is_file()
    for p in pngs + [out / "is_curve.png"]:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 20_000
    prov = read_json(out / "provenance.json")
    assert prov["status"] == "complete" and prov["tool"] == "admm-attack explain"
    assert prov["options"]["attacks"] == "strattack,cw-l2" and prov["nus"] == NUS
    assert set(prov["attacks"]) == {"strattack", "cw-l2"}
    assert prov["map_settings"]["gradcam_layer"] == "net.features.8"
    for a in ("strattack", "cw-l2"):
        assert read_json(out / "attacks" / a / "provenance.json")["status"] == "complete"
    assert "mean IS over the" in r.stdout and "gradcam-target" in r.stdout


def test_explain_resumes_the_attacks_and_rewrites_the_report(mnist_run, tmp_path):
    out, first = mnist_run
    assert first.exit_code == 0
    before = read_json(out / "summary.json")
    again = explain(out, *TINY, "--figures", 0, "--maps", "asm")
    assert again.exit_code == 0, again.output
    s = read_json(out / "summary.json")
    assert all(a["batches_resumed"] == 1 for a in s["attacks"].values())
    assert list(s["mean_is"]) == ["asm"] and s["mean_is"]["asm"] == before["mean_is"]["asm"]


def test_an_interrupted_explain_says_so_and_resumes(tmp_path, monkeypatch):
    import attacks.runs.runner
    real = attacks.runs.runner.run_batch
    calls = []

    def interrupted_in_the_second_attack(attack, plan, sl):
        calls.append(attack.spec.name)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real(attack, plan, sl)

    monkeypatch.setattr(attacks.runs.runner, "run_batch", interrupted_in_the_second_attack)
    out = tmp_path / "run"
    r = explain(out, *TINY, "--figures", 0, "--maps", "asm", n=1)
    assert r.exit_code == 130 and "resume" in r.stderr and "Traceback" not in r.output
    assert read_json(out / "provenance.json")["status"] == "interrupted"
    assert not (out / "summary.json").exists()
    monkeypatch.setattr(attacks.runs.runner, "run_batch", real)
    r = explain(out, *TINY, "--figures", 0, "--maps", "asm", n=1)
    assert r.exit_code == 0, r.output
    assert "±nan" not in r.stdout  # one example: a paired difference without an error bar
    s = read_json(out / "summary.json")
    assert s["attacks"]["strattack"]["batches_resumed"] == 1   # not attacked again
    assert s["attacks"]["cw-l2"]["batches_resumed"] == 0
    assert read_json(out / "provenance.json")["status"] == "complete"


GAP_FACTORY = """\
import torch
from torch import nn
from attacks.models import ImageClassifier

def make():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
    return ImageClassifier(net, 0.5, 0.5, input_shape=(1, 28, 28), num_classes=10)
"""


def test_cam_on_a_gap_model_and_its_overlays(tmp_path, monkeypatch):
    (tmp_path / "tiny_gap.py").write_text(GAP_FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "gap"
    r = explain(out, "--attacks", "cw-l2", "--maps", "cam,asm", "--figures", 1,
                "--set", "search.binary.steps=2", "--set", "search.iterations=30",
                model="tiny_gap:make", n=2)
    assert r.exit_code == 0, r.output
    s = read_json(out / "summary.json")
    assert list(s["mean_is"]) == ["cam-true", "cam-target", "asm"]
    assert s["map_settings"]["cam_features"] == "input of net.5"   # the AdaptiveAvgPool2d
    assert s["map_settings"]["cam_classifier"] == "net.7"
    assert len(read_csv(out / "is_curve.csv")) == 3 * 2 * 3
    assert len(list((out / "figures").glob("example-*.png"))) == 1


@pytest.mark.parametrize("flags, fragments", [
    (["--maps", "cam-true"], ["--maps cam-true", "--model mnist-cw", "GAP head", "gradcam"]),
    (["--maps", "asm,saliency"], ["--maps", "unknown map 'saliency'", "gradcam-target"]),
    (["--maps", "auto,asm"], ["--maps", "auto stands alone"]),
    (["--nus", "30,120"], ["--nus", "120 is outside [0, 100]"]),
    (["--nus", "30,x"], ["--nus", "'x' is not a number"]),
    (["--attacks", "strattack,,cw-l2"], ["--attacks", "without empty entries"]),
    (["--attacks", "strattack,cw-l3"], ["unknown spec 'cw-l3'"]),
    (["--set", "search.binary.steps=0"], ["search.binary.steps"]),
    (["--set", "cw-l3:search.binary.steps=2"],
     ["--set cw-l3:search.binary.steps=2", "no attack 'cw-l3'"]),
    (["--set", "cw-l2:refine.iterations=5"], ["--set refine.iterations", "no refine stage"]),
    (["--targets", "untargeted"], ["--targets untargeted", "target class"]),
    (["--targets", "1,2,3"], ["3 targets for 2 images"]),
    (["--figures", "-1"], ["--figures -1"]),
    (["--figure-nu", "101"], ["--figure-nu 101"]),
    (["--batch-size", "0"], ["--batch-size 0"]),
])
def test_bad_options_are_user_errors(tmp_path, flags, fragments):
    out = tmp_path / "run"
    r = explain(out, *flags)
    assert_user_error(r, *fragments)
    assert not (out / "attacks").exists()   # nothing was attacked
