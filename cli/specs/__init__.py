"""Example attack specs shipped with the CLI: formulations that are none of the built-ins,
written only as TOML (``admm-attack specs list`` shows them; ``--spec <name>`` runs them)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict

SPEC_DIR = Path(__file__).resolve().parent


def example_specs() -> Dict[str, Path]:
    """Name (file stem) -> path of every shipped ``*.toml`` spec, sorted by name."""
    return {p.stem: p for p in sorted(SPEC_DIR.glob("*.toml"))}
