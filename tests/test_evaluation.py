"""The evaluation protocol (appendix F) on hand-made results with known answers."""

import math

import pytest
import torch

from attacks.evaluation import (average_case_targets, evaluate_cases, summary_rows,
                                threshold_to_l0)
from attacks.result import AttackResult
from attacks.targets import expand_targets

K = 4  # classes


def fake_result(labels, success, l2, targets="all", seed=0):
    """A targeted result over the protocol's examples with the given per-example success and
    ℓ2 (ℓ0 = 10·ℓ2 so the metrics can be told apart)."""
    index, tg = expand_targets(labels, K, targets, seed)
    b = index.shape[0]
    success = torch.as_tensor(success, dtype=torch.bool)
    l2 = torch.as_tensor(l2, dtype=torch.float32)
    nan = torch.full((b,), math.nan)
    metrics = {"l0": torch.where(success, 10 * l2, nan), "l1": torch.where(success, l2, nan),
               "l2": torch.where(success, l2, nan), "linf": torch.where(success, l2 / 2, nan)}
    zeros = torch.zeros(b, 1, 2, 2)
    return AttackResult(attack="fake", adversarial=zeros, delta=zeros, success=success,
                        labels=tg.labels, targets=tg.targets, targeted=tg.targeted,
                        source_index=index, metrics=metrics, c=torch.ones(b),
                        gradient_evals=torch.ones(b), forward_evals=torch.ones(b))


LABELS = torch.tensor([0, 2])
# image 0 (label 0): targets 1, 2, 3; image 1 (label 2): targets 0, 1, 3
SUCCESS = [True, True, True, True, False, True]
L2 = [3.0, 1.0, 2.0, 0.5, 9.0, 4.0]


def test_best_average_worst_known_answers():
    r = fake_result(LABELS, SUCCESS, L2)
    cases = evaluate_cases(r, LABELS, K, seed=0)
    best, avg, worst = cases["best"], cases["average"], cases["worst"]
    # best: easiest successful target per image by l2: image 0 -> target 2 (1.0), image 1 -> 0
    assert best.success.tolist() == [True, True]
    assert best.chosen.tolist() == [1, 3]
    assert best.metrics["l2"].tolist() == [1.0, 0.5]
    assert best.metrics["l0"].tolist() == [10.0, 5.0]
    # worst: image 0 all succeeded -> hardest is target 1 (3.0); image 1 had a failure
    assert worst.success.tolist() == [True, False]
    assert worst.chosen.tolist() == [0, -1]
    assert worst.metrics["l2"][0] == 3.0 and math.isnan(worst.metrics["l2"][1])
    # average: the seeded random target of each image
    t = average_case_targets(LABELS, K, 0)
    rows = [0 * 3 + int(t[0]) - (t[0] > 0).int(), 1 * 3 + int(t[1]) - int(t[1] > 2)]
    assert avg.chosen.tolist() == [int(i) if SUCCESS[int(i)] else -1 for i in rows]
    s = worst.summary()
    assert s["images"] == 2 and s["successes"] == 1 and s["asr"] == 50.0 and s["l2"] == 3.0


def test_average_case_uses_the_random_protocol_draw():
    seed = 7
    index, tg = expand_targets(LABELS, K, "random", seed)
    assert torch.equal(average_case_targets(LABELS, K, seed), tg.targets)
    r = fake_result(LABELS, [True, False], [1.5, 2.0], targets="random", seed=seed)
    avg = evaluate_cases(r, LABELS, K, seed=seed, cases=["average"])["average"]
    assert avg.success.tolist() == [True, False]
    assert avg.metrics["l2"][0] == 1.5
    with pytest.raises(ValueError, match="every other class"):
        evaluate_cases(r, LABELS, K, seed=seed, cases=["best"])
    other = next(s for s in range(100) if not torch.equal(
        average_case_targets(LABELS, K, s), tg.targets))
    with pytest.raises(ValueError, match="random target"):
        evaluate_cases(r, LABELS, K, seed=other, cases=["average"])


def test_rows_in_any_order_give_the_same_cases():
    r = fake_result(LABELS, SUCCESS, L2)
    perm = torch.tensor([5, 2, 0, 4, 1, 3])
    shuffled = AttackResult(
        attack="fake", adversarial=r.adversarial[perm], delta=r.delta[perm],
        success=r.success[perm], labels=r.labels[perm], targets=r.targets[perm],
        targeted=r.targeted[perm], source_index=r.source_index[perm],
        metrics={k: v[perm] for k, v in r.metrics.items()}, c=r.c, gradient_evals=r.c,
        forward_evals=r.c)
    a, b = evaluate_cases(r, LABELS, K), evaluate_cases(shuffled, LABELS, K)
    for case in a:
        assert a[case].success.tolist() == b[case].success.tolist()
        assert torch.equal(a[case].metrics["l2"].nan_to_num(-1),
                           b[case].metrics["l2"].nan_to_num(-1))


def test_failures_never_count_and_bad_input_is_refused():
    r = fake_result(LABELS, [False] * 6, L2)
    cases = evaluate_cases(r, LABELS, K)
    for cr in cases.values():
        s = cr.summary()
        assert s["successes"] == 0 and s["asr"] == 0.0 and math.isnan(s["l2"])
    with pytest.raises(ValueError, match="cases must be"):
        evaluate_cases(r, LABELS, K, cases=["median"])
    with pytest.raises(ValueError, match="rank_by"):
        evaluate_cases(r, LABELS, K, rank_by="l3")
    rows = summary_rows({"fake": cases})
    assert [(x["attack"], x["case"]) for x in rows] == [("fake", c) for c in cases]


def test_threshold_keeps_the_largest_entries():
    delta = torch.tensor([[0.1, -0.5, 0.3, 0.0], [0.2, 0.2, -0.9, 0.05]]).view(2, 1, 2, 2)
    out = threshold_to_l0(delta, torch.tensor([2.0, 1.0]))
    kept = torch.tensor([[0, 1, 1, 0], [0, 0, 1, 0]], dtype=torch.bool).view_as(delta)
    assert torch.equal(out, torch.where(kept, delta, 0.0))
    assert torch.equal(threshold_to_l0(delta, torch.tensor([4.0, 9.0])), delta)
