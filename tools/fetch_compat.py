"""Fetch torchattacks, foolbox and the Adversarial Robustness Toolbox (with what they import)
into .cache/compat, outside the virtual environment, for tests/test_adapters.py.

    python tools/fetch_compat.py [--target DIR] [--strict]

Installed with ``pip --no-deps --target``: torchattacks declares torchvision (which pins its
own torch) but imports none of it, so the project's torch stays, and ``pip check`` on the venv
is unaffected. ART's ``import art`` loads scikit-learn (a binary wheel for this interpreter). Does nothing when DIR already holds exactly these pins. Without network the
tests that need the libraries skip; a failed fetch prints why and exits 0 (``--strict``: 1).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / ".cache" / "compat"
PINS = (
    "torchattacks==3.5.1", "foolbox==3.3.4",
    # what foolbox imports (eagerpy; GitPython and requests from foolbox.zoo) and theirs
    "eagerpy==0.30.0", "GitPython==3.2.1", "gitdb==4.0.12", "smmap==5.0.3",
    "requests==2.34.2", "urllib3==2.8.0", "idna==3.20", "certifi==2026.10.19.post1",
    "charset-normalizer==3.5.3",
    # adversarial-robustness-toolbox; ``import art`` imports all of it: scikit-learn (and
    # joblib, cloudpickle, threadpoolctl, narwhals), six, tqdm
    "adversarial-robustness-toolbox==1.20.1", "scikit-learn==1.9.1", "joblib==1.6.0",
    "cloudpickle==3.1.3", "threadpoolctl==3.8.0", "narwhals==2.29.0", "six==1.17.0",
    "tqdm==4.70.1",
    # benchmarks/peers_adv_lib.py (it stands in for adv_lib's torchvision, visdom and tqdm)
    "adv_lib==0.2.8",
)
STAMP = "PINS.txt"


def fetch(target: Path = TARGET) -> bool:
    """Install :data:`PINS` into ``target`` (a temporary folder, then renames: a reader sees the
    old or the new folder); True when ``target`` holds them afterwards."""
    wanted = "\n".join(PINS) + "\n"
    stamp = target / STAMP
    if stamp.is_file() and stamp.read_text() == wanted:
        return True
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile",
           "--disable-pip-version-check", "--target", str(tmp), *PINS]
    try:
        if subprocess.run(cmd).returncode != 0:
            print("fetch_compat: pip failed; tests needing torchattacks/foolbox/art will skip",
                  file=sys.stderr)
            return False
        (tmp / STAMP).write_text(wanted)
        old = target.parent / f".{target.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
        return True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", type=Path, default=TARGET)
    p.add_argument("--strict", action="store_true", help="exit 1 when the fetch fails")
    a = p.parse_args()
    ok = fetch(a.target)
    return 0 if ok or not a.strict else 1


if __name__ == "__main__":
    sys.exit(main())
