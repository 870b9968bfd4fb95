"""The run options every command shares (one record, range-checked), the command line on its
own (``--help`` without torch, the closing line), attacks labelled by their spec file, and how
a run that does not finish ends: a model that raises or exits, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from attacks.filenames import PROVENANCE
from attacks.store import LOCK
from cli.eval import TOP_FILES
from test_cli_helpers import (FAST, ROOT, TINY, assert_user_error, invoke, read_json,
                              restore_threads)  # noqa: F401 (autouse)

EVAL = ["--model", "mnist-cw", "--data", "mnist-test20", "--threads", "1", "-q",
        "--cases", "average", *TINY]


def solve(out, *args):
    return invoke("solve", "--spec", "cw-l2", *FAST, *TINY, "-n", 2, "--figures", 0,
                  "--out", out, *args)


# -- --help stands alone and is quick ---------------------------------------------------------
@pytest.mark.parametrize("argv", [["--help"], ["solve", "--help"], ["eval", "--help"]])
def test_help_imports_neither_torch_nor_the_attacks(argv):
    code = ("import sys\nfrom cli.main import main\nsys.argv = ['admm-attack', *sys.argv[1:]]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'numpy', 'attacks.api') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Usage: admm-attack" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout


def test_help_needs_no_repository_docs():
    for command in ([], ["solve"], ["eval"], ["explain"], ["models"], ["specs", "show"]):
        out = invoke(*command, "--help").stdout
        assert "docs/" not in out and "source repository" not in out, command
    solve_help = invoke("solve", "--help").stdout
    for written in ("metrics.csv", "summary.json", "adversarial.npz", "png/", "figures/",
                    "spec.toml", "provenance.json", "batches/", "nonfinite", ".pt2"):
        assert written in solve_help, written


# -- ranges of the shared options ---------------------------------------------------------------
@pytest.mark.parametrize("option, value, expected", [
    ("--threads", "100000", "--threads 100000: expected an integer from 0 to 1024"),
    ("--threads", "99999999999999999999", "from 0 to 1024"),
    ("--threads", "-1", "from 0 to 1024"),
    ("--seed", "99999999999999999999", "--seed 99999999999999999999: expected an integer from "
                                       "0 to 18446744073709551615"),
    ("--seed", "-1", "from 0 to 18446744073709551615"),
    ("--std", "0", "--std '0': expected positive finite numbers"),
    ("--std", "inf", "--std 'inf': expected positive finite numbers"),
    ("--std", "0.5,nan,0.5", "expected positive finite numbers"),
    ("--mean", "nan", "--mean 'nan': expected finite numbers"),
    ("--mean", "0,-inf,0", "--mean '0,-inf,0': expected finite numbers"),
])
@pytest.mark.parametrize("command", ["solve", "eval", "explain"])
def test_out_of_range_options_are_one_line_naming_the_range(tmp_path, command, option, value,
                                                            expected):
    args = {"solve": ["solve", "--spec", "cw-l2"], "eval": ["eval", "--attacks", "fgm"],
            "explain": ["explain", "--attacks", "cw-l2"]}[command]
    r = invoke(*args, "--model", "mnist-cw", "--data", "mnist-test20", "-q",
               "--out", tmp_path / "run", option, value)
    assert_user_error(r, expected)
    assert not (tmp_path / "run").exists()


def test_the_largest_seed_runs(tmp_path):
    r = solve(tmp_path / "run", "--seed", str(2 ** 64 - 1))
    assert r.exit_code == 0, r.output
    assert read_json(tmp_path / "run" / PROVENANCE)["options"]["seed"] == 2 ** 64 - 1


# -- a copied spec runs beside its original -------------------------------------------------------
def test_an_edited_copy_of_a_builtin_runs_beside_it_labelled_by_its_file(tmp_path):
    copy = tmp_path / "my.toml"
    shown = invoke("specs", "show", "cw-l2").stdout
    copy.write_text(shown.replace("kappa = 0.0", "kappa = 1.0", 1))
    assert copy.read_text() != shown
    out = tmp_path / "eval"
    r = invoke("eval", *EVAL, "-n", 1, "--attacks", f"cw-l2,{copy}", "--out", out)
    assert r.exit_code == 0, r.output
    assert (out / "cw-l2" / "spec.toml").is_file() and (out / "my" / "spec.toml").is_file()
    assert "kappa = 1.0" in (out / "my" / "spec.toml").read_text()
    assert "kappa = 0.0" in (out / "cw-l2" / "spec.toml").read_text()
    summary = read_json(out / "summary.json")
    assert summary["origins"] == {"cw-l2": "builtin:cw-l2", "my": str(copy)}
    assert {row["attack"] for row in summary["rows"]} == {"cw-l2", "my"}
    table = (out / "table.md").read_text()
    assert "| my |" in table and f"Specs read from files: my: {copy}" in table
    assert f"my: {copy}" in r.stdout
    # alone it keeps the same label (a built-in's name is never a file's)
    r = invoke("explain", "--attacks", str(copy), "--model", "mnist-cw", "--data",
               "mnist-test20", "-n", 1, "--figures", 0, "--maps", "asm", "--threads", 1, "-q",
               *TINY, "--out", tmp_path / "explain")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "explain" / "attacks" / "my" / "spec.toml").is_file()


def test_two_files_with_one_label_are_refused(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "my.toml").write_text(invoke("specs", "show", "cw-l2").stdout)
    r = invoke("eval", *EVAL, "--attacks", f"{tmp_path}/a/my.toml,{tmp_path}/b/my.toml",
               "--out", tmp_path / "run")
    assert_user_error(r, "would both be labelled 'my'", "rename one")


@pytest.mark.parametrize("name", TOP_FILES)
def test_eval_refuses_an_attack_named_like_its_own_files(tmp_path, name):
    spec = tmp_path / "evil.toml"
    spec.write_text(invoke("specs", "show", "cw-l2").stdout.replace('name = "cw-l2"',
                                                                    f'name = "{name}"'))
    r = invoke("eval", *EVAL, "--attacks", spec, "--out", tmp_path / "run")
    assert_user_error(r, f"--attacks {spec}", repr(name), "names a file of the run's own")
    assert not (tmp_path / "run").exists()


# -- the closing line ----------------------------------------------------------------------------
def test_the_closing_line_lists_every_file_and_folder_written(tmp_path):
    out = tmp_path / "run"
    r = solve(out, "--figures", 1, "--grid")
    assert r.exit_code == 0, r.output
    line = next(x for x in r.stdout.splitlines() if x.startswith("wrote "))
    listed = set(line.split(": ", 1)[1].split())
    on_disk = {p.name + ("/" if p.is_dir() else "") for p in out.iterdir()
               if not p.name.startswith(".")}
    assert listed == on_disk and {"png/", "batches/", "figures/"} <= listed


# -- runs that do not finish ----------------------------------------------------------------------
FAILING = """
import sys
import torch
from attacks.models import load_model

class Failing(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net, self.calls = load_model("mnist-cw"), 0

    def forward(self, x):
        self.calls += 1
        if self.calls > 3:  # the clean check passes; the attack fails
            {fail}
        return self.net(x)

def make():
    return Failing()
"""


@pytest.mark.parametrize("module, fail, named, recorded", [
    ("raising_net", "raise ArithmeticError('the model broke')",
     "ArithmeticError: the model broke", "ArithmeticError: the model broke"),
    ("exiting_net", "sys.exit(3)", "SystemExit(3)", "SystemExit: 3"),
])
def test_a_model_failing_mid_attack_is_one_line_and_recorded(tmp_path, monkeypatch, module,
                                                            fail, named, recorded):
    (tmp_path / f"{module}.py").write_text(FAILING.format(fail=fail))
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "run"
    args = ["solve", "--spec", "cw-l2", "--model", f"{module}:make", "--data", "mnist-test20",
            "-n", 2, *TINY, "--threads", 1, "-q", "--figures", 0, "--out", out]
    r = invoke(*args)
    assert r.exit_code == 1, r.output
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the run failed: ") and \
        named in lines[0] and "--debug" in lines[0], r.stderr
    assert "Traceback" not in r.output
    prov = read_json(out / PROVENANCE)
    assert prov["status"] == "failed" and prov["history"][-1]["error"] == recorded
    assert not (out / LOCK).exists()
    sys.modules.pop(module, None)
    r = invoke(*args, "--debug")  # the same run again: the traceback, then the line
    assert r.exit_code == 1 and "Traceback" in r.stderr and named in r.stderr


def test_sigterm_is_an_interruption(tmp_path, monkeypatch):
    import attacks.runs.runner
    real = attacks.runs.runner.run_batch
    calls = []

    def terminated_in_the_second_batch(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*a, **kw)

    monkeypatch.setattr(attacks.runs.runner, "run_batch", terminated_in_the_second_batch)
    before = signal.getsignal(signal.SIGTERM)
    out = tmp_path / "run"
    r = solve(out, "--batch-size", 1)
    assert r.exit_code == 130, r.output
    assert r.stderr.splitlines() == [
        f"interrupted: 1 of 2 batches saved in {out}; run the same command again to resume"]
    assert read_json(out / PROVENANCE)["status"] == "interrupted"
    assert not (out / LOCK).exists()
    assert signal.getsignal(signal.SIGTERM) == before  # given back after the command
    monkeypatch.setattr(attacks.runs.runner, "run_batch", real)
    assert solve(out, "--batch-size", 1).exit_code == 0
    assert json.loads((out / PROVENANCE).read_text())["history"][-1]["batches_resumed"] == 1


def test_a_model_failing_mid_eval_marks_the_eval_failed_and_unlocks(tmp_path, monkeypatch):
    (tmp_path / "raising_eval_net.py").write_text(
        FAILING.format(fail="raise ArithmeticError('the model broke')"))
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "eval"
    r = invoke("eval", "--attacks", "cw-l2", "--model", "raising_eval_net:make", "--data",
               "mnist-test20", "-n", 1, "--cases", "average", "--threads", 1, "-q", *TINY,
               "--out", out)
    assert r.exit_code == 1 and "ArithmeticError: the model broke" in r.stderr, r.output
    for run in (out, out / "cw-l2"):
        assert read_json(run / PROVENANCE)["status"] == "failed"
        assert not (run / LOCK).exists()


def test_a_target_beyond_any_class_index_is_one_line():
    from cli.errors import UserError
    from cli.setup import parse_targets
    import torch
    with pytest.raises(UserError, match="--targets: a class index of 23 digits"):
        parse_targets("99999999999999999999999", torch.zeros(3, dtype=torch.long))
