"""Hostile and careless use: a run never writes or deletes outside its own files, and a broken
model never looks robust. File-safety cases keep a sentinel outside (or inside, not ours) the
run directory and assert it stays byte-identical."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import attacks.store
from test_cli_helpers import FAST, TINY, invoke, read_json
from test_cli_helpers import assert_user_error as one_line_error

SOLVE = ["solve", "--spec", "cw-l2", *FAST, *TINY, "--figures", "1", "-n", "1"]


def solve(out, *extra):
    return invoke(*SOLVE, "--out", out, *extra)


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` (relative name -> SHA-256 of its bytes)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def sentinel(tmp_path):
    """A user's folder beside the run: every test ends with it unchanged."""
    folder = tmp_path / "users-own"
    (folder / "png").mkdir(parents=True)
    (folder / "figures").mkdir()
    for name in ("summary.json", "metrics.csv", "spec.toml", "png/holiday.png",
                 "figures/example-0000.png", "provenance.json"):
        (folder / name).write_bytes(b"the user's own " + name.encode())
    before = snapshot(folder)
    yield folder
    assert snapshot(folder) == before


def evil_spec(tmp_path, name: str) -> Path:
    text = invoke("specs", "show", "cw-l2").stdout.replace('name = "cw-l2"', f"name = {name}")
    p = tmp_path / "evil.toml"
    p.write_text(text)
    return p


# -- names that would become paths ------------------------------------------------------------
@pytest.mark.parametrize("name", ['"/abs/dir"', '"../up"', '".."', '"."', '""', '"a/b"',
                                  '"cw [kappa=1]"', '"[/]"'])
def test_spec_names_that_are_not_safe_slugs_are_refused(tmp_path, sentinel, name):
    spec = evil_spec(tmp_path, name.replace("/abs/dir", str(sentinel)))
    for command in (["explain", "--attacks", spec, "--figures", 0, "--maps", "asm"],
                    ["eval", "--attacks", spec, "--cases", "average"]):
        r = invoke(*command, "--model", "mnist-cw", "--data", "mnist-test20", "-n", 1,
                   "--restart", "--out", tmp_path / "run", *TINY, "-q")
        one_line_error(r, "name: expected a short name")
    assert not (tmp_path / "run").exists()


# -- --out: empty, unrelated, a file, unwritable -----------------------------------------------
def test_empty_out_is_refused_and_the_current_directory_untouched(sentinel, monkeypatch):
    monkeypatch.chdir(sentinel)
    for extra in ([], ["--restart"]):
        one_line_error(invoke(*SOLVE, "--out", "", *extra), "--out ''", "expected a directory")


@pytest.mark.parametrize("command", ["solve", "eval", "explain"])
def test_an_unrelated_directory_is_refused_even_with_restart(sentinel, command):
    args = {"solve": SOLVE,
            "eval": ["eval", "--attacks", "cw-l2", "--cases", "average", "--model", "mnist-cw",
                     "--data", "mnist-test20", "-n", "1", *TINY, "-q"],
            "explain": ["explain", "--attacks", "cw-l2", "--model", "mnist-cw", "--data",
                        "mnist-test20", "-n", "1", "--figures", "0", *TINY, "-q"]}[command]
    for extra in ([], ["--restart"]):
        one_line_error(invoke(*args, "--out", sentinel, *extra), "not empty",
                       "choose a new or empty directory")


def test_a_run_of_another_kind_is_refused(tmp_path):
    assert solve(tmp_path / "run").exit_code == 0
    r = invoke("eval", "--attacks", "cw-l2", "--cases", "average", "--model", "mnist-cw",
               "--data", "mnist-test20", "-n", "1", *TINY, "-q", "--out", tmp_path / "run")
    one_line_error(r, "is an admm-attack run directory, not eval")


@pytest.mark.parametrize("where", ["/proc/no-such-dir/x", "/sys/x"])
def test_an_out_that_cannot_be_created_is_one_line(where):
    one_line_error(invoke(*SOLVE, "--out", where), "--out", where)


def test_restart_deletes_only_the_runs_own_files(tmp_path):
    out = tmp_path / "run"
    assert solve(out, "--figures", "1").exit_code == 0
    theirs = {"png/mine.png": b"user", "figures/example-9999.png": b"user",
              "notes.txt": b"user", "batches/batch-99999.npz": b"user"}
    for name, data in theirs.items():
        (out / name).write_bytes(data)
    ours = set(read_json(out / ".admm-attack-run.json")["files"])
    assert {"metrics.csv", "summary.json", "figures/example-0000.png"} <= ours
    assert ours.isdisjoint(theirs)
    r = solve(out, "--restart", "--figures", "0")
    assert r.exit_code == 0, r.output
    for name, data in theirs.items():
        assert (out / name).read_bytes() == data, name
    assert not (out / "figures" / "example-0000.png").exists()   # ours, not redrawn


def test_a_symbolic_link_out_of_the_run_is_not_followed(tmp_path, sentinel):
    out = tmp_path / "run"
    assert solve(out).exit_code == 0
    for p in (out / "png").iterdir():
        p.unlink()
    (out / "png").rmdir()
    (out / "png").symlink_to(sentinel / "png")
    one_line_error(solve(out, "--restart"), "leads outside --out")


# -- concurrent runs and foreign batches --------------------------------------------------------
def test_a_live_lock_is_refused_naming_its_holder(tmp_path):
    out = tmp_path / "run"
    assert solve(out).exit_code == 0
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / ".admm-attack.lock").write_text(
            f'{{"pid": {holder.pid}, "host": "{os.uname().nodename}"}}')
        one_line_error(solve(out), "in use by process", str(holder.pid))
    finally:
        holder.kill()
        holder.wait()
    # its owner is gone now: the stale lock is taken over and the run resumes
    r = solve(out)
    assert r.exit_code == 0, r.output
    assert not (out / ".admm-attack.lock").exists()


def test_a_batch_file_of_another_run_is_refused_not_merged(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert solve(a, "--seed", "1").exit_code == 0
    assert solve(b, "--seed", "2", "--targets", "3").exit_code == 0
    (b / "batches" / "batch-00000.npz").write_bytes((a / "batches" / "batch-00000.npz")
                                                    .read_bytes())
    one_line_error(invoke(*SOLVE, "--seed", "2", "--targets", "3", "--out", b),
                   "a batch file of another run")


# -- the disk ------------------------------------------------------------------------------------
def test_a_full_disk_is_one_line_and_the_rerun_completes(tmp_path, monkeypatch):
    out = tmp_path / "run"
    real = attacks.store.atomic_write

    def full(path, data):
        if path.name == "metrics.csv":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, data)

    monkeypatch.setattr(attacks.store, "atomic_write", full)
    one_line_error(solve(out), "No space left on device", "run the same command again")
    assert any((out / "batches").glob("batch-*.npz"))       # the attack's work is kept
    monkeypatch.setattr(attacks.store, "atomic_write", real)
    r = solve(out)
    assert r.exit_code == 0 and "batches_resumed" in r.stdout, r.output
    assert not (out / ".admm-attack.lock").exists()


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_outputs_honour_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        assert solve(tmp_path / "run").exit_code == 0
    finally:
        os.umask(old)
    for name in ("metrics.csv", "summary.json", "adversarial.npz", "batches/batch-00000.npz"):
        mode = stat.S_IMODE((tmp_path / "run" / name).stat().st_mode)
        assert mode == 0o666 & ~mask, (name, oct(mode))


# -- broken models -------------------------------------------------------------------------------
BROKEN = '''
import torch
from torch import nn


class Broken(nn.Module):
    def __init__(self, fill=None, softmax=False):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
        self.fill, self.softmax = fill, softmax

    def forward(self, x):
        out = self.net(x)
        if self.fill is not None:
            out = torch.full_like(out, self.fill)
        return out.softmax(1) if self.softmax else out


def nan():
    return Broken(float("nan"))


def inf():
    return Broken(float("inf"))


def probabilities():
    return Broken(softmax=True)


def raises():
    raise RuntimeError("no weights here")


def exits():
    raise SystemExit(0)
'''


@pytest.fixture
def broken_models(tmp_path, monkeypatch):
    (tmp_path / "broken_nets.py").write_text(BROKEN)
    monkeypatch.syspath_prepend(str(tmp_path))


@pytest.mark.parametrize("factory", ["nan", "inf"])
def test_a_model_with_non_finite_logits_is_an_error_not_robust(tmp_path, broken_models,
                                                                factory):
    r = invoke(*SOLVE, "--model", f"broken_nets:{factory}", "--out", tmp_path / "run")
    one_line_error(r, f"--model broken_nets:{factory}", "non-finite outputs")
    assert not (tmp_path / "run" / "summary.json").exists()


def test_probabilities_are_warned_about(tmp_path, broken_models):
    r = invoke(*SOLVE, "--model", "broken_nets:probabilities", "--out", tmp_path / "run")
    assert r.exit_code == 0, r.output
    assert "warning:" in r.stderr and "probabilities" in r.stderr


@pytest.mark.parametrize("factory, fragment", [("raises", "raised RuntimeError: no weights"),
                                               ("exits", "exited (SystemExit 0)")])
def test_a_factory_that_fails_is_one_line(tmp_path, broken_models, factory, fragment):
    one_line_error(invoke(*SOLVE, "--model", f"broken_nets:{factory}", "--out",
                          tmp_path / "run"), fragment)


def test_sys_exit_as_a_model_is_one_line(tmp_path):
    one_line_error(invoke(*SOLVE, "--model", "sys:exit", "--out", tmp_path / "run"),
                   "--model sys:exit")


# -- specs that are not files --------------------------------------------------------------------
@pytest.mark.parametrize("path, fragment", [("/dev/zero", "not a regular file"),
                                            ("/", "not a regular file")])
def test_a_spec_that_is_not_a_file_is_refused_quickly(tmp_path, path, fragment):
    one_line_error(invoke("solve", "--spec", path, *FAST, "--out", tmp_path / "run"), fragment)


def test_a_huge_spec_file_is_refused(tmp_path):
    big = tmp_path / "big.toml"
    big.write_bytes(b"# " + b"x" * (2 << 20) + b"\n")
    one_line_error(invoke("solve", "--spec", big, *FAST, "--out", tmp_path / "run"),
                   "not a spec file")


def test_rich_markup_in_descriptions_is_printed_as_written(tmp_path):
    text = invoke("specs", "show", "cw-l2").stdout.replace(
        'description = "', 'description = "[bold]x[/] [/] ')
    (tmp_path / "m.toml").write_text(text)
    r = invoke("solve", "--spec", tmp_path / "m.toml", *FAST, *TINY, "-n", 1,
               "--out", tmp_path / "run")
    assert r.exit_code == 0, r.output


def test_the_callers_numbers_stay_numbers(tmp_path):
    """A seeded run into a fresh directory after all this is still byte-identical."""
    assert solve(tmp_path / "a").exit_code == 0
    assert solve(tmp_path / "b").exit_code == 0
    for name in ("metrics.csv", "adversarial.npz"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    with np.load(tmp_path / "a" / "batches" / "batch-00000.npz") as z:
        assert "run_fingerprint" in z.files


# -- images --------------------------------------------------------------------------------------
def png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims ``width`` x ``height`` grey pixels (no pixel data)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def image_folder(tmp_path, files: dict, labels: str) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for name, write in files.items():
        write(folder / name)
    (folder / "labels.csv").write_text(labels)
    return folder


def test_16_bit_grey_pngs_keep_their_depth(tmp_path):
    from PIL import Image

    from attacks.data.folder import load_image_folder
    pixels = (np.arange(28 * 28).reshape(28, 28) * 83).astype(np.uint16)
    folder = image_folder(tmp_path, {"a.png": lambda p: Image.fromarray(pixels).save(p)},
                          "a.png,3\n")
    x, y = load_image_folder(folder)
    np.testing.assert_allclose(x[0, 0].numpy(), pixels / 65535.0, rtol=1e-6)
    assert len(np.unique(x.numpy())) > 2                      # not binarised
    r = invoke("solve", "--spec", "cw-l2", "--model", "mnist-cw", "--data", folder, *TINY,
               "--threads", "1", "-q", "--targets", "untargeted", "--figures", "0",
               "--out", tmp_path / "run")
    assert r.exit_code == 0, r.output
    assert read_json(tmp_path / "run" / "provenance.json")["resume_key"]["grid"] is False


def test_an_oversized_image_is_refused_before_decoding(tmp_path):
    folder = image_folder(tmp_path, {"big.png": lambda p: png_header_only(p, 20000, 20000)},
                          "big.png,1\n")
    r = invoke(*SOLVE, "--data", folder, "--out", tmp_path / "run")
    one_line_error(r, "big.png", "too large")
    png_header_only(folder / "big.png", 9000, 9000)   # below Pillow's own limit, above ours
    one_line_error(invoke(*SOLVE, "--data", folder, "--out", tmp_path / "run"),
                   "9000x9000 pixels: too large for this loader")


def test_a_label_that_is_no_class_index_is_one_line(tmp_path):
    from PIL import Image
    folder = image_folder(
        tmp_path, {"a.png": lambda p: Image.fromarray(np.zeros((28, 28), np.uint8)).save(p)},
        "a.png,99999999999999999999\n")
    one_line_error(invoke(*SOLVE, "--data", folder, "--out", tmp_path / "run"),
                   "is not a class index")


def test_missing_standard_files_are_explained_for_the_command_line(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMM_ATTACK_CACHE", str(tmp_path / "empty-cache"))
    r = invoke(*SOLVE, "--data", "mnist-test", "--out", tmp_path / "run")
    one_line_error(r, "--data mnist-test", "as --data DIR", "download=True")
    assert "root=" not in r.stderr


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.trace/save in torch 2.13
def test_mean_and_std_normalise_for_the_model_like_python(tmp_path):
    """--mean/--std wrap the model as normalize=(mean, std) does; the results equal Python's."""
    import torch
    from torch import nn

    from attacks import Attack
    from attacks.data import load_dataset
    from attacks.models import load_model
    from attacks.result import AttackResult
    from attacks.catalogue import load_spec

    class ExpectsNormalised(nn.Module):  # a user's model taking (x - 0.5) / 0.25
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, z):
            return self.net(z * 0.25 + 0.5)

    x, y = load_dataset("mnist-test20", 2)
    scripted = tmp_path / "net.pt"
    with torch.no_grad():
        traced = torch.jit.trace(ExpectsNormalised(load_model("mnist-cw")).eval(), x[:1])
    torch.jit.save(traced, str(scripted))
    r = invoke("solve", "--spec", "cw-l2", "--model", scripted, "--mean", "0.5", "--std",
               "0.25", "--data", "mnist-test20", "-n", 2, *TINY, "--threads", 1, "-q",
               "--figures", 0, "--out", tmp_path / "cli")
    assert r.exit_code == 0, r.output
    assert read_json(tmp_path / "cli" / "provenance.json")["resume_key"]["normalize"] == [
        [0.5], [0.25]]
    spec = load_spec("cw-l2", [a for a in TINY if a != "--set"]).spec
    python = Attack(torch.jit.load(str(scripted)), spec, normalize=(0.5, 0.25))(x, y)
    assert AttackResult.load(tmp_path / "cli").equals(python)
    one_line_error(invoke("solve", "--spec", "cw-l2", "--model", scripted, "--std", "0,x",
                          "--data", "mnist-test20", "--out", tmp_path / "bad"), "--std")


def test_the_callers_model_keeps_its_mode_and_float64_images_are_cast():
    import torch

    from attacks import CWL2
    from attacks.data import load_dataset
    from attacks.models import load_model
    from attacks.spec import SearchSpec
    model = load_model("mnist-cw").train()
    next(iter(model.net.children())).eval()  # mixed modes, as a caller may hold a model
    modes = [m.training for m in model.modules()]
    x, y = load_dataset("mnist-test20", 2)
    result = CWL2(model, search=SearchSpec(iterations=10))(x.double(), y)
    assert [m.training for m in model.modules()] == modes
    assert result.adversarial.dtype == torch.float32


def test_the_api_refuses_a_model_with_non_finite_logits():
    import torch
    from torch import nn

    from attacks import StrAttack
    from attacks.checks import ModelOutputError

    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return torch.full((x.shape[0], 10), float("nan")) + self.w

    with pytest.raises(ModelOutputError, match="non-finite outputs"):
        StrAttack(Broken())(torch.rand(2, 1, 28, 28), torch.tensor([1, 2]))


# -- values that would silently break an attack --------------------------------------------------
@pytest.mark.parametrize("kwargs, fragment", [
    ({"gamma": -1}, "gamma .*: expected a finite number >= 0"),
    ({"gamma": float("nan")}, "gamma .*: expected a finite number >= 0"),
    ({"tau": float("inf")}, "tau .*: expected a finite number >= 0")])
def test_strattack_weights_are_checked_not_dropped(kwargs, fragment):
    from attacks import StrAttack
    from attacks.models import load_model
    with pytest.raises(ValueError, match=fragment):
        StrAttack(load_model("mnist-cw"), **kwargs)


@pytest.mark.parametrize("setting, fragment", [
    ("search.binary.growth=0.5", "search.binary.growth: expected a number > 1"),
    ("search.binary.growth=1.0", "search.binary.growth: expected a number > 1"),
    ("search.binary.steps=100000000000000000000000", "search.binary.steps: expected at most 1,000"),
    ("search.iterations=1e23", "search.iterations: expected an integer"),
    ("refine.iterations=99999999999", "refine.iterations: expected at most 1,000,000")])
def test_search_settings_that_never_end_or_never_succeed_are_refused(tmp_path, setting,
                                                                      fragment):
    one_line_error(invoke("solve", "--spec", "strattack", *FAST, "--set", setting,
                          "--out", tmp_path / "run"), fragment)


def test_logits_that_turn_non_finite_during_the_attack_are_flagged_not_failed(tmp_path,
                                                                              monkeypatch):
    """A model that is fine on the clean images and returns NaN once they are perturbed: its
    examples are reported as nonfinite (a broken model), never as 'failed' (robust)."""
    (tmp_path / "fragile_nets.py").write_text(
        "import torch\nfrom attacks.models import load_model\n"
        "class Fragile(torch.nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n"
        "        self.net = load_model('mnist-cw')\n"
        "    def forward(self, x):\n"
        "        on_grid = ((x * 255 - (x * 255).round()).abs() < 1e-4).flatten(1).all(1)\n"
        "        out = self.net(x)\n"
        "        return torch.where(on_grid[:, None], out, torch.full_like(out, float('nan')))\n"
        "def make():\n    return Fragile()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    r = invoke("solve", "--spec", "cw-l2", "--model", "fragile_nets:make", "--data",
               "mnist-test20", "-n", 2, *TINY, "--threads", 1, "-q", "--figures", 0,
               "--no-grid", "--out", tmp_path / "run")
    # no example could be judged: the run's files are written, and it exits with one line
    one_line_error(r, "none of the 2 examples could be judged: nonfinite 2")
    summary = read_json(tmp_path / "run" / "summary.json")
    assert summary["nonfinite"] == 2 and summary["failures"] == 0 and summary["successes"] == 0
    assert "NaN or infinite logits" in r.stderr
    rows = [row.split(",") for row in
            (tmp_path / "run" / "metrics.csv").read_text().splitlines()]
    at = {name: i for i, name in enumerate(rows[0])}
    assert rows[0][-3:] == ["nonfinite", "status", "reason"]
    assert all(row[at["nonfinite"]] == "true" and row[at["status"]] == "not judged"
               and "nonfinite" in row[at["reason"]].split("+") for row in rows[1:])
