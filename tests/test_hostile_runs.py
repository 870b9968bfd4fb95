"""Hostile and careless use of run directories: a broken marker, lock or batch file is one line
(never a hang, never a traceback), a run continues what only it could have left, and a batch
is merged only when its content is what was written."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
from pathlib import Path

import numpy as np
import pytest

from attacks.errors import UserError
from attacks.result import AttackResult
from attacks.store import CHECKSUM, LOCK, MARKER, RunDir, content_checksum
from test_cli_helpers import FAST, TINY, invoke, read_json
from test_cli_helpers import assert_user_error as one_line_error

SOLVE = ["solve", "--spec", "cw-l2", *FAST, *TINY, "--figures", "0", "-n", "1"]


def solve(out, *extra):
    return invoke(*SOLVE, "--out", out, *extra)


@pytest.fixture
def deadline():
    """Fail (instead of hanging the suite) when the test blocks for a minute."""
    def expired(signum, frame):
        raise TimeoutError("blocked: a FIFO was opened?")
    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture
def finished(tmp_path):
    out = tmp_path / "run"
    r = solve(out)
    assert r.exit_code == 0, r.output
    return out


def read_batch(path: Path) -> dict:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def write_batch(path: Path, arrays: dict) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    path.write_bytes(buf.getvalue())


# -- the marker ----------------------------------------------------------------------------------
@pytest.mark.parametrize("entry", [5, None, ["a"], {"a": 1}, "", "a\0b", "/etc/passwd",
                                   "../outside", "png/../../x"])
def test_a_marker_entry_that_is_no_file_name_of_the_run_is_one_line(tmp_path, entry):
    out = tmp_path / "run"
    out.mkdir()
    (out / MARKER).write_text(json.dumps({"kind": "run", "files": ["metrics.csv", entry]}))
    for extra in ([], ["--restart"]):
        one_line_error(solve(out, *extra), MARKER, "not a file name inside the directory")
    assert not (out / LOCK).exists()


@pytest.mark.parametrize("what", ["fifo", "directory", "link"])
def test_a_marker_that_is_not_a_regular_file_is_refused_without_blocking(tmp_path, deadline,
                                                                          what):
    out = tmp_path / "run"
    out.mkdir()
    {"fifo": lambda p: os.mkfifo(p), "directory": lambda p: p.mkdir(),
     "link": lambda p: p.symlink_to("/dev/zero")}[what](out / MARKER)
    one_line_error(solve(out), f"--out {out}")


def test_a_first_marker_write_killed_midway_is_continued(tmp_path):
    """kill -9 while the very first marker is written leaves exactly its temporary: the
    directory is still ours (and the temporary is removed)."""
    out = tmp_path / "run"
    out.mkdir()
    (out / f".{MARKER}.k9x2ab7q.tmp").write_bytes(b'{"kind": "ru')
    r = solve(out)
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [MARKER]
    # a temporary that is not of that shape, or anything beside it, is a user's folder
    for name in (f".{MARKER}.notes.tmp", "notes.txt"):
        other = tmp_path / name
        other.mkdir()
        (other / f".{MARKER}.k9x2ab7q.tmp").write_bytes(b"")
        (other / name).write_bytes(b"the user's")
        one_line_error(solve(other), "not empty and not an admm-attack")
        assert (other / name).read_bytes() == b"the user's"


# -- the lock ------------------------------------------------------------------------------------
@pytest.mark.parametrize("pid", [99999999999999999999, 2**31, 0, -1, True])
def test_a_lock_naming_no_possible_process_is_stale(finished, pid):
    (finished / LOCK).write_text(json.dumps({"pid": pid, "host": socket.gethostname()}))
    r = solve(finished)
    assert r.exit_code == 0, r.output
    assert not (finished / LOCK).exists()


def test_a_lock_of_another_host_with_an_overflowing_pid_is_refused(finished):
    (finished / LOCK).write_text('{"pid": 99999999999999999999, "host": "elsewhere"}')
    one_line_error(solve(finished), "in use by process 99999999999999999999 on elsewhere")


@pytest.mark.parametrize("what", ["fifo", "directory", "link"])
def test_a_lock_that_is_not_a_regular_file_is_refused_without_blocking(finished, deadline,
                                                                        what):
    lock = finished / LOCK
    {"fifo": lambda p: os.mkfifo(p), "directory": lambda p: p.mkdir(),
     "link": lambda p: p.symlink_to(finished / "summary.json")}[what](lock)
    one_line_error(solve(finished), "the lock file", "is not a regular file")
    assert lock.exists() or lock.is_symlink()       # not ours to remove


def test_a_refused_restart_releases_its_lock(finished, tmp_path):
    elsewhere = tmp_path / "users-own"
    elsewhere.mkdir()
    for p in (finished / "png").iterdir():
        p.unlink()
    (finished / "png").rmdir()
    (finished / "png").symlink_to(elsewhere)
    one_line_error(solve(finished, "--restart"), "leads outside --out")
    assert not (finished / LOCK).exists()
    (finished / "png").unlink()
    r = solve(finished, "--restart")        # not "in use by process <this one>"
    assert r.exit_code == 0, r.output


# -- temporaries -------------------------------------------------------------------------------
OURS = (f".{MARKER}.a1b2c3d4.tmp", ".metrics.csv.zz_9zz9z.tmp", ".summary.json.0123abcd.tmp",
        "batches/.batch-00000.npz.k9x2ab7q.tmp")
THEIRS = (".summary.json.notes.tmp", ".metrics.csv.tmp", ".metrics.csv.abcdefghi.tmp",
          "batches/.batch-99999.npz.a1b2c3d4.tmp", ".unknown.a1b2c3d4.tmp", "notes.a1b2c3d4.tmp")


@pytest.mark.parametrize("extra", [[], ["--restart"]])
def test_only_the_runs_own_temporaries_are_removed(finished, extra):
    for name in OURS + THEIRS:
        (finished / name).write_bytes(b"half-written" if name in OURS else b"the user's")
    r = solve(finished, *extra)
    assert r.exit_code == 0, r.output
    for name in OURS:
        assert not (finished / name).exists(), name
    for name in THEIRS:
        assert (finished / name).read_bytes() == b"the user's", name


def test_a_failed_run_leaves_temporaries_for_the_next(finished):
    """Only a finished run tidies: a refused one touches nothing."""
    (finished / OURS[1]).write_bytes(b"half-written")
    one_line_error(solve(finished, "--seed", "7"), "holds a different run")
    assert (finished / OURS[1]).exists()


# -- batch checksums --------------------------------------------------------------------------
def test_batches_carry_a_checksum_of_their_content(finished):
    arrays = read_batch(finished / "batches" / "batch-00000.npz")
    stamp = str(arrays.pop(CHECKSUM))
    assert stamp == content_checksum(arrays) and len(stamp) == 64
    arrays["delta"] = arrays["delta"] + 1e-3
    assert content_checksum(arrays) != stamp


@pytest.mark.parametrize("change", ["tampered", "no checksum"])
def test_a_batch_that_cannot_be_verified_is_recomputed_not_merged(finished, change):
    batch = finished / "batches" / "batch-00000.npz"
    metrics = (finished / "metrics.csv").read_bytes()
    arrays = read_batch(batch)
    if change == "tampered":      # same fingerprint and checksum, another content
        arrays["success"] = ~arrays["success"]
        arrays["delta"] = np.zeros_like(arrays["delta"])
    else:                         # as written before the checksums existed
        del arrays[CHECKSUM]
    write_batch(batch, arrays)
    r = solve(finished)
    assert r.exit_code == 0, r.output
    summary = read_json(finished / "summary.json")
    assert summary["batches_resumed"] == 0 and summary["batches_computed"] == 1
    assert (finished / "metrics.csv").read_bytes() == metrics
    assert CHECKSUM in read_batch(batch)


def test_a_batch_without_a_checksum_is_still_loadable(finished):
    batch = finished / "batches" / "batch-00000.npz"
    before = AttackResult.load(finished)
    arrays = read_batch(batch)
    del arrays[CHECKSUM]
    write_batch(batch, arrays)
    assert AttackResult.load(finished).equals(before)


@pytest.mark.parametrize("what", ["fifo", "directory"])
def test_a_batch_that_is_not_a_file_is_recomputed_without_blocking(finished, deadline, what):
    batch = finished / "batches" / "batch-00000.npz"
    batch.unlink()
    os.mkfifo(batch) if what == "fifo" else batch.mkdir()
    with pytest.raises(UserError, match="a run's batches are its own regular files"):
        AttackResult.load(finished)
    if what == "fifo":
        r = solve(finished)
        assert r.exit_code == 0, r.output
        assert batch.is_file()


# -- AttackResult.load -------------------------------------------------------------------------
def test_load_refuses_a_symlinked_batch(finished, tmp_path):
    batch = finished / "batches" / "batch-00000.npz"
    moved = tmp_path / "elsewhere.npz"
    batch.rename(moved)
    batch.symlink_to(moved)
    with pytest.raises(UserError, match="is a symbolic link: a run's batches are its own"):
        AttackResult.load(finished)


@pytest.mark.parametrize("text", ["[1, 2]", '"summary"', "3", "null", "{", "\xff"])
def test_load_refuses_a_summary_that_is_no_json_object(tmp_path, text):
    from attacks.data import load_dataset
    from attacks.models import load_model
    from attacks import CWL2
    from attacks.spec import SearchSpec
    x, y = load_dataset("mnist-test20", 1)
    out = CWL2(load_model("mnist-cw"), search=SearchSpec(iterations=5))(x, y).save(
        tmp_path / "res")
    (out / "summary.json").write_bytes(text.encode("latin-1"))
    with pytest.raises((UserError, FileNotFoundError), match="summary.json"):
        AttackResult.load(out)


def test_load_refuses_a_foreign_batch(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out, seed in ((a, "1"), (b, "2")):
        assert invoke(*SOLVE[:-2], "-n", "2", "--batch-size", "1", "--seed", seed,
                      "--out", out).exit_code == 0
    AttackResult.load(b)
    for i in (0, 1):   # first or second batch replaced by another run's
        name = f"batches/batch-0000{i}.npz"
        original = (b / name).read_bytes()
        (b / name).write_bytes((a / name).read_bytes())
        with pytest.raises(UserError, match="a batch file of another run"):
            AttackResult.load(b)
        (b / name).write_bytes(original)


def test_load_refuses_a_tampered_batch(finished):
    batch = finished / "batches" / "batch-00000.npz"
    arrays = read_batch(batch)
    arrays["success"] = ~arrays["success"]
    write_batch(batch, arrays)
    with pytest.raises(UserError, match="does not match its checksum"):
        AttackResult.load(finished)


def test_examples_of_a_run_refuse_a_pickle(finished):
    """np.load never unpickles: an object array in a batch is an unreadable batch."""
    batch = finished / "batches" / "batch-00000.npz"
    arrays = read_batch(batch)
    arrays["evil"] = np.array([object()], dtype=object)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    batch.write_bytes(buf.getvalue())
    with pytest.raises(UserError, match="not a readable batch file"):
        RunDir(finished).examples()


# -- other files of the run in a state the run did not leave -----------------------------------
def test_a_fifo_in_place_of_the_provenance_is_refused_without_blocking(finished, deadline):
    (finished / "provenance.json").unlink()
    os.mkfifo(finished / "provenance.json")
    one_line_error(solve(finished), "cannot read provenance.json", "not a regular file")
    r = solve(finished, "--restart")
    assert r.exit_code == 0, r.output
    assert (finished / "provenance.json").is_file()


@pytest.mark.parametrize("extra, fragment", [([], "a directory is where this file goes"),
                                             (["--restart"], "is a directory, not the file")])
def test_a_directory_in_place_of_an_output_is_one_line(finished, extra, fragment):
    (finished / "metrics.csv").unlink()
    (finished / "metrics.csv").mkdir()
    (finished / "metrics.csv" / "mine.txt").write_text("the user's")
    one_line_error(solve(finished, *extra), "metrics.csv", fragment)
    assert (finished / "metrics.csv" / "mine.txt").read_text() == "the user's"
    assert not (finished / LOCK).exists()


@pytest.mark.parametrize("provenance, fragment", [
    ('{"resume_key": "x"}', "provenance.json holds no resume key"),
    ('{"resume_key": [1]}', "provenance.json holds no resume key"),
    ("[1, 2]", "provenance.json is not a JSON object"),
    ("[" * 100000 + "]" * 100000, "cannot read provenance.json"),
    ("{", "cannot read provenance.json")])
def test_a_provenance_that_is_not_ours_is_one_line(finished, provenance, fragment):
    (finished / "provenance.json").write_text(provenance)
    one_line_error(solve(finished), fragment, "use another --out or --restart")


def test_a_history_that_is_not_a_list_is_started_anew(finished):
    record = read_json(finished / "provenance.json")
    (finished / "provenance.json").write_text(json.dumps({**record, "history": 5}))
    r = solve(finished)
    assert r.exit_code == 0, r.output
    assert len(read_json(finished / "provenance.json")["history"]) == 1


def test_a_garbage_batch_is_recomputed(finished):
    metrics = (finished / "metrics.csv").read_bytes()
    (finished / "batches" / "batch-00000.npz").write_bytes(os.urandom(1000))
    r = solve(finished)
    assert r.exit_code == 0, r.output
    assert read_json(finished / "summary.json")["batches_computed"] == 1
    assert (finished / "metrics.csv").read_bytes() == metrics
