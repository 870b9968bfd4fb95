"""Interpretability tools (attacks.interpret): ASM (eq. 61), B maps, IS (eq. 23), CAM, Grad-CAM,
figures. Tiny float64 models; known answers by construction."""

import math
import warnings
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from attacks.interpret import (REFERENCE, adversarial_saliency_map, asm_from_gradients,
                               class_activation_map, default_cam_layer, grad_cam,
                               interpretability_score, is_curve, last_conv, logit_gradients,
                               mean_score, percentile_mask, results_is_curve, write_csv)

D = torch.float64


def smooth_cnn(classes=4, channels=2, seed=0):
    """conv-tanh-conv-tanh-linear: smooth, so finite differences are accurate."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(channels, 3, 3), nn.Tanh(), nn.Conv2d(3, 4, 3), nn.Tanh(),
                         nn.Flatten(), nn.Linear(4 * 2 * 2, classes)).double().eval()


def relu_cnn(classes=5, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3),
                         nn.ReLU(), nn.Flatten(), nn.Linear(6 * 5 * 5, classes)).double().eval()


def gap_model(channels=3, classes=4, seed=0, features=None):
    torch.manual_seed(seed)
    feats = features if features is not None else nn.Conv2d(channels, 5, 1)
    fc = nn.Linear(feats.out_channels if isinstance(feats, nn.Conv2d) else channels, classes)
    model = nn.Sequential(feats, nn.AdaptiveAvgPool2d(1), nn.Flatten(), fc).double().eval()
    return model, feats, fc


def rand(*shape, seed=1):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=D)


# ----------------------------------------------------------------------------- ASM


def test_logit_gradients_match_central_differences():
    model = smooth_cnn()
    x = rand(3, 2, 6, 6)
    t, t0 = torch.tensor([1, 3, 0]), torch.tensor([2, 0, 1])
    g_t, g_t0 = logit_gradients(model, x, t, t0)
    h = 1e-6
    b, n = x.shape[0], x[0].numel()
    eye = torch.eye(n, dtype=D).view(1, n, *x.shape[1:]) * h      # every pixel at once
    with torch.no_grad():
        zp = model((x.unsqueeze(1) + eye).flatten(0, 1)).view(b, n, -1)
        zm = model((x.unsqueeze(1) - eye).flatten(0, 1)).view(b, n, -1)
    diff = (zp - zm) / (2 * h)                                        # (B, pixels, classes)
    fd_t = diff.gather(2, t.view(-1, 1, 1).expand(b, n, 1)).view_as(x)
    fd_t0 = diff.gather(2, t0.view(-1, 1, 1).expand(b, n, 1)).view_as(x)
    torch.testing.assert_close(g_t, fd_t, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(g_t0, fd_t0, rtol=1e-6, atol=1e-8)
    asm = adversarial_saliency_map(model, x, t0, t)
    torch.testing.assert_close(asm, asm_from_gradients(fd_t, fd_t0), rtol=1e-6, atol=1e-8)
    assert (asm >= 0).all() and (asm > 0).any() and (asm == 0).any()


def test_asm_masking_rule_on_hand_made_gradients():
    g_t = torch.tensor([2.0, 2.0, -1.0, 0.0, 3.0, 0.5, -2.0])
    g_t0 = torch.tensor([-3.0, 1.0, -2.0, -5.0, 0.0, -4.0, 3.0])
    # kept iff g_t >= 0 and g_t0 <= 0; value g_t * |g_t0|
    assert asm_from_gradients(g_t, g_t0).tolist() == [6.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0]


def test_asm_of_a_linear_model_is_the_rule_on_its_weight_rows():
    torch.manual_seed(3)
    lin = nn.Linear(12, 3).double()
    model = nn.Sequential(nn.Flatten(), lin)
    x = rand(2, 3, 2, 2)
    labels, targets = torch.tensor([0, 2]), torch.tensor([1, 0])
    w = lin.weight.detach()
    expected = torch.stack([asm_from_gradients(w[t], w[t0]) for t, t0 in
                            zip(targets.tolist(), labels.tolist())]).view_as(x)
    torch.testing.assert_close(adversarial_saliency_map(model, x, labels, targets), expected)


def test_asm_and_grad_cam_are_batch_independent():
    model = relu_cnn()
    x = rand(4, 1, 16, 16)
    labels, targets = torch.tensor([0, 1, 2, 3]), torch.tensor([4, 3, 0, 1])
    asm = adversarial_saliency_map(model, x, labels, targets)
    cam = grad_cam(model, x, targets)
    for i in range(4):
        sl = slice(i, i + 1)
        torch.testing.assert_close(asm[sl], adversarial_saliency_map(model, x[sl], labels[sl],
                                                                     targets[sl]))
        torch.testing.assert_close(cam[sl], grad_cam(model, x[sl], targets[sl]))


def test_class_arguments_are_checked():
    model = relu_cnn()
    x = rand(2, 1, 16, 16)
    with pytest.raises(ValueError, match="one class per image"):
        adversarial_saliency_map(model, x, torch.tensor([0, 1, 2]), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="integers"):
        grad_cam(model, x, torch.tensor([0.0, 1.0]))
    a = adversarial_saliency_map(model, x, 0, 1)  # one int for all
    assert a.shape == x.shape


# ------------------------------------------------------------------- B at percentile ν


@pytest.mark.parametrize("nu", [0, 30, 50, 72.5, 90, 100])
def test_percentile_mask_keeps_the_expected_count_per_sample(nu):
    n = 101
    g = torch.Generator().manual_seed(5)
    scores = torch.stack([torch.randperm(n, generator=g).double() * s for s in (1.0, 1e-3, 7.0)])
    scores = scores.view(3, 1, n)  # extra dimensions are flattened per sample
    pos = nu / 100 * (n - 1)
    strict = percentile_mask(scores, nu)
    loose = percentile_mask(scores, nu, strict=False)
    assert strict.shape == loose.shape == scores.shape
    assert strict.flatten(1).sum(1).tolist() == [n - math.floor(pos) - 1] * 3
    assert loose.flatten(1).sum(1).tolist() == [n - math.ceil(pos)] * 3
    # the kept entries are the largest ones
    for b in range(3):
        kept, dropped = scores[b][strict[b]], scores[b][~strict[b]]
        if kept.numel() and dropped.numel():
            assert kept.min() > dropped.max()


def test_percentile_mask_on_ties_at_zero():
    scores = torch.tensor([[0.0] * 6 + [1.0, 2.0, 3.0, 4.0]])  # 60 % zeros, like ASM
    assert percentile_mask(scores, 30).sum() == 4            # strict: the positive entries
    assert percentile_mask(scores, 30, strict=False).all()   # >=: everything
    with pytest.raises(ValueError, match="percentile"):
        percentile_mask(scores, 101)


# ------------------------------------------------------------------------------- IS


def test_interpretability_score_inside_outside_partial_and_zero():
    mask = torch.zeros(4, 2, 3, 3, dtype=torch.bool)
    mask[:, :, :2] = True
    delta = torch.zeros(4, 2, 3, 3, dtype=D)
    delta[0, :, :2] = rand(2, 2, 3)           # inside B
    delta[1, :, 2] = rand(2, 3) + 0.1          # outside B
    delta[2, 0, 0, 0], delta[2, 1, 2, 2] = 3.0, 4.0   # ||B∘δ|| = 3, ||δ|| = 5
    scores = interpretability_score(delta, mask)
    assert scores[0] == pytest.approx(1.0) and scores[1] == 0.0
    assert scores[2] == pytest.approx(0.6) and math.isnan(scores[3])
    assert mean_score(scores) == pytest.approx(1.6 / 3)
    # a spatial (B, H, W) map such as B_CAM covers every channel
    torch.testing.assert_close(interpretability_score(delta, mask[:, 0]), scores,
                               equal_nan=True)


def test_is_curve_means_counts_and_validity():
    scores = torch.arange(1.0, 17.0, dtype=D).view(1, 1, 4, 4).repeat(2, 1, 1, 1)
    inside = (scores > 12).to(D)            # the top quarter: B at ν = 75 holds it
    everywhere = torch.ones_like(scores)
    curve = is_curve({"in": inside, "all": everywhere}, scores, [0, 75, 100],
                     valid=torch.tensor([True, False]), map_name="toy")
    assert curve.count == {"in": 1, "all": 1}
    assert curve.mean["in"].tolist() == pytest.approx([1.0, 1.0, 0.0])
    # B at 75 keeps the top 4 of 16 entries (q = 12.25): IS = sqrt(4/16)
    assert curve.mean["all"].tolist() == pytest.approx([math.sqrt(15 / 16), 0.5, 0.0])
    assert math.isnan(curve.per_example["in"][1, 0])
    rows = curve.rows()
    assert len(rows) == 6 and {r["attack"] for r in rows} == {"in", "all"}


def fake_result(delta, success, labels, targets):
    return SimpleNamespace(delta=delta, success=torch.tensor(success), labels=labels,
                           targets=targets, source_index=torch.arange(delta.shape[0]))


def test_results_is_curve_common_examples_and_alignment(tmp_path):
    model = relu_cnn()
    x = rand(3, 1, 16, 16)
    labels, targets = torch.tensor([0, 1, 2]), torch.tensor([1, 2, 3])
    a = fake_result(rand(3, 1, 16, 16, seed=2) - 0.5, [True, True, False], labels, targets)
    b = fake_result(rand(3, 1, 16, 16, seed=3) - 0.5, [True, False, True], labels, targets)
    common = results_is_curve(model, x, {"a": a, "b": b}, "asm")
    assert common.count == {"a": 1, "b": 1}
    own = results_is_curve(model, x, {"a": a, "b": b}, "gradcam-true", common=False,
                           reference=True)
    assert own.count == {"a": 2, "b": 2, REFERENCE: 1}
    # a perturbation spread evenly scores sqrt(|B|/d)
    b_map = percentile_mask(grad_cam(model, x[:1], labels[:1]), 50)
    assert own.mean[REFERENCE][2] == pytest.approx(math.sqrt(b_map.double().mean()))
    assert all(((m >= 0) & (m <= 1)).all() for m in own.mean.values())
    other = fake_result(a.delta, [True] * 3, labels, torch.tensor([2, 2, 3]))
    with pytest.raises(ValueError, match="targets"):
        results_is_curve(model, x, {"a": a, "other": other})
    path = write_csv(tmp_path / "curve.csv", [common, own])
    lines = path.read_text().splitlines()
    assert lines[0] == "map,rule,nu,attack,mean_is,examples" and len(lines) == 1 + 5 * 7


# ------------------------------------------------------------------------ CAM, Grad-CAM


def test_cam_of_a_gap_model_on_the_input_channels_is_the_weighted_sum():
    # features are the input channels themselves: CAM_c = Σ_k w_ck x_k, known by construction
    torch.manual_seed(0)
    fc = nn.Linear(3, 4).double()
    x = rand(2, 3, 5, 7)
    classes = torch.tensor([3, 1])
    cam = class_activation_map(nn.Identity(), fc, x, classes)
    w = fc.weight.detach()
    expected = torch.stack([(w[c].view(3, 1, 1) * x[i]).sum(0) for i, c in
                            enumerate(classes.tolist())])
    torch.testing.assert_close(cam, expected)
    # the spatial mean of CAM_c plus the bias is the logit Z_c (the CAM identity)
    logits = fc(x.mean(dim=(2, 3)))
    torch.testing.assert_close(cam.mean(dim=(1, 2)) + fc.bias[classes],
                               logits.gather(1, classes.view(-1, 1)).squeeze(1))
    with pytest.raises(ValueError, match="feature channels"):
        class_activation_map(nn.Identity(), nn.Linear(4, 2).double(), x, 0)


def test_grad_cam_equals_relu_cam_over_hw_on_gap_plus_linear():
    model, conv, fc = gap_model()
    x = rand(3, 3, 6, 6) - 0.5
    classes = torch.tensor([0, 2, 3])
    assert default_cam_layer(model, x) is conv
    cam = class_activation_map(conv, fc, x, classes)
    gc = grad_cam(model, x, classes)
    torch.testing.assert_close(gc, torch.relu(cam) / 36)
    assert (cam < 0).any() and (gc > 0).any()


def test_grad_cam_on_a_coarser_feature_map_upsamples_to_the_image():
    conv = nn.Conv2d(2, 5, 3, stride=2).double()
    model, conv, fc = gap_model(channels=2, features=conv)
    x = rand(2, 2, 13, 13)
    classes = torch.tensor([1, 0])
    small = grad_cam(model, x, classes, upsample=False)
    assert small.shape == (2, 6, 6)
    torch.testing.assert_close(small, torch.relu(class_activation_map(
        conv, fc, x, classes, upsample=False)) / 36)
    big = grad_cam(model, x, classes)
    assert big.shape == (2, 13, 13) and (big >= 0).all()
    assert class_activation_map(conv, fc, x, classes).shape == (2, 13, 13)


def test_default_layer_is_the_last_conv_block_output():
    model = relu_cnn()
    x = rand(2, 1, 16, 16)
    assert default_cam_layer(model, x) is model[4]          # the ReLU after the last conv
    assert last_conv(model) is model[3]
    maps = grad_cam(model, x, torch.tensor([1, 2]))
    assert maps.shape == (2, 16, 16) and (maps >= 0).all()
    raw = grad_cam(model, x, torch.tensor([1, 2]), layer=last_conv(model))
    assert raw.shape == (2, 16, 16) and (raw >= 0).all()
    with pytest.raises(ValueError, match="no nn.Conv2d"):
        last_conv(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))


def test_grad_cam_rejects_a_layer_called_twice():
    relu = nn.ReLU()
    model = nn.Sequential(nn.Conv2d(1, 2, 3), relu, nn.Conv2d(2, 2, 3), relu, nn.Flatten(),
                          nn.Linear(2 * 4 * 4, 3)).double()
    with pytest.raises(ValueError, match="exactly once"):
        grad_cam(model, rand(1, 1, 8, 8), 0, layer=relu)
    with warnings.catch_warnings():  # TorchScript's deprecation notice
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(relu_cnn())
    with pytest.raises(ValueError, match="TorchScript"):
        grad_cam(scripted, rand(1, 1, 16, 16), 0)


# ----------------------------------------------------------------------------- figures


@pytest.mark.parametrize("channels", [1, 3])
def test_figures_are_written(tmp_path, channels):
    from attacks.interpret.figures import plot_example, plot_is_curves
    scores = rand(2, channels, 8, 8)
    deltas = {"a": rand(2, channels, 8, 8, seed=4) - 0.5,
              "b": (rand(2, channels, 8, 8, seed=5) - 0.5) * (scores > 0.5)}
    curve = is_curve(deltas, scores, map_name="asm")
    p1 = plot_is_curves(tmp_path / "curve.png", [curve, curve], title="toy")
    p2 = plot_example(tmp_path / "ex.png", rand(channels, 8, 8), scores[0],
                      {k: v[0] for k, v in deltas.items()}, rand(8, 8), rand(8, 8, seed=6),
                      label=1, target=2, class_names=[str(i) for i in range(3)], title="toy")
    for p in (p1, p2):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000


def test_grad_cam_and_asm_on_the_zoo_models():
    from attacks.data import load_dataset
    from attacks.models import load_model
    for name, data, layer in [("mnist-cw", "mnist-test20", lambda m: m.net.features[8]),
                              ("cifar10-cnn", "cifar10-test20", lambda m: m.net.bns[3])]:
        model = load_model(name)
        x, y = load_dataset(data, n=3)
        assert default_cam_layer(model, x) is layer(model)
        maps = grad_cam(model, x, y)
        assert maps.shape == (3, *x.shape[2:]) and (maps >= 0).all()
        assert (maps.flatten(1).max(1).values > 0).all()   # the true label's region is found
        asm = adversarial_saliency_map(model, x, y, (y + 1) % 10)
        assert asm.shape == x.shape and (asm >= 0).all() and (asm > 0).any()


# -------------------------------------------------------------- GAP head detection, CAM


class FunctionalGap(nn.Module):
    """Normalisation in front, GAP written as a tensor mean (no pooling module)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(4)
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
                                      nn.MaxPool2d(2), nn.Conv2d(4, 6, 3, padding=1), nn.ReLU())
        self.classifier = nn.Linear(6, 3)

    def forward(self, x):
        return self.classifier(self.features((x - 0.5) / 0.25).mean(dim=(2, 3)))


def test_gap_head_is_found_through_pooling_modules_and_tensor_means():
    from attacks.interpret import find_gap_head
    model, conv, fc = gap_model()
    x = rand(2, 3, 6, 6)
    head = find_gap_head(model, x)
    assert head.module is model[1] and head.use_input and head.linear is fc  # pool's input
    net = FunctionalGap().double().eval()
    head = find_gap_head(net, rand(2, 1, 8, 8))
    assert head.module is net.features[4] and not head.use_input and head.linear is net.classifier


def test_models_without_a_gap_head_are_recognised():
    from attacks.interpret import find_gap_head
    assert find_gap_head(relu_cnn(), rand(2, 1, 16, 16)) is None       # flatten + linear
    model, _, _ = gap_model()
    scaled = nn.Sequential(model, nn.Tanh()).eval()                        # logits not linear
    assert find_gap_head(scaled, rand(2, 3, 6, 6)) is None
    maxpool = nn.Sequential(nn.Conv2d(1, 3, 3), nn.AdaptiveMaxPool2d(1), nn.Flatten(),
                            nn.Linear(3, 2)).double().eval()              # max, not mean
    assert find_gap_head(maxpool, rand(2, 1, 6, 6)) is None


def test_gap_cam_is_the_class_activation_map_and_sums_to_the_logit():
    from attacks.interpret import gap_cam
    net = FunctionalGap().double().eval()
    x = rand(3, 1, 8, 8)
    classes = torch.tensor([2, 0, 1])
    small = gap_cam(net, x, classes, upsample=False)
    features = lambda v: net.features((v - 0.5) / 0.25)
    torch.testing.assert_close(small, class_activation_map(features, net.classifier, x, classes,
                                                           upsample=False))
    # mean_{u,v} CAM_c + b_c = Z_c: the identity that makes CAM an explanation of the logit
    z = net(x).gather(1, classes.view(-1, 1)).squeeze(1)
    torch.testing.assert_close(small.mean(dim=(1, 2)) + net.classifier.bias[classes], z)
    assert gap_cam(net, x, classes).shape == (3, 8, 8)
    with pytest.raises(ValueError, match="GAP head"):
        gap_cam(relu_cnn(), rand(1, 1, 16, 16), 0)


# ----------------------------------------------------------------- report (explain)


def test_report_on_a_gap_model_writes_files_and_chunking_does_not_matter(tmp_path):
    import json

    from attacks.interpret.report import Comparison, compute_maps, map_settings, write_report
    net = FunctionalGap().double().eval()
    x0 = rand(5, 1, 8, 8)
    labels, targets = torch.tensor([0, 1, 2, 0, 1]), torch.tensor([1, 2, 0, 2, 0])
    scores = adversarial_saliency_map(net, x0, labels, targets)
    inside = scores * (scores > 0)                    # δ on the ASM support only: IS_ASM = 1
    comp = Comparison(x0, labels, targets, torch.arange(5),
                      {"in": inside, "spread": torch.ones_like(x0)},
                      {"in": torch.tensor([True] * 4 + [False]), "spread": torch.ones(5).bool()})
    settings = map_settings(net, x0, ["asm", "cam-true", "gradcam-target"])
    whole = compute_maps(net, comp, ["cam-true", "gradcam-target"], settings)
    chunked = compute_maps(net, comp, ["cam-true", "gradcam-target"], settings, batch_size=2)
    for m in whole:
        torch.testing.assert_close(whole[m], chunked[m])
    s = write_report(tmp_path, net, comp, maps=["asm", "cam-true"], nus=[0, 50],
                     figures=2, extra={"note": "toy"})
    assert s["counted"] == 4 and s["note"] == "toy"
    assert s["mean_is"]["asm"]["in"][0] == pytest.approx(1.0)
    d = s["paired"]["asm"]["spread - in"]
    assert d["examples"] == 4 and d["fraction_higher"][0] == 0.0 and d["mean"][0] < 0
    assert s["map_settings"] == {"cam_features": "output of features.4",
                                 "cam_classifier": "classifier"}
    assert json.loads((tmp_path / "summary.json").read_text())["counted"] == 4
    for name in ("is_curve.csv", "is_per_example.csv", "is_curve.png",
                 "figures/example-0000.png", "figures/example-0001.png"):
        assert (tmp_path / name).is_file(), name
    with pytest.raises(ValueError, match="GAP head"):
        map_settings(relu_cnn(), rand(1, 1, 16, 16), ["cam-true"])


def test_example_figure_without_cam_maps(tmp_path):
    from attacks.interpret.figures import plot_example
    p = plot_example(tmp_path / "ex.png", rand(1, 8, 8), rand(1, 8, 8),
                     {"a": rand(1, 8, 8, seed=3) - 0.5, "failed": torch.zeros(1, 8, 8, dtype=D)},
                     label=0, target=1)
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
