"""Run directories: owned, locked, atomic, resumable.

A run directory owns its files. It is claimed when it is new or empty (:meth:`RunDir.claim`):
the marker file ``.admm-attack-run.json`` records its kind and the manifest of every file the
runs wrote there, so ``--restart`` deletes exactly those and a directory that is not a run of
the same kind is refused. Every path written is resolved and checked to stay inside the
directory. A lock file (``.admm-attack.lock``, created with ``O_EXCL``, holding the owner's PID
and host; a dead owner's lock on this host is taken over) keeps two runs out of one directory.
The marker and the lock are read only when they are regular files, without blocking (a FIFO or
a device in their place is refused, never opened for a wait). Each batch file carries the
fingerprint of its run, so a batch of another run is refused, and a SHA-256 of its content
(:func:`content_checksum`): on resume a batch whose content no longer matches is recomputed,
never merged unverified. A batch written before the checksums existed (none stored) is
recomputed on resume too; reading a run back (:meth:`RunDir.examples`) still accepts it.

Files are written through temporaries ``.<name>.<8 characters>.tmp`` beside them
(:func:`atomic_write`); the run's own (beside a file of its manifest, or of the marker) are
what a process killed mid-write leaves behind: a new directory holding nothing else is still
claimed, ``--restart`` deletes them with the run's files, a finished run removes them
(:meth:`RunDir.tidy`); a user's ``.summary.json.notes.tmp`` is not of that shape and stays.

Layout of a run (``solve``, and each attack of ``eval`` and ``explain``)::

    provenance.json   what produced the run (resume key, options, versions, history)
    spec.toml         the resolved spec (runnable: --spec DIR/spec.toml)
    batches/          one batch-NNNNN.npz per finished batch (written atomically)
    metrics.csv  summary.json  adversarial.npz  figures/*.png   (merged at the end)
    png/              every adversarial example as an 8-bit PNG (grid runs)
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import re
import secrets
import socket
import stat
import zipfile
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

import numpy as np

from attacks.errors import UserError
from attacks.filenames import PROVENANCE

MARKER = ".admm-attack-run.json"
LOCK = ".admm-attack.lock"
#: the kinds of run directory: a run (solve, Python runs, each attack of eval/explain), an
#: eval's and an explain's top directory
KINDS = ("run", "eval", "explain")
#: the temporary :func:`atomic_write` writes ``name`` through (group 1: ``name``); the random
#: part is 8 characters of ``[a-z0-9_]`` (as older versions' ``mkstemp`` names)
TEMPORARY = re.compile(r"\.(.+)\.[a-z0-9_]{8}\.tmp")
#: the largest marker, lock and JSON file read back (a manifest lists a run's every file)
MAX_JSON_BYTES = 64 << 20
#: the array of a batch file holding its :func:`content_checksum`
CHECKSUM = "content_sha256"
#: process ids are C ints: a lock naming anything else names no process
MAX_PID = 2**31 - 1


def _temporary_of(name: str) -> Optional[str]:
    """The name of the file ``name`` is a temporary of (:data:`TEMPORARY`), else ``None``."""
    m = TEMPORARY.fullmatch(name)
    return m.group(1) if m else None


class NotRegularFile(OSError):
    """A path that holds something else than a regular file (a FIFO, a device, a link)."""


def read_regular(path: Path, limit: Optional[int] = None) -> Optional[bytes]:
    """The bytes of the regular file ``path`` (at most ``limit`` + 1 of them), ``None`` when
    nothing is there. Never blocks and never follows a symbolic link: anything but a regular
    file (a FIFO, a device, a link) raises :class:`NotRegularFile`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as e:
        if os.path.islink(path):
            raise NotRegularFile(f"{path} is a symbolic link") from None
        raise e
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotRegularFile(f"{path} is not a regular file")
    with os.fdopen(fd, "rb") as f:
        return f.read() if limit is None else f.read(limit + 1)


def read_json_file(path: Path, what: str) -> Any:
    """The JSON document in the regular file ``path`` (``None`` when absent); a
    :class:`UserError` naming ``what`` (e.g. ``--out DIR``) when it is not one."""
    try:
        raw = read_regular(path, MAX_JSON_BYTES)
        if raw is None:
            return None
        if len(raw) > MAX_JSON_BYTES:
            raise ValueError(f"larger than {MAX_JSON_BYTES >> 20} MiB")
        return json.loads(raw.decode("utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        raise UserError(f"{what}: cannot read {path.name} ({e})") from None


def _temporary(path: Path) -> Tuple[int, Path]:
    """A new temporary beside ``path`` (:data:`TEMPORARY`), opened for writing; the mode is
    what the umask gives a new file."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                           | os.O_CLOEXEC, 0o666), tmp
        except FileExistsError:
            continue


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path`` (:data:`TEMPORARY`), then
    ``os.replace`` it; the file gets the permissions the umask gives a new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir() and not path.is_symlink():
        raise UserError(f"{path}: a directory is where this file goes; remove it, or use "
                        "another --out")
    fd, tmp = _temporary(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def json_ready(obj: Any) -> Any:
    """NaN/inf become null so the file is strict JSON; tuples become lists."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, np.generic):
        return json_ready(obj.item())
    return obj


def write_json(path: Path, obj: Any) -> None:
    atomic_write(path, json_bytes(obj))


def json_bytes(obj: Any) -> bytes:
    """Strict, indented UTF-8 JSON (NaN and infinities as null) with a final newline."""
    text = json.dumps(json_ready(obj), indent=2, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


def npz_bytes(arrays: Dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def merge(parts: List[Dict[str, np.ndarray]]) -> Dict[str, np.ndarray]:
    """Batches' arrays concatenated key by key, in the given order."""
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def run_fingerprint(key: Dict[str, Any]) -> str:
    """What a run's batch files carry: SHA-256 (16 hex digits) of its resume key."""
    return hashlib.sha256(json_bytes(key)).hexdigest()[:16]


def content_checksum(arrays: Dict[str, np.ndarray]) -> str:
    """SHA-256 of ``arrays``: every array's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(json_bytes([name, a.dtype.str, list(a.shape)]))
        h.update(a.tobytes())
    return h.hexdigest()


def _pid_alive(pid: Any) -> bool:
    """Whether process ``pid`` exists; a value no process can have (not an int in
    1..:data:`MAX_PID`: 0 and -1 would address process groups) is no process."""
    if isinstance(pid, bool) or not isinstance(pid, int) or not 0 < pid <= MAX_PID:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunDir:
    """A run directory of ``kind`` (:data:`KINDS`) at ``root``; ``fingerprint`` is the run's
    (:func:`run_fingerprint`), stamped into and checked on its batch files."""

    def __init__(self, root: Path, kind: str = "run", fingerprint: str = ""):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
        self.root = Path(root)
        self.kind = kind
        self.fingerprint = fingerprint
        self.batches = self.root / "batches"
        self.figures = self.root / "figures"
        self._locked = False

    # -- paths and owned files ----------------------------------------------------------------
    def path(self, name: str) -> Path:
        """``root/name``, refused unless it stays inside the run directory (no ``..``, no
        absolute name, no symbolic link leading out)."""
        p = self.root / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise UserError(f"refusing to write {name!r}: not a path inside --out {self.root}")
        real_root = self.root.resolve()
        if not p.resolve().is_relative_to(real_root):
            raise UserError(f"refusing to write {p}: it leads outside --out {self.root} "
                            "(a symbolic link?)")
        return p

    def write(self, name: str, data: bytes) -> Path:
        """Write the file ``name`` atomically and list it in the manifest."""
        p = self.path(name)
        self.own([name])
        atomic_write(p, data)
        return p

    def write_json(self, name: str, obj: Any) -> Path:
        return self.write(name, json_bytes(obj))

    def _marker(self) -> Optional[Dict[str, Any]]:
        """The marker (kind, manifest), ``None`` when there is none; refused unless it is a
        regular file holding a JSON object whose ``files`` are names inside the directory."""
        data = read_json_file(self.root / MARKER, f"--out {self.root}")
        if data is None:
            return None
        files = data.get("files") if isinstance(data, dict) else None
        if not isinstance(files, list):
            raise UserError(f"--out {self.root}: {MARKER} is not an admm-attack marker; "
                            "choose a new or empty directory")
        for name in files:
            if (not isinstance(name, str) or not name or "\0" in name
                    or Path(name).is_absolute() or ".." in Path(name).parts):
                shown = repr(name)[:80] if isinstance(name, str) else type(name).__name__
                raise UserError(f"--out {self.root}: {MARKER} lists {shown}, not a file name "
                                "inside the directory; choose a new or empty directory")
        return data

    def owned(self) -> List[str]:
        """The files the manifest lists (relative names)."""
        marker = self._marker()
        return list(marker["files"]) if marker else []

    def own(self, names: Iterable[str]) -> None:
        """Add ``names`` to the manifest (the files ``--restart`` deletes)."""
        marker = self._marker() or {"kind": self.kind, "files": []}
        new = sorted(set(marker["files"]) | {str(n) for n in names})
        if new != marker["files"]:
            atomic_write(self.root / MARKER, json_bytes({**marker, "files": new}))

    # -- claiming, restarting, locking --------------------------------------------------------
    def claim(self, restart: bool = False) -> "RunDir":
        """Make ``root`` this kind's run directory (creating it) and lock it; with ``restart``
        delete the files of the previous run there (only those its manifest lists).

        Refused with one line: a path that is not a directory, a non-empty directory that is
        not a run directory of this kind, a run directory another process is using."""
        root = self.root
        if str(root) == "":
            raise UserError("--out is empty: expected a directory path")
        if root.exists() and not root.is_dir():
            raise UserError(f"--out {root}: exists and is not a directory")
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"--out {root}: cannot create the directory "
                            f"({e.strerror or e})") from None
        marker = self._marker()
        if marker is None:
            # what a process killed while writing the first marker leaves is ours to continue
            leftovers = [p for p in root.iterdir() if _temporary_of(p.name) == MARKER]
            if len(leftovers) < sum(1 for _ in root.iterdir()):
                raise UserError(f"--out {root}: not empty and not an admm-attack "
                                f"{self.kind} directory; choose a new or empty directory")
            try:
                for p in leftovers:
                    p.unlink()
                atomic_write(root / MARKER, json_bytes({"kind": self.kind, "files": []}))
            except OSError as e:
                raise UserError(f"--out {root}: cannot write there ({e.strerror or e})") \
                    from None
        elif marker.get("kind") != self.kind:
            raise UserError(f"--out {root} is an admm-attack {marker.get('kind')} directory, "
                            f"not {self.kind}; choose a new or empty directory")
        self.lock()
        if restart:
            try:
                self.clear()
            except BaseException:   # a refused restart leaves the directory unlocked
                self.unlock()
                raise
        return self

    def clear(self) -> None:
        """Delete the files the manifest lists and the run's own temporaries
        (:meth:`temporaries`), then the emptied folders; nothing else."""
        names = self.owned()
        for name in names:
            p = self.path(name)
            if p.is_dir() and not p.is_symlink():
                raise UserError(f"--restart: {p} is a directory, not the file the run wrote "
                                "there; remove it, or use another --out")
            p.unlink(missing_ok=True)
        self.tidy()
        for folder in sorted({self.path(n).parent for n in names}, key=lambda d: -len(d.parts)):
            if folder != self.root:
                with contextlib.suppress(OSError):
                    folder.rmdir()   # only when empty
        atomic_write(self.root / MARKER, json_bytes({"kind": self.kind, "files": []}))

    def temporaries(self) -> List[Path]:
        """The run's own temporaries: those :func:`atomic_write` makes for the marker and
        for every file of the manifest (left behind by a process killed mid-write)."""
        folders: Dict[Path, set] = {self.root: {MARKER}}
        for name in self.owned():
            p = self.path(name)
            folders.setdefault(p.parent, set()).add(p.name)
        return [p for folder, names in folders.items() if folder.is_dir()
                for p in folder.iterdir() if _temporary_of(p.name) in names]

    def tidy(self) -> None:
        """Remove the run's own temporaries (:meth:`temporaries`); the caller holds the lock
        and no write of the run is under way."""
        for p in self.temporaries():
            p.unlink(missing_ok=True)

    def lock(self) -> None:
        """Take the directory's lock (see the module docstring) or refuse with who holds it."""
        if self._locked:
            return
        p = self.root / LOCK
        me = {"pid": os.getpid(), "host": socket.gethostname()}
        for _ in range(2):
            try:
                fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
            except FileExistsError:
                try:
                    holder = json.loads(read_regular(p, 4096) or b"{}")
                except NotRegularFile:
                    raise UserError(f"--out {self.root}: the lock file {p} is not a regular "
                                    "file; remove it if no run is using the directory") \
                        from None
                except (OSError, ValueError, RecursionError):
                    holder = {}   # being written by its owner, or garbage: held
                holder = holder if isinstance(holder, dict) else {}
                pid, host = holder.get("pid"), holder.get("host")
                if host == me["host"] and isinstance(pid, int) and not _pid_alive(pid):
                    p.unlink(missing_ok=True)   # its owner is gone: a stale lock
                    continue
                raise UserError(f"--out {self.root} is in use by process {pid} on {host} "
                                f"(lock file {p}); wait for it, or delete the lock file if "
                                "that process is gone") from None
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self._locked = True
            return
        raise UserError(f"--out {self.root}: cannot take the lock {p}")

    def unlock(self) -> None:
        if self._locked:
            (self.root / LOCK).unlink(missing_ok=True)
            self._locked = False

    # -- starting / resuming ------------------------------------------------------------------
    def stored_provenance(self) -> Optional[Dict[str, Any]]:
        what = f"--out {self.root}"
        try:
            data = read_json_file(self.path(PROVENANCE), what)
        except UserError as e:
            raise UserError(f"{e}; use another --out or --restart") from None
        if data is not None and not isinstance(data, dict):
            raise UserError(f"{what}: {PROVENANCE} is not a JSON object; use another --out or "
                            "--restart")
        return data

    def check_resume(self, key: Dict[str, Any]) -> bool:
        """True when DIR holds the same run (resume); False when it holds none yet.

        A different stored run (spec/model/data/targets/seed/batch size) is a user error.
        """
        stored = self.stored_provenance()
        if stored is None:
            if any(n.startswith("batches/") and self.path(n).is_file() for n in self.owned()):
                raise UserError(f"--out {self.root}: holds batch files but no {PROVENANCE}; "
                                "use another --out or --restart")
            return False
        old = stored.get("resume_key")
        if not isinstance(old, dict):
            raise UserError(f"--out {self.root}: {PROVENANCE} holds no resume key; use another "
                            "--out or --restart")
        new = json_ready(key)
        differ = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        if differ:
            raise UserError(f"--out {self.root} holds a different run (it differs in "
                            f"{', '.join(differ)}); use another --out, or --restart to discard "
                            "it")
        return True

    def start(self, record: Dict[str, Any], *, restart: bool = False,
              key: Optional[Dict[str, Any]] = None, entry: Optional[Dict[str, Any]] = None,
              files: Optional[Dict[str, str]] = None, batches: int = 0) -> List[Any]:
        """Claim and lock the directory (``restart``: clear its files) and write its
        provenance ``record``, with this invocation's ``entry`` appended to the earlier ones
        (``history``); return those earlier entries. With ``key`` the directory must hold the
        same run (resume) or none (:meth:`check_resume`), its ``batches`` batch files are
        listed in the manifest and ``files`` (name -> text) written. Unlocked on error."""
        self.claim(restart)
        try:
            resuming = self.check_resume(key) if key is not None else True
            history = (self.stored_provenance() or {}).get("history", []) \
                if resuming and entry is not None else []
            history = history if isinstance(history, list) else []   # not ours: started anew
            self.own(self.batch_name(i) for i in range(batches))
            for name, text in (files or {}).items():
                self.write(name, text.encode("utf-8"))
            self.write_json(PROVENANCE, record if entry is None
                            else {**record, "history": history + [entry]})
        except BaseException:
            self.unlock()
            raise
        return history

    # -- batches ----------------------------------------------------------------------------
    def batch_name(self, i: int) -> str:
        return f"batches/batch-{i:05d}.npz"

    def batch_path(self, i: int) -> Path:
        return self.path(self.batch_name(i))

    def save_batch(self, i: int, arrays: Dict[str, np.ndarray]) -> None:
        """Store batch ``i`` stamped with the run's fingerprint and its content checksum (any
        rank; rank 0 lists the batch names in the manifest when the run starts)."""
        arrays = {**arrays, "run_fingerprint": np.array(self.fingerprint)}
        atomic_write(self.batch_path(i),
                     npz_bytes({**arrays, CHECKSUM: np.array(content_checksum(arrays))}))

    def _read_batch(self, p: Path) -> Tuple[Dict[str, np.ndarray], Optional[bool]]:
        """The arrays of the batch file ``p`` (a regular file; never a pickle), with its
        checksum (``None`` when it has none) under :data:`CHECKSUM` and ``verified`` telling
        whether the content matches it."""
        raw = read_regular(p)
        if raw is None:
            raise FileNotFoundError(f"{p}: no such file")
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        stamp = arrays.pop(CHECKSUM, None)
        return arrays, (None if stamp is None else str(stamp) == content_checksum(arrays))

    def _check_fingerprint(self, p: Path, arrays: Dict[str, np.ndarray],
                           fingerprint: str) -> None:
        stamp = arrays.pop("run_fingerprint", None)
        if stamp is None or str(stamp) != fingerprint:
            raise UserError(f"{p}: a batch file of another run (fingerprint "
                            f"{'none' if stamp is None else str(stamp)}, this run's "
                            f"{fingerprint}); remove it, or use --restart")

    def load_batch(self, i: int, source_index: np.ndarray, targets: np.ndarray
                   ) -> Optional[Dict[str, np.ndarray]]:
        """The stored batch ``i`` if it exists, reads, matches its content checksum and covers
        these examples; else None (it is recomputed). A batch file of another run (another
        fingerprint) is refused, never merged."""
        p = self.batch_path(i)
        try:
            arrays, verified = self._read_batch(p)
        except (OSError, ValueError, zipfile.BadZipFile, EOFError):
            return None
        self._check_fingerprint(p, arrays, self.fingerprint)
        if not verified:   # changed since it was written, or written without a checksum
            return None
        same = (np.array_equal(arrays.get("source_index"), source_index)
                and np.array_equal(arrays.get("targets"), targets))
        return arrays if same else None

    def examples(self) -> Dict[str, np.ndarray]:
        """Every stored batch's arrays concatenated in batch order (``source_index``,
        ``targets``, ``labels``, ``success``, ``delta``, ``adversarial``, ``metric_*``...):
        what experiments read back from a finished (or partly finished) run.

        Every batch file must be a regular file of the directory (no link), of one run (the
        run's fingerprint when known, else the first batch's) and match its checksum (a batch
        written before checksums existed has none and is read as it is)."""
        parts = sorted(self.batches.glob("batch-*.npz"))
        if not parts:
            raise UserError(f"{self.root}: no finished batches (run the attack first)")
        arrays, fingerprint = [], self.fingerprint
        for p in parts:
            try:
                a, verified = self._read_batch(p)
            except NotRegularFile as e:
                raise UserError(f"{e}: a run's batches are its own regular files") from None
            except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
                raise UserError(f"{p}: not a readable batch file ({e})") from None
            if verified is False:
                raise UserError(f"{p}: its content does not match its checksum (changed "
                                "after it was written)")
            fingerprint = fingerprint or str(a.get("run_fingerprint", ""))
            self._check_fingerprint(p, a, fingerprint)
            arrays.append(a)
        return merge(arrays)
