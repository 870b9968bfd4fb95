"""List the model zoo, and with ``--eval`` measure each shipped model's accuracy.

    python -m attacks.models            # names, shapes, weights, recorded accuracies
    python -m attacks.models --eval     # re-measure on the bundled data (about a minute:
                                        # the PGD robust accuracies take most of it)

Training is ``python -m attacks.training`` (it sits above the attacks: the adversarially
trained models craft their examples with them).
"""

from __future__ import annotations

import argparse
import json
from typing import List, Optional

import torch

from attacks.data import load_dataset
from attacks.models.defences import (
    EVAL_DATASET,
    EVAL_PGD,
    EVAL_PGD_IMAGES,
    accuracy,
    robust_accuracy,
)
from attacks.models.zoo import list_models, load_model


def main(argv: Optional[List[str]] = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m attacks.models",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--eval", action="store_true",
                        help="measure accuracy on the bundled data sets")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    measured: dict = {}
    for info in list_models():
        print(f"{info.name}: {info.architecture}; input {info.input_shape}, "
              f"{info.num_classes} classes")
        print(f"    weights: {info.weights}")
        print(f"    recorded accuracy: {dict(info.accuracy) or 'n/a'}")
        if info.robust_accuracy:
            print(f"    recorded robust accuracy (PGD eps 0.3, first {EVAL_PGD_IMAGES} of "
                  f"{EVAL_DATASET}): {dict(info.robust_accuracy)}")
        if args.eval and info.accuracy:
            model = load_model(info.name)
            measured[info.name] = {
                ds: accuracy(model, *load_dataset(ds)) for ds in info.accuracy
            }
            print(f"    measured accuracy: {measured[info.name]}")
            if info.robust_accuracy:
                x, y = load_dataset(EVAL_DATASET, n=EVAL_PGD_IMAGES)
                robust = {k: robust_accuracy(model, x, y, EVAL_PGD[k])
                          for k in info.robust_accuracy}
                measured[info.name]["robust"] = robust
                print(f"    measured robust accuracy: {robust}")
    if args.eval:
        print(json.dumps(measured))
    return measured


if __name__ == "__main__":
    main()
