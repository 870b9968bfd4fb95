"""Shared helpers of the CLI tests (tests/test_cli*.py): tiny budgets, file readers, and the
checks every finished run directory must pass. Imported as ``test_cli_helpers``."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cli.main import app

ROOT = Path(__file__).resolve().parent.parent
# tiny budgets: every solve in the CLI tests takes about a second on one core
TINY = ["--set", "search.binary.steps=2", "--set", "search.iterations=30"]
TINY_REFINE = TINY + ["--set", "refine.iterations=20"]
FAST = ["--model", "mnist-cw", "--data", "mnist-test20", "--targets", "random",
        "--threads", "1", "-q"]


@pytest.fixture(autouse=True)
def restore_threads():
    """--threads sets torch's process-wide thread count; give it back after each test (autouse
    in a test module that imports it)."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def assert_user_error(r, *fragments):
    """Exit status 2, no traceback, one ``error: ...`` line on stderr holding ``fragments``."""
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for f in fragments:
        assert f in lines[0], (f, lines[0])


def read_csv(path: Path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def read_json(path: Path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def as_float(cell: str) -> float:
    return float(cell)  # "nan" parses to NaN


def check_run_dir(out: Path, *, examples: int, figures: int = None):
    """The files of a finished run exist, parse and agree with each other; returns
    (rows, summary, npz arrays)."""
    for name in ("metrics.csv", "summary.json", "adversarial.npz", "spec.toml",
                 "provenance.json"):
        assert (out / name).is_file(), name
    rows = read_csv(out / "metrics.csv")
    summary = read_json(out / "summary.json")
    with np.load(out / "adversarial.npz") as z:
        arrays = {k: z[k] for k in z.files}
    assert len(rows) == examples == summary["examples"] == arrays["delta"].shape[0]
    success = np.array([r["success"] == "true" for r in rows])
    assert summary["successes"] == int(success.sum()) == int(arrays["success"].sum())
    assert summary["failures"] == examples - int(success.sum())
    assert math.isclose(summary["asr"], 100.0 * success.mean(), rel_tol=1e-6)
    np.testing.assert_array_equal(arrays["success"], success)
    for r, ok in zip(rows, success):
        dist = [as_float(r[k]) for k in ("l0", "l1", "l2", "linf", "groups_nonzero", "c")]
        if ok:
            assert all(math.isfinite(d) for d in dist), r
        else:  # failures: δ = 0 and NaN distortions, never averaged in
            assert all(math.isnan(d) for d in dist), r
            assert r["refined"] == "false"
    # the saved δ is the CSV's: ℓ0 (|δ| > 1e-7), ℓ2, and adversarial = original + δ
    flat = arrays["delta"].reshape(examples, -1)
    l0 = (np.abs(flat) > 1e-7).sum(1)
    for i, r in enumerate(rows):
        if success[i]:
            assert int(float(r["l0"])) == l0[i]
            assert math.isclose(float(r["l2"]), float(np.linalg.norm(flat[i])), rel_tol=1e-4)
        else:
            assert l0[i] == 0
    np.testing.assert_allclose(arrays["adversarial"], arrays["original"] + arrays["delta"],
                               atol=1e-6)
    assert arrays["adversarial"].min() >= 0 and arrays["adversarial"].max() <= 1
    if success.any():
        mean_l0 = float(np.mean([float(r["l0"]) for r, ok in zip(rows, success) if ok]))
        assert math.isclose(summary["l0"], mean_l0, rel_tol=1e-6)
    if figures is not None:
        pngs = sorted((out / "figures").glob("example-*.png"))
        assert len(pngs) == min(figures, examples)
        for p in pngs:
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return rows, summary, arrays


def test_tiny_budget_overrides_are_spec_keys():
    """The helpers' --set overrides exist in every spec that has a refine stage."""
    from attacks.catalogue import load_spec
    sets = [a for a in TINY_REFINE if a != "--set"]
    spec = load_spec("strattack", sets).spec
    assert (spec.search.section("binary").steps, spec.search.iterations,
            spec.refine.iterations) == (2, 30, 20)
