"""A user's model file: a ``torch.export`` program (.pt2, recommended) or TorchScript.

``torch.export.load`` is not safe on a file from elsewhere: it unpickles parts of the archive
with ``weights_only=False`` (tensor subclasses, opaque constants, and the example inputs when
the safe reader fails), loads AOTInductor libraries, ``sympify``-s (``eval``-s) the symbolic
shape expressions of the JSON graph, and resolves node targets by name on ``torch``, so a
crafted .pt2 can run code on load or on the first forward. :func:`check_program` therefore
admits only what ``torch.export.save`` writes for a plain program: raw tensor payloads, JSON,
example inputs readable with ``torch.load(weights_only=True)``, operator targets in
``torch.ops`` (or ``operator``/``math``/``torch.sym_*``) and sympy arithmetic; and
``torch.export.load`` then reads the checked bytes, never the file again.
"""

from __future__ import annotations

import io
import json
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

#: What ``torch.export.save`` writes under the archive's root folder for a plain program.
_MEMBER = re.compile(
    r"(archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id"
    r"|models/\w+\.json|data/weights/(\w+_weights_config\.json|weight_\d+)"
    r"|data/constants/(\w+_constants_config\.json|tensor_\d+)|data/sample_inputs/\w+\.pt"
    r"|extra/[\w./-]+)")
_PAYLOAD = re.compile(r"(weight|tensor)_\d+")
_TARGET = re.compile(r"torch\.ops\.\w+\.\w+\.\w+|_operator\.\w+|math\.\w+|torch\.sym_\w+")
#: Tokens of a sympy expression (symbols, numbers, capitalised sympy classes, assumptions).
_EXPR_TOKEN = re.compile(r"'[a-z]+\d*'|[A-Z][A-Za-z]*|[a-z]+\d+|\d+(\.\d+)?(e-?\d+)?"
                         r"|[-+*/%(),=<>!&| ]"
                         r"|positive|negative|nonnegative|nonpositive|integer|real|finite|zero")


def _refuse(path: Path, why: str) -> ValueError:
    return ValueError(f"name_or_path={str(path)!r}: {why}; refusing to load it (re-export it with "
                      "torch.export.save from a plain nn.Module)")


def _walk(obj: Any) -> Iterator[dict]:
    """Every dict inside a JSON value."""
    if isinstance(obj, dict):
        yield obj
        obj = list(obj.values())
    if isinstance(obj, list):
        for item in obj:
            yield from _walk(item)


def check_program(data: bytes, path: Path) -> None:
    """Raise ValueError unless ``data`` is a .pt2 archive that loads without unpickling or
    evaluating anything (see the module doc)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise _refuse(path, f"not a zip archive ({exc})") from None
    names = archive.namelist()
    if len(set(names)) != len(names):
        raise _refuse(path, "the archive lists a member twice")
    root = names[0].split("/")[0] + "/" if names else ""
    for name in names:
        if not (name.startswith(root) and _MEMBER.fullmatch(name[len(root):])):
            raise _refuse(path, f"member {name!r} is not part of a plain torch.export program "
                                "(pickled objects and compiled libraries are not loaded)")
    rel = {n[len(root):]: n for n in names}
    fmt = rel.get("archive_format")
    if fmt is None or archive.read(fmt).strip() != b"pt2":
        raise _refuse(path, "no archive_format 'pt2' (is it a torch.export.save file?)")
    for name, full in rel.items():
        if name.endswith("_config.json"):
            for fqn, meta in json.loads(archive.read(full))["config"].items():
                if meta.get("use_pickle") or not _PAYLOAD.fullmatch(meta.get("path_name", "")):
                    raise _refuse(path, f"{fqn!r} is stored as a pickle")
        elif name.startswith("models/"):
            _check_graph(json.loads(archive.read(full)), path)
        elif name.startswith("data/sample_inputs/"):
            try:
                torch.load(io.BytesIO(archive.read(full)), weights_only=True)
            except Exception:
                raise _refuse(path, f"{name} is not readable with torch.load(weights_only=True)"
                              ) from None


def _check_graph(program: dict, path: Path) -> None:
    """Node targets must be operators and symbolic expressions sympy arithmetic."""
    for d in _walk(program):
        target = d.get("target") if "inputs" in d else None
        if isinstance(target, str) and not (_TARGET.fullmatch(target) and "__" not in target):
            raise _refuse(path, f"the graph calls {target!r}, not a torch operator")
        expr = d.get("expr_str")
        if isinstance(expr, str) and ("__" in expr or _EXPR_TOKEN.sub("", expr)
                                      or re.search(r"\bS\b", expr)):
            raise _refuse(path, f"symbolic expression {expr[:60]!r} is not sympy arithmetic")


class ExportedModel(nn.Module):
    """A ``torch.export`` program as a module (``program.module()``). The program runs as it was
    exported (export from ``model.eval()``): ``train()``/``eval()`` set the flag only."""

    def __init__(self, program: torch.export.ExportedProgram):
        super().__init__()
        self.program = program.module()

    def train(self, mode: bool = True) -> "ExportedModel":
        self.training = mode  # the graph's ops are fixed at export; nothing to switch
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.program(x)


def load_program(path: Path) -> ExportedModel:
    """The checked (:func:`check_program`) ``torch.export`` program of ``path`` on the CPU."""
    data = path.read_bytes()
    check_program(data, path)
    try:
        program = torch.export.load(io.BytesIO(data))
    except Exception as exc:
        raise ValueError(f"name_or_path={str(path)!r}: torch.export.load failed: {exc}") from exc
    return ExportedModel(program)


def is_program(path: Path) -> bool:
    """Whether ``path`` is a zip archive with a ``*/archive_format`` member (torch.export.save's
    layout; TorchScript archives have none)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(n.count("/") == 1 and n.endswith("/archive_format")
                       for n in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def load_torchscript(path: Path) -> nn.Module:
    """``torch.jit.load(path)`` on the CPU, without torch's deprecation notice for it."""
    with warnings.catch_warnings():  # torch >= 2.10 flags TorchScript as deprecated
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.* is deprecated",
                                category=DeprecationWarning)
        return torch.jit.load(str(path), map_location="cpu")
