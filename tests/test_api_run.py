"""``Attack.run(loader, out=DIR)``: the CLI's resumable run directory from Python."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import attacks.runs.runner
from attacks import Attack
from attacks.data import load_dataset
from attacks.models import load_model
from attacks.result import AttackResult
from attacks.catalogue import load_spec
from test_cli_helpers import TINY, check_run_dir, invoke, read_json

SETS = [a for a in TINY if a != "--set"]


@pytest.fixture(scope="module")
def digits():
    return load_dataset("mnist-test20", 4)


def attack():
    return Attack(load_model("mnist-cw"), load_spec("cw-l2", SETS).spec, seed=0, batch_size=2)


def test_a_dataloader_run_resumes_after_an_interruption(tmp_path, digits, monkeypatch):
    loader = DataLoader(TensorDataset(*digits), batch_size=2)
    real, calls = attacks.runs.runner.run_batch, []

    def interrupted(fn, plan, sl):
        calls.append(sl.start)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real(fn, plan, sl)

    monkeypatch.setattr(attacks.runs.runner, "run_batch", interrupted)
    with pytest.raises(KeyboardInterrupt, match="1 of 2 batches saved"):
        attack().run(loader, targets="random", out=tmp_path / "run")
    assert read_json(tmp_path / "run" / "provenance.json")["status"] == "interrupted"
    monkeypatch.setattr(attacks.runs.runner, "run_batch", real)
    result = attack().run(loader, targets="random", out=tmp_path / "run")
    summary = read_json(tmp_path / "run" / "summary.json")
    assert summary["batches_resumed"] == 1 and summary["batches_computed"] == 1
    check_run_dir(tmp_path / "run", examples=4)
    assert result.equals(attack().run(loader, targets="random"))        # = in memory
    assert result.equals(AttackResult.load(tmp_path / "run"))            # = what it wrote


def test_python_and_the_cli_give_equal_results(tmp_path, digits):
    r = invoke("solve", "--spec", "cw-l2", *TINY, "--model", "mnist-cw", "--data",
               "mnist-test20", "-n", 4, "--targets", "random", "--batch-size", 2,
               "--threads", 1, "-q", "--figures", 0, "--out", tmp_path / "cli")
    assert r.exit_code == 0, r.output
    python = attack().run(TensorDataset(*digits), targets="random", out=tmp_path / "py")
    assert AttackResult.load(tmp_path / "cli").equals(python)
    for name in ("metrics.csv", "adversarial.npz"):
        assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "py" / name).read_bytes()


def test_a_different_run_in_the_same_directory_is_refused(tmp_path, digits):
    loader = DataLoader(TensorDataset(*digits), batch_size=2)
    attack().run(loader, targets="random", out=tmp_path / "run")
    with pytest.raises(ValueError, match="holds a different run"):
        attack().run(loader, targets=None, out=tmp_path / "run")
