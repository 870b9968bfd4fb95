"""Structured adversarial attacks (StrAttack, ICLR 2019) and their peers, as admmkit problems."""

from attacks.api import CWL2, EAD, Attack, LinfAttack, Refine, StrAttack
from attacks.baselines import FGM, IFGSM, GradientAttack
from attacks.builtin import BUILTIN, builtin_spec
from attacks.result import AttackResult
from attacks.spec import AttackSpec

__all__ = ["Attack", "StrAttack", "CWL2", "EAD", "LinfAttack", "Refine", "AttackResult",
           "AttackSpec", "BUILTIN", "builtin_spec", "FGM", "IFGSM", "GradientAttack"]
