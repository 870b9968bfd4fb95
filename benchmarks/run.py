"""`make bench`: every benchmark, each reporting ratios measured in the same run.

    python benchmarks/run.py [--full] [--device cpu|cuda] [--threads 1] [--only NAME ...]
                             [--out FILE.json]

Quick settings by default (a few minutes on one CPU core); ``--full`` for the figures in
docs/benchmarks.md. ``--device cuda`` runs every benchmark on the GPU (the CPU-threads one is
skipped) and stops with one line when CUDA is not available. Each benchmark prints JSON lines and a table; ``--out`` also writes every
report with its configuration, provenance and wall time. The torchattacks comparison is
skipped with a message when torchattacks (the optional ``bench`` extra) is not installed.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import benchutil as common  # noqa: E402
import budget  # noqa: E402
import compaction  # noqa: E402
import indicators  # noqa: E402
import memory  # noqa: E402
import solver_overhead  # noqa: E402
import threads  # noqa: E402
import throughput  # noqa: E402
import vs_torchattacks  # noqa: E402

BENCHMARKS = {"solver_overhead": solver_overhead, "compaction": compaction,
              "throughput": throughput, "memory": memory, "vs_torchattacks": vs_torchattacks,
              "threads": threads, "budget": budget, "indicators": indicators}


def main(argv=None) -> list:
    p = common.parser(__doc__, full="the documented (longer) settings")
    p.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), default=list(BENCHMARKS))
    p.add_argument("--out", default=None, help="write all reports to this JSON file")
    a = p.parse_args(argv)
    try:
        common.setup(a.device, a.threads)
    except ValueError as e:
        p.exit(2, f"error: --device {a.device}: {e}\n")
    reports = []
    for name in a.only:
        module = BENCHMARKS[name]
        print(f"# {name} ({'full' if a.full else 'quick'}, {a.device})", flush=True)
        start = time.perf_counter()
        report = module.bench(a.full, a.device, a.threads)
        report["wall_seconds"] = time.perf_counter() - start
        common.emit(report, module.COLUMNS)
        print(f"# {name}: {report['wall_seconds']:.0f} s\n", flush=True)
        reports.append(report)
        if a.out:  # after every benchmark, so a long run keeps what it finished
            Path(a.out).write_text(json.dumps(common.jsonable(
                {"argv": sys.argv, "full": a.full, "reports": reports}), indent=2,
                allow_nan=False))
    return reports


if __name__ == "__main__":
    main()
