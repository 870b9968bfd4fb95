"""Run directories: owned, locked, atomic, resumable.

A run directory owns its files. It is claimed when it is new or empty (:meth:`RunDir.claim`):
the marker file ``.admm-attack-run.json`` records its kind and the manifest of every file the
runs wrote there, so ``--restart`` deletes exactly those and a directory that is not a run of
the same kind is refused. Every path written is resolved and checked to stay inside the
directory. A lock file (``.admm-attack.lock``, created with ``O_EXCL``, holding the owner's PID
and host; a dead owner's lock on this host is taken over) keeps two runs out of one directory.
Each batch file carries the fingerprint of its run, so a batch of another run is refused.

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
import socket
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

import numpy as np

from attacks.errors import UserError
from attacks.filenames import PROVENANCE

MARKER = ".admm-attack-run.json"
LOCK = ".admm-attack.lock"
#: the kinds of run directory: a run (solve, Python runs, each attack of eval/explain), an
#: eval's and an explain's top directory
KINDS = ("run", "eval", "explain")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then ``os.replace`` it; the file
    gets the permissions the umask gives a new file (not ``mkstemp``'s 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
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


def _pid_alive(pid: int) -> bool:
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
        p = self.root / MARKER
        if not p.is_file():
            return None
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise UserError(f"--out {self.root}: cannot read {MARKER} ({e}); choose a new or "
                            "empty directory") from None
        if not isinstance(data, dict) or not isinstance(data.get("files"), list):
            raise UserError(f"--out {self.root}: {MARKER} is not an admm-attack marker; "
                            "choose a new or empty directory")
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
            if any(root.iterdir()):
                raise UserError(f"--out {root}: not empty and not an admm-attack "
                                f"{self.kind} directory; choose a new or empty directory")
            try:
                atomic_write(root / MARKER, json_bytes({"kind": self.kind, "files": []}))
            except OSError as e:
                raise UserError(f"--out {root}: cannot write there ({e.strerror or e})") \
                    from None
        elif marker.get("kind") != self.kind:
            raise UserError(f"--out {root} is an admm-attack {marker.get('kind')} directory, "
                            f"not {self.kind}; choose a new or empty directory")
        self.lock()
        if restart:
            self.clear()
        return self

    def clear(self) -> None:
        """Delete the files the manifest lists (and their half-written temporaries), then the
        emptied folders; nothing else."""
        names = self.owned()
        for name in names:
            p = self.path(name)
            p.unlink(missing_ok=True)
            for tmp in p.parent.glob(f".{p.name}.*.tmp"):
                tmp.unlink()
        for folder in sorted({self.path(n).parent for n in names}, key=lambda d: -len(d.parts)):
            if folder != self.root:
                with contextlib.suppress(OSError):
                    folder.rmdir()   # only when empty
        atomic_write(self.root / MARKER, json_bytes({"kind": self.kind, "files": []}))

    def lock(self) -> None:
        """Take the directory's lock (see the module docstring) or refuse with who holds it."""
        if self._locked:
            return
        p = self.root / LOCK
        me = {"pid": os.getpid(), "host": socket.gethostname()}
        for _ in range(2):
            try:
                fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 & ~_umask())
            except FileExistsError:
                try:
                    holder = json.loads(p.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    holder = {}
                pid, host = holder.get("pid"), holder.get("host")
                if host == me["host"] and isinstance(pid, int) and not _pid_alive(pid):
                    p.unlink(missing_ok=True)   # its owner died: a stale lock
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
        p = self.path(PROVENANCE)
        if not p.is_file():
            return None
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise UserError(f"--out {self.root}: cannot read {p.name} ({e}); use another --out "
                            "or --restart") from None

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
        old = stored.get("resume_key", {})
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
        """Store batch ``i`` stamped with the run's fingerprint (any rank; rank 0 lists the
        batch names in the manifest when the run starts)."""
        atomic_write(self.batch_path(i),
                     npz_bytes({**arrays, "run_fingerprint": np.array(self.fingerprint)}))

    def load_batch(self, i: int, source_index: np.ndarray, targets: np.ndarray
                   ) -> Optional[Dict[str, np.ndarray]]:
        """The stored batch ``i`` if it exists, reads, and covers these examples; else None.
        A batch file of another run (another fingerprint) is refused, never merged."""
        p = self.batch_path(i)
        if not p.is_file():
            return None
        try:
            with np.load(p) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError):
            return None
        stamp = arrays.pop("run_fingerprint", None)
        if stamp is None or str(stamp) != self.fingerprint:
            raise UserError(f"{p}: a batch file of another run (fingerprint "
                            f"{'none' if stamp is None else str(stamp)}, this run's "
                            f"{self.fingerprint}); remove it, or use --restart")
        same = (np.array_equal(arrays.get("source_index"), source_index)
                and np.array_equal(arrays.get("targets"), targets))
        return arrays if same else None

    def examples(self) -> Dict[str, np.ndarray]:
        """Every stored batch's arrays concatenated in batch order (``source_index``,
        ``targets``, ``labels``, ``success``, ``delta``, ``adversarial``, ``metric_*``...):
        what experiments read back from a finished (or partly finished) run."""
        parts = sorted(self.batches.glob("batch-*.npz"))
        if not parts:
            raise UserError(f"{self.root}: no finished batches (run the attack first)")
        arrays = []
        for p in parts:
            with np.load(p) as z:
                arrays.append({k: z[k] for k in z.files if k != "run_fingerprint"})
        return merge(arrays)
