"""Structured adversarial attacks (StrAttack, ICLR 2019) and their peers, as admmkit problems.

The names below load their modules (and torch) on first use (PEP 562), so that importing a
light submodule such as ``attacks.errors`` (what the command line's ``--help`` needs) does
not import torch.
"""

from __future__ import annotations

import importlib

#: public name -> the module that defines it
_HOMES = {
    "Attack": "attacks.api", "StrAttack": "attacks.api", "CWL2": "attacks.api",
    "EAD": "attacks.api", "LinfAttack": "attacks.api", "Refine": "attacks.api",
    "FGM": "attacks.baselines", "IFGSM": "attacks.baselines",
    "GradientAttack": "attacks.baselines",
    "BUILTIN": "attacks.builtin", "builtin_spec": "attacks.builtin",
    "AttackResult": "attacks.result", "AttackSpec": "attacks.spec",
}

__all__ = ["Attack", "StrAttack", "CWL2", "EAD", "LinfAttack", "Refine", "AttackResult",
           "AttackSpec", "BUILTIN", "builtin_spec", "FGM", "IFGSM", "GradientAttack"]


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'attacks' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
