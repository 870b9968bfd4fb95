"""List the model zoo, and with ``--eval`` measure each shipped model's accuracy.

    python -m attacks.models            # names, shapes, weights, recorded accuracies
    python -m attacks.models --eval     # re-measure on the bundled data (a few seconds)
"""

from __future__ import annotations

import argparse
import json

import torch

from ..data import load_dataset
from .train import evaluate
from .zoo import list_models, load_model


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m attacks.models", description=__doc__.split("\n\n")[0])
    parser.add_argument("--eval", action="store_true", help="measure accuracy on the bundled data sets")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    measured: dict = {}
    for info in list_models():
        print(f"{info.name}: {info.architecture}; input {info.input_shape}, {info.num_classes} classes")
        print(f"    weights: {info.weights}")
        print(f"    recorded accuracy: {dict(info.accuracy) or 'n/a'}")
        if args.eval and info.accuracy:
            model = load_model(info.name)
            measured[info.name] = {
                ds: evaluate(model, *load_dataset(ds)) for ds in info.accuracy
            }
            print(f"    measured accuracy: {measured[info.name]}")
    if args.eval:
        print(json.dumps(measured))
    return measured


if __name__ == "__main__":
    main()
