"""The names of the files a run directory holds (the one owner of these names).

``solve``, each attack of ``eval`` and ``explain``, :meth:`attacks.result.AttackResult.save` and
the readers (``explain``, experiments) all name their files from here.
"""

from __future__ import annotations

METRICS_CSV = "metrics.csv"        # one row per example
SUMMARY = "summary.json"           # ASR, mean distortions over successes, counts
ADVERSARIAL = "adversarial.npz"    # the examples, their originals and labels
PROVENANCE = "provenance.json"     # what produced the run (resume key, options, history)
SPEC_TOML = "spec.toml"            # the resolved spec (runnable: --spec DIR/spec.toml)
