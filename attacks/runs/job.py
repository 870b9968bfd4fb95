"""A run, whole: what :func:`attacks.runs.run_attack` consumes.

A :class:`Job` holds the attack (with its classifier, normalisation and seed), its checked
examples (images, labels and per-example :class:`Targets`, expanded once; the 8-bit grid
decided once), the batch size, the resume key that identifies the run, the provenance record
and this invocation's history entry. The command line and ``Attack.run(loader, out=...)`` both
build one with :meth:`Job.create`; nothing downstream checks, expands or decides again.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import attrs
import torch
from torch import Tensor

from attacks.base import AttackBase, Examples
from attacks.runs.distributed import Ranks
from attacks.runs.provenance import fingerprint, model_fingerprint, run_entry, run_record
from attacks.targets import TargetChoice


def normalized(normalize: Optional[tuple]) -> Dict[str, Any]:
    """The resume-key entry of a normalisation ``(mean, std)`` (none without one: older keys
    stay valid)."""
    if normalize is None:
        return {}
    return {"normalize": [[float(v) for v in _values(normalize[0])],
                          [float(v) for v in _values(normalize[1])]]}


def _values(v) -> list:
    return list(v) if isinstance(v, (list, tuple)) else [v]


def resume_key(attack: Dict[str, Any], identity: Dict[str, Any], *, classifier,
               data: Tuple[Tensor, ...], seed: int, batch_size: int, grid: bool
               ) -> Dict[str, Any]:
    """What identifies a run: the ``attack`` (its spec, or a baseline's settings), the
    caller's ``identity`` (names of model, data, targets...), the normalisation, fingerprints
    of the model's weights and of the ``data`` tensors, the seed, the batch size and the grid
    switch. A stored run resumes only under the same key (:meth:`RunDir.check_resume`)."""
    return {**attack, **identity, **normalized(classifier.normalize),
            "model_sha256_16": model_fingerprint(classifier.model),
            "data_sha256_16": fingerprint(*data), "seed": seed, "batch_size": batch_size,
            "grid": grid}


@attrs.frozen
class Job:
    """One run (see the module doc). ``examples`` lie on the CPU; each batch moves to the
    model's device when it is attacked."""

    attack: AttackBase
    examples: Examples
    batch_size: int
    key: Dict[str, Any]
    record: Dict[str, Any]
    entry: Dict[str, Any] = attrs.field(factory=dict)
    files: Dict[str, str] = attrs.field(factory=dict)
    ranks: Ranks = Ranks()

    @classmethod
    def create(cls, attack: AttackBase, examples: Examples, *, batch_size: int, tool: str,
               identity: Dict[str, Any], context: Optional[Dict[str, Any]] = None,
               record: Optional[Dict[str, Any]] = None, key_head: Optional[Dict] = None,
               data: Optional[Tuple[Tensor, ...]] = None, ranks: Ranks = Ranks()) -> "Job":
        """The job of ``attack`` on ``examples`` (checked by ``attack.examples``).

        ``identity`` and ``key_head`` (default: the attack's own identity) form the resume
        key with ``data`` (default: the examples' images and labels) fingerprinted;
        ``context`` (options, device...) goes into the provenance record and this
        invocation's entry, ``record`` only into the record."""
        examples = examples.cpu()
        key = resume_key(attack.identity() if key_head is None else key_head, identity,
                         classifier=attack.classifier,
                         data=data or (examples.images, examples.labels), seed=attack.seed,
                         batch_size=batch_size, grid=examples.grid)
        context = context or {}
        full = {**run_record(tool, examples.size, int(examples.images.shape[0]), **context),
                **(record or {})}
        return cls(attack, examples, batch_size, key, full, run_entry(**context),
                   attack.files(), ranks)

    @property
    def name(self) -> str:
        return self.attack.name

    @property
    def grid(self) -> bool:
        return self.examples.grid

    @property
    def seed(self) -> int:
        return self.attack.seed

    @property
    def groups(self):
        """The attack's own groups (for the figures' heatmap), or None."""
        return self.attack.own_groups(tuple(self.examples.images.shape[1:]))

    def slices(self) -> List[slice]:
        return self.examples.slices(self.batch_size)


def python_job(attack: AttackBase, examples: Examples, targets: TargetChoice,
               batch_size: Optional[int]) -> Job:
    """The job of ``Attack.run(loader, targets, out=...)``."""
    choice = targets if targets is None or isinstance(targets, str) else \
        [int(t) for t in torch.as_tensor(targets).reshape(-1)]
    return Job.create(attack, examples, batch_size=batch_size or examples.size,
                      tool="attacks.Attack.run", identity={"targets": choice})
