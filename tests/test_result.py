"""AttackResult declares its per-example fields once: concatenation, ``to``, ``equals`` and the
file formats (batches, metrics.csv, adversarial.npz) follow the declaration."""

from __future__ import annotations

import csv
import math

import attrs
import numpy as np
import pytest
import torch
from torch import Tensor

from attacks.filenames import ADVERSARIAL, METRICS_CSV
from attacks.result import AttackResult
from attacks.result_io import per_example, to_arrays
from attacks.runs.outputs import CSV_COLUMNS, to_result


@attrs.frozen(kw_only=True)
class Costed(AttackResult):
    """A toy per-example field, declared the way the library declares its own: the writers
    are not touched."""

    cost: Tensor = per_example(csv=(12, "cost"), missing=torch.float32)
    note: Tensor = per_example(compare=False, missing=torch.long)   # stored, never compared


def make(cls=AttackResult, b=3, seed=0, **extra) -> AttackResult:
    g = torch.Generator().manual_seed(seed)
    adv = torch.rand(b, 1, 4, 4, generator=g)
    success = torch.arange(b) % 2 == 0
    nan = torch.full((b,), math.nan)
    metrics = {"l0": torch.where(success, torch.rand(b, generator=g), nan),
               "l2": torch.where(success, torch.rand(b, generator=g), nan)}
    return cls(attack="toy", adversarial=adv, delta=adv / 2, success=success,
               labels=torch.arange(b), targets=(torch.arange(b) + 1) % 10,
               targeted=torch.ones(b, dtype=torch.bool), source_index=torch.arange(b),
               metrics=metrics, c=torch.where(success, torch.ones(b), nan),
               gradient_evals=torch.full((b,), 7), forward_evals=torch.full((b,), 2), **extra)


def test_a_declared_field_flows_through_concat_files_csv_and_equals(tmp_path):
    a = make(Costed, cost=torch.tensor([0.5, 1.5, 2.5]), note=torch.tensor([1, 2, 3]))
    b = make(Costed, b=2, seed=1, cost=torch.tensor([3.5, 4.5]))
    both = Costed.concat([a, b])
    assert type(both) is Costed and len(both) == 5
    assert both.cost.tolist() == [0.5, 1.5, 2.5, 3.5, 4.5]
    assert both.note.tolist() == [1, 2, 3, 0, 0]                   # not given: all zeros
    assert both.to("cpu").equals(both)

    back = Costed.load(both.save(tmp_path / "res"))
    assert type(back) is Costed and back.equals(both)
    assert back.cost.tolist() == both.cost.tolist() and back.note.tolist() == [1, 2, 3, 0, 0]
    with open(tmp_path / "res" / METRICS_CSV, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == [*CSV_COLUMNS, "cost"]                      # its column, at its position
    assert [r[-1] for r in rows[1:]] == ["0.5", "1.5", "2.5", "3.5", "4.5"]
    with np.load(tmp_path / "res" / ADVERSARIAL) as z:
        assert "cost" not in z.files                              # no npz position declared

    assert not back.equals(attrs.evolve(both, cost=both.cost + 1))
    assert back.equals(attrs.evolve(both, note=both.note + 1))    # compare=False
    assert not back.equals(AttackResult.load(tmp_path / "res"))   # another class


def test_older_files_and_results_lacking_optional_fields_read_as_zeros(tmp_path):
    r = make()
    assert r.refined.dtype == torch.bool and not r.refined.any() and not r.nonfinite.any()
    older = {k: v for k, v in to_arrays(r).items()
             if k not in ("refined", "nonfinite", "flags")}
    assert to_result(older, "toy").equals(r)
    plain = AttackResult.load(r.save(tmp_path / "plain"))         # a file before "cost"
    assert Costed.load(tmp_path / "plain").cost.tolist() == [0.0, 0.0, 0.0]
    assert plain.equals(r)
    with pytest.raises(ValueError, match="'success'"):
        to_result({k: v for k, v in older.items() if k != "success"}, "toy")


def test_the_formats_keep_their_columns_and_order():
    assert CSV_COLUMNS == ("index", "source_index", "label", "target", "success", "l0", "l1",
                           "l2", "linf", "groups_nonzero", "groups_fraction", "c",
                           "gradient_evals", "refined", "targeted", "forward_evals",
                           "nonfinite", "status", "reason")
    assert list(to_arrays(make())) == ["adversarial", "delta", "success", "labels", "targets",
                                       "targeted", "source_index", "c", "gradient_evals",
                                       "forward_evals", "refined", "nonfinite", "metric_l0",
                                       "metric_l2", "flags"]
