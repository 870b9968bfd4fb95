"""`make bench`: every benchmark, each reporting ratios measured in the same run.

    python benchmarks/run.py [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import solver_overhead  # noqa: E402

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=180)
    a = p.parse_args()
    print("# solver's own per-iteration work / one forward+backward of mnist-cw "
          f"(batch {a.batch}, {a.device}); target <= 0.05")
    for spec in ("strattack", "strattack-overlap", "cw-l2", "ead"):
        r = solver_overhead.measure(a.batch, a.device, 30, spec)
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}))
