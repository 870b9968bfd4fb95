"""Write the converted Keras CIFAR-10 CNN as a PyTorch state_dict.

    python -m attacks.models.export_keras --out cifar10_cnn.pt [--h5 path/to/cnn_model.h5]

The file loads with ``load_model("cifar10-cnn", weights="cifar10_cnn.pt")`` (e.g. on a
machine without the cifar-10-model wheel).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Optional

import torch

from attacks.models.keras_convert import convert_keras_cifar10


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m attacks.models.export_keras",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--h5", type=Path, default=None,
                        help="Keras .h5 (default: the one in the fetched cifar-10-model wheel)")
    parser.add_argument("--out", type=Path, required=True,
                        help="where to write the state_dict (.pt)")
    args = parser.parse_args(argv)
    sd = convert_keras_cifar10(args.h5)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(sd, args.out)
    print(f"wrote {args.out} ({sum(v.numel() for v in sd.values())} values)")


if __name__ == "__main__":
    main()
