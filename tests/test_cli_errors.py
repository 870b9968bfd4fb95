"""User errors exit with status 2 and one line on stderr (no traceback); listings and help."""

from __future__ import annotations

import pytest
import torch

from test_cli_helpers import FAST, TINY, assert_user_error, invoke

GOOD = {"--spec": "strattack", "--model": "mnist-cw", "--data": "mnist-test20", "-n": "2"}


def solve_with(tmp_path, *flags, **changes):
    opts = {**GOOD, "--out": str(tmp_path / "run"), **changes}
    args = [x for k, v in opts.items() for x in (k, v)]
    return invoke("solve", *args, *flags, "--threads", "1", "-q")


@pytest.fixture(autouse=True)
def _restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("changes, fragments", [
    # spec: missing file, unknown name, invalid TOML, bad key, bad --set
    ({"--spec": "missing.toml"}, ["spec file not found: missing.toml"]),
    ({"--spec": "strattak"}, ["unknown spec 'strattak'", "strattack"]),
    ({"--set": "solver.rho=0"}, ["built-in spec strattack (after --set)", "solver.rho",
                                 "positive", "0"]),
    ({"--set": "search.nope=1"}, ["--set search.nope", "unknown key 'nope'"]),
    ({"--set": "terms.groups.groups.size=40"}, ["terms.groups.groups", "group size 40",
                                                "larger than the image"]),
    # model
    ({"--model": "resnet-9000"}, ["--model resnet-9000", "zoo name", "mnist-cw"]),
    ({"--model": "nowhere/net.pt"}, ["--model nowhere/net.pt", "no such model file"]),
    ({"--model": "no_such_pkg.mod:make"}, ["cannot import module 'no_such_pkg.mod'"]),
    ({"--model": "cifar10-cnn"}, ["expects images of shape (3, 32, 32)", "(1, 28, 28)"]),
    ({"--weights": "nowhere.pt"}, ["--model mnist-cw", "weights file not found"]),
    # data
    ({"--data": "mnist-test21"}, ["--data mnist-test21", "neither a known dataset"]),
    ({"--data": "no/such/dir"}, ["--data no/such/dir"]),
    ({"-n": "0"}, ["-n 0", "positive"]),
    # targets
    ({"--targets": "some"}, ["--targets 'some'", "untargeted, random, all"]),
    ({"--targets": "1,2,3"}, ["3 targets for 2 images"]),
    ({"--targets": "10"}, ["--targets 10", "[0, 10)"]),
    ({"--targets": "7"}, ["equals the true label 7"]),
    # device and the rest
    ({"--device": "tpu"}, ["--device 'tpu'", "auto, cpu, cuda"]),
    ({"--batch-size": "0"}, ["--batch-size 0", "positive"]),
])
def test_solve_user_errors(tmp_path, changes, fragments):
    r = solve_with(tmp_path, **changes)
    assert_user_error(r, *fragments)
    assert not (tmp_path / "run" / "batches").exists()  # nothing was started


def test_cuda_requested_but_unavailable(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert_user_error(solve_with(tmp_path, **{"--device": "cuda"}), "--device cuda",
                      "CUDA is not available", "--device cpu")


def test_bad_spec_file_names_file_and_key(tmp_path):
    path = tmp_path / "typo.toml"
    path.write_text('name = "x"\n[[terms]]\nkind = "l1"\n[terms.params]\nweight = "big"\n')
    assert_user_error(solve_with(tmp_path, **{"--spec": str(path)}), str(path),
                      "terms.0.params.weight", "expected a number", "'big' (a string)")
    path.write_text("name = \n")
    assert_user_error(solve_with(tmp_path, **{"--spec": str(path)}), str(path),
                      "not valid TOML", "line 1")


def test_out_is_a_file(tmp_path):
    (tmp_path / "run").write_text("not a directory")
    assert_user_error(solve_with(tmp_path), "exists and is not a directory")
    assert_user_error(solve_with(tmp_path, "--restart"), "exists and is not a directory")


def owned_run_dir(path, *files):
    """An admm-attack run directory whose manifest lists ``files``, as a run leaves it."""
    import json
    path.mkdir(parents=True)
    (path / ".admm-attack-run.json").write_text(json.dumps({"kind": "run",
                                                            "files": list(files)}))


def test_unreadable_provenance_is_refused(tmp_path):
    owned_run_dir(tmp_path / "run")
    (tmp_path / "run" / "provenance.json").write_text("{ broken")
    assert_user_error(solve_with(tmp_path), "cannot read provenance.json", "--restart")


def test_batches_without_provenance_are_refused(tmp_path):
    owned_run_dir(tmp_path / "run", "batches/batch-00000.npz")
    (tmp_path / "run" / "batches").mkdir(parents=True)
    (tmp_path / "run" / "batches" / "batch-00000.npz").write_bytes(b"")
    assert_user_error(solve_with(tmp_path), "batch files but no provenance.json")


def test_specs_show_unknown_name():
    assert_user_error(invoke("specs", "show", "nope"), "unknown spec 'nope'")


def test_missing_required_option_is_a_usage_error(tmp_path):
    r = invoke("solve", "--model", "mnist-cw", "--data", "mnist-test20", "--out",
               str(tmp_path))
    assert r.exit_code == 2 and "--spec" in r.output and "Traceback" not in r.output


# -- listings and help -----------------------------------------------------------------------
def test_models_table():
    r = invoke("models")
    assert r.exit_code == 0
    for s in ("mnist-cw", "cifar10-cnn", "cifar10-cw", "1×28×28", "98.2% mnist-heldout"):
        assert s in r.stdout
    long = invoke("models", "--long")
    assert long.exit_code == 0 and "licence:" in long.stdout and "MIT" in long.stdout


def test_datasets_table():
    r = invoke("datasets")
    assert r.exit_code == 0
    for s in ("mnist-test20", "cifar10-test20", "mnist-heldout", "1,000", "3×32×32"):
        assert s in r.stdout
    assert "first 20 MNIST test images" in invoke("datasets", "-l").stdout


@pytest.mark.parametrize("command", [[], ["solve"], ["specs"], ["specs", "list"],
                                     ["specs", "show"], ["specs", "check"], ["models"],
                                     ["datasets"]])
def test_help_has_examples(command):
    r = invoke(*command, "--help")
    assert r.exit_code == 0
    assert "Example" in r.stdout and "admm-attack" in r.stdout


def test_fast_args_are_valid(tmp_path):
    """The option set shared by the CLI tests resolves (sanity of the helpers)."""
    r = invoke("solve", "--spec", "cw-l2", *FAST, *TINY, "-n", 1, "--figures", 0,
               "--out", tmp_path / "ok")
    assert r.exit_code == 0, r.output


def test_grid_needs_8_bit_images(tmp_path, monkeypatch):
    import cli.setup
    from attacks.data import load_dataset

    x, y = load_dataset("mnist-test20", 2)
    monkeypatch.setattr(cli.setup, "resolve_data", lambda name, n: ((x * 0.999), y))
    assert_user_error(solve_with(tmp_path, "--grid"), "--grid needs 8-bit images")


def test_console_script_entry_point(tmp_path):
    """pyproject's ``admm-attack = "cli.main:app"`` resolves and runs as a program."""
    import os
    import subprocess
    import sys
    import tomllib

    from test_cli_helpers import ROOT

    target = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"][
        "admm-attack"]
    module, attr = target.split(":")
    code = (f"import sys; sys.argv[0] = 'admm-attack'; import {module}; "
            f"sys.exit({module}.{attr}())")
    done = subprocess.run([sys.executable, "-c", code, "--help"], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Usage: admm-attack" in done.stdout and "solve" in done.stdout
