"""What produced a run: versions, platform, git revision (never fatal when git is missing)."""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import platform
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch

SOURCE_ROOT = Path(__file__).resolve().parents[2]


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def versions() -> Dict[str, str]:
    out = {"admm-attack": package_version("admm-attack")}
    if out["admm-attack"] == "not installed":
        out["admm-attack"] = f"source tree {SOURCE_ROOT} (not installed)"
    for name in ("torch", "numpy", "scipy", "attrs", "typer", "rich", "matplotlib"):
        out[name] = package_version(name)
    return out


def _git(*args: str) -> Optional[str]:
    try:
        done = subprocess.run(["git", "-C", str(SOURCE_ROOT), *args], capture_output=True,
                              text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_revision() -> Dict[str, object]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the source tree."""
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def environment() -> Dict[str, object]:
    return {"python": sys.version.split()[0], "platform": platform.platform(),
            "versions": versions(), "git": git_revision()}


def now() -> str:
    """The current UTC time, ISO 8601 to the second (provenance time stamps)."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def fingerprint(*tensors) -> str:
    """SHA-256 (first 16 hex digits) of tensors' bytes: identifies data and weights."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(str((t.dtype, tuple(t.shape))).encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def model_fingerprint(model) -> str:
    """:func:`fingerprint` of a model's state dict (its weights and buffers)."""
    return fingerprint(*[v for _, v in sorted(model.state_dict().items())])


def run_record(tool: str, examples: int, images: int, **context) -> Dict[str, object]:
    """The provenance of a run: the ``tool`` that made it, its ``context`` (options, device...),
    how many examples of how many images, and the environment."""
    return {"tool": tool, **context, "examples": examples, "images": images, **environment()}


def run_entry(**context) -> Dict[str, object]:
    """One invocation's entry in a run's history: when it started, the source revision, its
    ``context``."""
    return {"started": now(), "git": git_revision(), **context}


def stopped(error: BaseException) -> Tuple[str, Dict[str, object]]:
    """How a run stopped by ``error`` records itself: its status (``interrupted`` for Ctrl-C
    and SIGTERM, which arrive as ``KeyboardInterrupt``; else ``failed``) and the fields of its
    history entry (when, and what stopped it)."""
    if isinstance(error, KeyboardInterrupt):
        return "interrupted", {"finished": now(), "interrupted": True}
    what = " ".join(str(error).split())
    return "failed", {"finished": now(), "error": type(error).__name__ + (f": {what}" if what
                                                                         else "")}
