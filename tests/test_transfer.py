"""attacks.transfer: transfer counts on tiny models with known answers."""

from __future__ import annotations

import math

import attrs
import pytest
import torch
from torch import nn

from attacks import CWL2
from attacks.spec import SearchSpec
from attacks.transfer import TransferCount, evaluate_transfer, transfer_success


class LogitReader(nn.Module):
    """Logits = the first 4 pixels of the image: the test writes the answer into the input."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return self.scale * x.flatten(1)[:, :4]


class Constant(nn.Module):
    """Always predicts ``cls`` (4 classes)."""

    def __init__(self, cls: int):
        super().__init__()
        self.register_buffer("logits", torch.nn.functional.one_hot(torch.tensor(cls), 4).float())

    def forward(self, x):
        return self.logits.expand(x.shape[0], 4)


def _images(rows):
    x = torch.zeros(len(rows), 1, 2, 2)
    x.view(len(rows), 4)[:] = torch.tensor(rows)
    return x


def test_transfer_success_targeted_untargeted_and_top_k():
    # logits (descending order of classes): [3, 1, 0, 2], [0, 2, 1, 3], [1, 0, 3, 2], [2, 3, 0, 1]
    x = _images([[0.5, 0.7, 0.1, 0.9], [0.9, 0.5, 0.6, 0.1], [0.6, 0.9, 0.1, 0.4], [0.4, 0.1, 0.9, 0.5]])
    labels = torch.tensor([3, 0, 1, 1])
    targets = torch.tensor([1, 1, 3, 1])
    targeted = torch.tensor([True, True, True, False])
    m = LogitReader()
    # top-1: target 1 vs 3 (no), target 1 vs 0 (no), target 3 vs 1 (no), untargeted 1 vs 2 (yes)
    assert transfer_success(m, x, labels, targets, targeted).tolist() == [False, False, False, True]
    # top-2: 1 in {3, 1} yes; 1 in {0, 2} no; 3 in {1, 0} no; label 1 not in {2, 3} yes
    assert transfer_success(m, x, labels, targets, targeted, top_k=2).tolist() == [True, False, False, True]
    # top-3: 3 in {1, 0, 3} yes; label 1 in {2, 3, 0}? no -> untargeted success
    assert transfer_success(m, x, labels, targets, targeted, top_k=3, batch_size=3).tolist() == [True, True, True, True]
    # batching does not change anything
    assert torch.equal(transfer_success(m, x, labels, targets, targeted, batch_size=1),
                       transfer_success(m, x, labels, targets, targeted))


def test_transfer_success_rejects_bad_input():
    x, y = torch.rand(3, 1, 2, 2), torch.zeros(3, dtype=torch.long)
    t = torch.ones(3, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"targets must be a tensor of shape \(3,\)"):
        transfer_success(LogitReader(), x, y, y[:2], t)
    with pytest.raises(ValueError, match="top_k must be"):
        transfer_success(LogitReader(), x, y, y, t, top_k=0)
    with pytest.raises(ValueError, match="num_classes >= top_k"):
        transfer_success(LogitReader(), x, y, y, t, top_k=5)
    with pytest.raises(ValueError, match="must be an AttackResult"):
        evaluate_transfer(x, {"m": LogitReader()})


@pytest.fixture(scope="module")
def attacked():
    """A real C&W attack on a tiny linear 4-class model, all 3 targets of 4 images."""
    torch.manual_seed(0)
    source = nn.Sequential(nn.Flatten(), nn.Linear(16, 4)).eval()
    x = torch.rand(4, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    y = source(x).argmax(1)
    result = CWL2(source)(x, y, "all")
    return source, result


def test_evaluate_transfer_counts_only_source_successes(attacked):
    source, result = attacked
    ok = result.success
    assert len(result) == 12 and ok.any()
    models = {"self": source, "always-2": Constant(2), "always-y": Constant(int(result.labels[0]))}
    report = evaluate_transfer(result, models)
    assert list(report) == ["self", "always-2", "always-y"]
    n_ok = int(ok.sum())
    assert report["self"] == TransferCount("self", n_ok, n_ok, 12, 1) and report["self"].rate == 1.0
    # a model that always answers 2 is fooled exactly by the successful examples targeting 2
    want = int((ok & (result.targets == 2)).sum())
    assert 0 < want < n_ok
    assert report["always-2"].transferred == want and report["always-2"].rate == want / n_ok
    # a model that always answers image 0's label: fooled by the examples targeting that class
    assert report["always-y"].transferred == int((ok & (result.targets == result.labels[0])).sum())
    d = report["always-2"].to_dict()
    assert d["transferred"] == want and d["source_successes"] == n_ok and d["rate"] == want / n_ok


def test_failed_examples_never_transfer(attacked):
    source, result = attacked
    failed = attrs.evolve(result, success=torch.zeros_like(result.success))
    report = evaluate_transfer(failed, {"self": source})
    assert report["self"].transferred == 0 and report["self"].source_successes == 0
    assert math.isnan(report["self"].rate)
