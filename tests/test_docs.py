"""The code in the docs runs as written."""

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def python_blocks(name):
    return re.findall(r"```python\n(.*?)```", (DOCS / name).read_text(), re.S)


def test_solver_guide_example_runs_and_converges():
    (code,) = python_blocks("solver.md")
    scope = {}
    exec(compile(code, "docs/solver.md", "exec"), scope)
    result = scope["result"]
    assert result.converged.all() and not result.diverged.any()
    assert result.xs[1].abs().max() <= 1  # the box block is exactly feasible
    assert result.z.abs().max() <= 1 + 1e-3  # z agrees with it to the tolerance
