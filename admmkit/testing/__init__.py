"""Test helpers for prox operators, usable on your own :class:`~admmkit.prox.ProxFunction`.

* :mod:`admmkit.testing.strategies`: hypothesis strategies for batched tensors, steps ``tau``
  and every built-in operator (``prox_cases("L1")``, or ``prox_cases(my_factory)``).
* :mod:`admmkit.testing.checks`: plain functions raising ``AssertionError``: optimality by
  definition, projection properties, firm non-expansiveness, Moreau decomposition, batch
  independence, purity, reductions, and a brute-force minimiser. :func:`check_prox` runs them all.
* :mod:`admmkit.testing.sync`: :class:`SyncCounter` counts host-device synchronisations (per
  solve and iteration), to check that a loop never waits on the device.
"""

from admmkit.testing.checks import (brute_force_prox, check_batch_independence,
                                    check_firm_nonexpansive, check_moreau, check_optimality,
                                    check_projection, check_prox, check_purity,
                                    check_same_operator, conjugate_prox_of, objective,
                                    select_sample)
from admmkit.testing.sync import SyncCounter, SyncEvent
from admmkit.testing.strategies import (OPERATORS, ProxCase, batched_shapes, dtypes,
                                        grouped_shapes, prox_cases, prox_pairs, taus, tensors,
                                        weights)

__all__ = [
    "brute_force_prox", "check_batch_independence", "check_firm_nonexpansive", "check_moreau",
    "check_optimality", "check_projection", "check_prox", "check_purity", "check_same_operator",
    "conjugate_prox_of", "objective", "select_sample",
    "OPERATORS", "ProxCase", "batched_shapes", "dtypes", "grouped_shapes", "prox_cases",
    "prox_pairs", "taus", "tensors", "weights", "SyncCounter", "SyncEvent",
]
