"""End-to-end runs of ``admm-attack solve`` on bundled data (mnist-test20, zoo model mnist-cw)
with tiny budgets: built-in spec, an edited TOML file, custom formulations, resume after an
interruption, provenance, and a real subprocess of ``python -m cli``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

import attacks.runs.runner
from attacks.builtin import TAU_PER_DISTANCE, builtin_spec
from attacks.spec import AttackSpec
import tomllib
from test_cli_helpers import (FAST, ROOT, TINY, TINY_REFINE, check_run_dir, invoke, read_csv,
                              read_json)


@pytest.fixture(autouse=True)
def _restore_threads():
    """--threads 1 sets torch's process-wide thread count; give it back after each test."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def solve(out, *extra, spec="strattack", n=4, budget=TINY_REFINE):
    """A tiny-budget run; no figures unless ``extra`` asks for them (the last option wins)."""
    return invoke("solve", "--spec", spec, *FAST, *budget, "-n", n, "--batch-size", 2,
                  "--figures", 0, "--out", out, *extra)


def test_solve_builtin_spec_writes_consistent_outputs(tmp_path):
    out = tmp_path / "run"
    r = solve(out, "--figures", 3)
    assert r.exit_code == 0, r.output
    rows, summary, arrays = check_run_dir(out, examples=4, figures=3)
    assert summary["successes"] >= 1  # mnist-cw falls on these images even with tiny budgets
    assert summary["batches"] == 2 and summary["batches_computed"] == 2
    assert [int(r["source_index"]) for r in rows] == [0, 1, 2, 3]
    assert all(r["targeted"] == "true" and r["target"] != r["label"] for r in rows)
    assert {p.name for p in (out / "batches").iterdir()} == {"batch-00000.npz",
                                                             "batch-00001.npz"}
    # figures show successes first
    succ = [i for i, r in enumerate(rows) if r["success"] == "true"]
    names = sorted(p.name for p in (out / "figures").iterdir())
    assert {f"example-{i:04d}.png" for i in succ[:3]} <= set(names)
    # the stdout summary names the ASR; nothing on stderr with -q
    assert f"{summary['successes']}/4 successful" in r.stdout


def test_provenance_records_spec_seed_options_versions(tmp_path):
    out = tmp_path / "run"
    assert solve(out, "--seed", "3", n=2).exit_code == 0
    p = read_json(out / "provenance.json")
    assert p["status"] == "complete"
    assert p["seed"] == 3 and p["options"]["seed"] == 3
    assert p["options"]["set"] == [a for a in TINY_REFINE if a != "--set"]
    assert p["options"]["model"] == "mnist-cw" and p["options"]["data"] == "mnist-test20"
    assert p["options"]["targets"] == "random" and p["options"]["batch_size"] == 2
    spec = AttackSpec.from_dict(tomllib.loads(p["spec_toml"]))
    assert spec.name == "strattack" and spec.search.section("binary").steps == 2
    assert spec.refine.iterations == 20
    assert tomllib.loads((out / "spec.toml").read_text()) == tomllib.loads(p["spec_toml"])
    assert p["spec_origin"] == "builtin:strattack"
    for pkg in ("torch", "numpy", "admm-attack"):
        assert p["versions"][pkg]
    assert p["versions"]["torch"] == torch.__version__.split("+")[0] or \
        p["versions"]["torch"] == torch.__version__
    assert p["python"] == sys.version.split()[0] and p["platform"]
    assert p["device"] == "cpu"
    assert set(p["git"]) == {"commit", "dirty"}
    assert len(p["history"]) == 1 and p["history"][0]["batches_computed"] == 1
    key = p["resume_key"]
    assert key["seed"] == 3 and key["targets"] == "random" and key["model"] == "mnist-cw"
    assert len(key["data_sha256_16"]) == 16 and len(key["model_sha256_16"]) == 16


def test_provenance_without_git(tmp_path, monkeypatch):
    """A missing git executable is recorded as unknown, never an error."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    out = tmp_path / "run"
    assert solve(out, n=1, budget=TINY + ["--set", "refine=false"]).exit_code == 0
    assert read_json(out / "provenance.json")["git"] == {"commit": None, "dirty": None}


def test_solve_edited_toml_file(tmp_path):
    """specs show > file, edit the file, run it: the edit is what ran."""
    shown = invoke("specs", "show", "strattack")
    assert shown.exit_code == 0
    text = shown.stdout.replace('name = "strattack"', 'name = "my-strattack"')
    text = text.replace(f"weight = {TAU_PER_DISTANCE}", "weight = 3.5")  # τ of the group term
    default = builtin_spec("strattack").search
    text = text.replace(f"steps = {default.section('binary').steps} ", "steps = 2 ").replace(
        f"iterations = {default.iterations} ", "iterations = 30 ", 1)
    text = text.replace("overlapping = false", "overlapping = true")
    assert text.count("weight = 3.5") == 1 and "overlapping = true" in text
    path = tmp_path / "my.toml"
    path.write_text(text)
    out = tmp_path / "run"
    r = solve(out, spec=str(path), n=3, budget=["--set", "refine.iterations=20"])
    assert r.exit_code == 0, r.output
    rows, summary, _ = check_run_dir(out, examples=3)
    assert summary["attack"] == "my-strattack"
    ran = AttackSpec.from_dict(tomllib.loads((out / "spec.toml").read_text()))
    groups = [t for t in ran.terms if t.kind == "group_l2"][0]
    assert groups.params["weight"] == 3.5 and groups.groups.overlapping
    assert (ran.search.section("binary").steps, ran.search.iterations,
            ran.refine.iterations) == (2, 30, 20)
    assert read_json(out / "provenance.json")["spec_origin"] == str(path)


@pytest.mark.parametrize("name", ["sparse-group-lasso", "l1-overlapping-groups"])
def test_solve_custom_formulation_from_toml_alone(tmp_path, name):
    """Formulations that are none of the built-ins run from their TOML file."""
    path = ROOT / "attacks" / "specs" / f"{name}.toml"
    out = tmp_path / "run"
    r = solve(out, "--figures", 3, spec=str(path), n=3)
    assert r.exit_code == 0, r.output
    rows, summary, arrays = check_run_dir(out, examples=3, figures=3)
    ran = AttackSpec.from_dict(tomllib.loads((out / "spec.toml").read_text()))
    shipped = tomllib.loads(path.read_text())
    assert ran == AttackSpec.from_dict({
        **shipped, "search": {**shipped["search"], "iterations": 30, "binary": {"steps": 2}},
        "refine": {**shipped["refine"], "iterations": 20}})
    if name == "sparse-group-lasso":  # the box: |δ| <= eps = 0.5
        assert np.abs(arrays["delta"]).max() <= 0.5 + 1e-6
        assert {t.kind for t in ran.terms} == {"l1", "group_l2", "squared_l2"}


def test_shipped_example_runs_by_name(tmp_path):
    out = tmp_path / "run"
    assert solve(out, spec="sparse-group-lasso", n=1).exit_code == 0
    assert read_json(out / "provenance.json")["spec_origin"] == "example:sparse-group-lasso"


REAL_RUN_BATCH = attacks.runs.runner.run_batch


def _interrupt_after(monkeypatch, first: int):
    """Make attacks.runs.runner.run_batch raise KeyboardInterrupt after ``first`` batches; count calls."""
    real = REAL_RUN_BATCH
    calls = []

    def flaky(attack, plan, sl):
        calls.append(sl.start)
        if len(calls) > first:
            raise KeyboardInterrupt
        return real(attack, plan, sl)

    monkeypatch.setattr(attacks.runs.runner, "run_batch", flaky)
    return calls


def _counting(monkeypatch):
    real = REAL_RUN_BATCH
    calls = []

    def counted(attack, plan, sl):
        calls.append(sl.start)
        return real(attack, plan, sl)

    monkeypatch.setattr(attacks.runs.runner, "run_batch", counted)
    return calls


def test_resume_after_interruption_skips_finished_batches(tmp_path, monkeypatch):
    out = tmp_path / "run"
    _interrupt_after(monkeypatch, 1)
    r = solve(out, n=6)  # 3 batches of 2
    assert r.exit_code == 130
    assert "interrupted" in r.stderr and "resume" in r.stderr and "Traceback" not in r.output
    assert [p.name for p in sorted((out / "batches").glob("*.npz"))] == ["batch-00000.npz"]
    assert not (out / "metrics.csv").exists()
    assert read_json(out / "provenance.json")["status"] == "interrupted"
    assert not list((out / "batches").glob(".*.tmp"))  # nothing half-written
    first = (out / "batches" / "batch-00000.npz").stat().st_mtime_ns

    calls = _counting(monkeypatch)
    r = solve(out, n=6)
    assert r.exit_code == 0, r.output
    assert calls == [2, 4]  # batch 0 (examples 0-1) was not recomputed
    assert (out / "batches" / "batch-00000.npz").stat().st_mtime_ns == first
    rows, summary, _ = check_run_dir(out, examples=6)
    assert summary["batches_resumed"] == 1 and summary["batches_computed"] == 2
    prov = read_json(out / "provenance.json")
    assert prov["status"] == "complete" and len(prov["history"]) == 2
    assert prov["history"][0]["interrupted"] is True

    # the resumed run equals one done in one go
    fresh = tmp_path / "fresh"
    assert solve(fresh, n=6).exit_code == 0
    assert read_csv(fresh / "metrics.csv") == rows


def test_resume_recomputes_only_a_missing_batch(tmp_path, monkeypatch):
    out = tmp_path / "run"
    assert solve(out, n=4).exit_code == 0
    before = read_csv(out / "metrics.csv")
    for name in ("metrics.csv", "summary.json", "adversarial.npz"):
        (out / name).unlink()
    (out / "batches" / "batch-00001.npz").unlink()
    calls = _counting(monkeypatch)
    assert solve(out, n=4).exit_code == 0
    assert calls == [2]
    assert read_csv(out / "metrics.csv") == before
    # a complete run re-run computes nothing
    calls.clear()
    assert solve(out, n=4).exit_code == 0
    assert calls == [] and read_json(out / "summary.json")["batches_resumed"] == 2


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "run"
    n = torch.get_num_threads()
    assert solve(out, n=2).exit_code == 0
    torch.set_num_threads(n)
    return out


@pytest.mark.parametrize("change, field", [
    (["--seed", "1"], "seed"),
    (["--set", "solver.rho=2"], "spec"),
    (["--targets", "untargeted"], "targets"),
    (["--batch-size", "1"], "batch_size"),
    (["-n", "3"], "data_sha256_16"),
])
def test_resume_refused_when_the_run_differs(tmp_path, finished_run, change, field):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    r = solve(out, *change, n=2)
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and field in lines[0] and "--restart" in lines[0]
    assert "(it differs in " in lines[0]
    assert "Traceback" not in r.output
    assert read_json(out / "provenance.json") == read_json(finished_run / "provenance.json")


def test_restart_discards_a_different_run(tmp_path, finished_run):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    (out / "notes.txt").write_text("mine")
    r = solve(out, "--seed", "5", "--restart", n=1)
    assert r.exit_code == 0, r.output
    check_run_dir(out, examples=1)
    assert read_json(out / "provenance.json")["resume_key"]["seed"] == 5
    assert [p.name for p in (out / "batches").iterdir()] == ["batch-00000.npz"]
    assert (out / "notes.txt").read_text() == "mine"  # only solve's own files are removed


def test_untargeted_and_explicit_targets(tmp_path):
    out = tmp_path / "u"
    r = invoke("solve", "--spec", "cw-l2", *FAST, *TINY, "-n", 2, "--targets", "untargeted",
               "--figures", 0, "--out", out)
    assert r.exit_code == 0, r.output
    rows, _, _ = check_run_dir(out, examples=2)
    assert all(r["targeted"] == "false" and r["target"] == r["label"] for r in rows)
    out = tmp_path / "t"  # mnist-test20 labels start 7, 2
    r = invoke("solve", "--spec", "cw-l2", *FAST, *TINY, "-n", 2, "--targets", "3,5",
               "--figures", 0, "--out", out)
    assert r.exit_code == 0, r.output
    rows, _, _ = check_run_dir(out, examples=2)
    assert [int(r["target"]) for r in rows] == [3, 5]


def test_targets_all_expands_every_other_class(tmp_path):
    out = tmp_path / "all"
    r = invoke("solve", "--spec", "cw-l2", *FAST, "--set", "search.binary.steps=1", "--set",
               "search.iterations=10", "-n", 1, "--targets", "all", "--batch-size", 9,
               "--figures", 0, "--out", out)
    assert r.exit_code == 0, r.output
    rows, summary, _ = check_run_dir(out, examples=9, figures=0)
    assert sorted(int(r["target"]) for r in rows) == [c for c in range(10) if c != 7]
    assert {r["source_index"] for r in rows} == {"0"} and summary["images"] == 1


def test_subprocess_console_run_with_progress(tmp_path):
    """A real process: ``python -m cli`` (the console script's module), progress on stderr."""
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "COLUMNS": "120"}
    cmd = [sys.executable, "-m", "cli", "solve", "--spec", "strattack", "--model", "mnist-cw",
           "--data", "mnist-test20", "-n", "2", "--batch-size", "1", *TINY_REFINE,
           "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "ASR" in done.stderr and "2/2" in done.stderr  # the progress bar's last state
    check_run_dir(out, examples=2)

    bad = subprocess.run([sys.executable, "-m", "cli", "solve", "--spec", "nope", "--model",
                          "mnist-cw", "--data", "mnist-test20", "--out", str(out)],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("error: unknown spec 'nope'")
    assert "Traceback" not in bad.stderr + bad.stdout


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.trace/save in torch 2.13
def test_user_models_and_image_folder(tmp_path, monkeypatch):
    """--model as a TorchScript file and as module:factory + --weights; --data as a folder."""
    from PIL import Image

    from attacks.data import load_dataset
    from attacks.models import load_model

    images, labels = load_dataset("mnist-test20", 2)
    folder = tmp_path / "digits"
    folder.mkdir()
    rows = []
    for i, (x, y) in enumerate(zip(images, labels)):
        Image.fromarray((x[0].numpy() * 255).round().astype("uint8")).save(folder / f"{i}.png")
        rows.append(f"{i}.png,{int(y)}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")

    zoo = load_model("mnist-cw")
    scripted = tmp_path / "net.pt"
    torch.jit.save(torch.jit.trace(zoo, images[:1]), str(scripted))
    out = tmp_path / "ts"
    r = invoke("solve", "--spec", "cw-l2", "--model", scripted, "--data", folder, *TINY,
               "--threads", "1", "-q", "--figures", 1, "--targets", "untargeted", "--out", out)
    assert r.exit_code == 0, r.output
    check_run_dir(out, examples=2, figures=1)
    assert read_json(out / "provenance.json")["resume_key"]["model"] == str(scripted)

    (tmp_path / "my_nets.py").write_text(
        "from attacks.models import ImageClassifier, mnist_cw\n"
        "def make():\n    return ImageClassifier(mnist_cw(), 0.1307, 0.3081)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    weights = tmp_path / "w.pt"
    torch.save(zoo.state_dict(), weights)
    out = tmp_path / "factory"
    r = invoke("solve", "--spec", "cw-l2", "--model", "my_nets:make", "--weights", weights,
               "--data", folder, *TINY, "--threads", "1", "-q", "--figures", 0,
               "--targets", "untargeted", "--out", out)
    assert r.exit_code == 0, r.output
    check_run_dir(out, examples=2)
    # the same network on the same images: the same outcome as the TorchScript file
    pick = lambda run: [(r["label"], r["success"]) for r in read_csv(run / "metrics.csv")]
    assert pick(out) == pick(tmp_path / "ts")
    assert [int(r[0]) for r in pick(out)] == labels.tolist()


def test_grid_output_is_8_bit_and_verified(tmp_path):
    out = tmp_path / "grid"
    assert solve(out, "--grid", n=3).exit_code == 0
    rows, summary, arrays = check_run_dir(out, examples=3)
    assert summary["grid"] is True and read_json(out / "provenance.json")["resume_key"]["grid"]
    q = arrays["adversarial"] * 255
    np.testing.assert_allclose(q, q.round(), atol=1e-3)


def test_grid_is_on_by_default_and_pngs_reload_as_verified_successes(tmp_path):
    """8-bit data: the examples are written as PNG files that stay adversarial when reloaded."""
    import json

    import numpy as np
    import torch
    from PIL import Image
    from typer.testing import CliRunner

    from attacks.models import load_model
    from cli.main import app

    out = tmp_path / "run"
    r = CliRunner().invoke(app, ["solve", "--spec", "strattack", "--model", "mnist-cw",
                                 "--data", "mnist-test20", "-n", "3", "--targets", "random",
                                 "--threads", "1", "-q", "--out", str(out),
                                 "--set", "search.binary.steps=3", "--set", "search.iterations=60",
                                 "--set", "refine.iterations=40"])
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["grid"] is True
    files = sorted((out / "png").glob("*.png"))
    assert len(files) == 3
    model = load_model("mnist-cw")
    saved = np.load(out / "adversarial.npz")
    for i, f in enumerate(files):
        img = torch.from_numpy(np.array(Image.open(f))).float().div(255).view(1, 1, 28, 28)
        assert np.array_equal(img.numpy()[0], saved["adversarial"][i])
        if saved["success"][i]:
            assert f.name.endswith("_ok.png")
            with torch.no_grad():
                assert model(img).argmax(1).item() == saved["targets"][i]
