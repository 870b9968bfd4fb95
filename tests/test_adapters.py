"""The adapters against the real torchattacks 3.5.1, foolbox 3.3.4 and ART 1.20.1 (from
.cache/compat, see the ``compat`` and ``art`` fixtures), saved results, DataLoader input,
defaults and progress."""

import io
import json
import sys
import types

import benchutil
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from attacks import CWL2, FGM, Attack, AttackResult, Refine, StrAttack, progress
from attacks.base import DEFAULT_BATCH_SIZE
from attacks.adapters import ArtAttack, FoolboxAttack, TorchattacksAdapter
from attacks.data import load_dataset
from attacks.grid import on_grid
from attacks.models import load_model
from attacks.runtime import TORCH_DEFAULT_THREADS
from attacks.spec import SearchSpec

SEARCH = SearchSpec(iterations=20, rescue_iterations=0)
TINY = dict(search=SEARCH, refine=False)
MEAN, STD = 0.1307, 0.3081


@pytest.fixture(scope="module")
def mnist():
    model = load_model("mnist-cw")
    x, y = load_dataset("mnist-test20", n=4)
    return model, x, y


class ExpectsNormalised(nn.Module):
    """A user's model that takes ``(x − mean) / std``, not [0, 1] images."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, z):
        return self.net(z * STD + MEAN)


def robust_accuracy(atk, loader, model):
    """An evaluation loop as written for ``torchattacks.CW``: one line differs between runs."""
    correct = total = 0
    advs = []
    for images, labels in loader:
        adv = atk(images, labels)
        correct += (model(adv).argmax(1) == labels).sum().item()
        total += len(labels)
        advs.append(adv)
    return correct / total, torch.cat(advs)


# -- torchattacks -------------------------------------------------------------------------------
def test_torchattacks_loop_runs_unchanged_with_strattack(compat, mnist):
    model, x, y = mnist
    loader = DataLoader(TensorDataset(x, y), batch_size=2)
    theirs_acc, theirs = robust_accuracy(compat.torchattacks.CW(model, c=1, steps=5), loader,
                                         model)
    atk = TorchattacksAdapter(StrAttack(model, **TINY))
    acc, ours = robust_accuracy(atk, loader, model)
    assert type(ours) is type(theirs) and ours.shape == theirs.shape == x.shape
    assert ours.dtype == theirs.dtype and ours.device == theirs.device
    fooled = model(ours).argmax(1) != y
    assert acc == pytest.approx(1 - fooled.float().mean().item())
    assert acc < theirs_acc or theirs_acc == 0  # C&W at 5 steps fools none of these
    clean = (ours == x).flatten(1).all(1)
    assert (fooled | clean).all()  # failures come back as the clean image, as torchattacks does


def test_targeted_modes_follow_torchattacks(compat, mnist):
    model, x, y = mnist
    atk = TorchattacksAdapter(StrAttack(model, **TINY))
    theirs = compat.torchattacks.CW(model)
    theirs.set_mode_targeted_least_likely(kth_min=2, quiet=True)
    atk.set_mode_targeted_least_likely(kth_min=2, quiet=True)
    assert atk.get_mode() == theirs.get_mode() == "targeted(least-likely)" and atk.targeted
    adv = atk(x, y)
    assert torch.equal(atk.last_result.targets, theirs.get_least_likely_label(x, y))
    ok = atk.last_result.success
    assert ok.any() and (model(adv).argmax(1)[ok] == atk.last_result.targets[ok]).all()

    atk.set_mode_targeted_by_label(quiet=True)
    t = (y + 3) % 10
    adv = atk(x, t)
    hit = model(adv).argmax(1) == t
    assert hit.any() and ((adv == x).flatten(1).all(1) | hit).all()

    atk.set_mode_targeted_random(quiet=True)
    torch.manual_seed(5)
    atk(x, y)
    first = atk.last_result.targets.clone()
    torch.manual_seed(5)
    atk(x, y)
    assert torch.equal(first, atk.last_result.targets) and (first != y).all()
    atk.set_mode_default(quiet=True)
    atk(x, y)
    assert atk.get_mode() == "default" and not atk.last_result.targeted.any()


def test_normalisation_used_takes_and_returns_normalised_tensors(compat, mnist):
    net, x, y = mnist
    model = ExpectsNormalised(net).eval()
    z = (x - MEAN) / STD
    atk = TorchattacksAdapter(StrAttack(model, **TINY))
    atk.set_normalization_used(mean=[MEAN], std=[STD])
    adv_z = atk(z, y)
    theirs = compat.torchattacks.CW(model, steps=2)
    theirs.set_normalization_used(mean=[MEAN], std=[STD])
    theirs_z = theirs(z, y)
    for out in (adv_z, theirs_z):  # both normalised: back in [0, 1] after inverting
        x01 = out * STD + MEAN
        assert x01.min() >= -1e-5 and x01.max() <= 1 + 1e-5 and out.min() < -0.1
    # the same [0, 1] images the adapter attacks (z de-normalised differs from x by rounding,
    # and an attack's path may amplify a rounding difference)
    python = StrAttack(model, normalize=(MEAN, STD), **TINY)((z * STD + MEAN).clamp(0, 1), y)
    assert torch.allclose(adv_z * STD + MEAN, python.adversarial, atol=1e-5)
    assert (model(adv_z).argmax(1) != y).sum() == int(python.success.sum()) > 0
    with pytest.raises(ValueError, match="already normalises"):
        TorchattacksAdapter(StrAttack(model, normalize=(MEAN, STD))).set_normalization_used(
            [MEAN], [STD])


def test_save_writes_torchattacks_file_layout(compat, mnist, tmp_path):
    model, x, y = mnist
    loader = DataLoader(TensorDataset(x, y), batch_size=2)
    kw = dict(verbose=True, save_predictions=True, save_clean_inputs=True)  # 3.5.1 computes
    for save_type in ("float", "int"):                                    # preds only verbose
        compat.torchattacks.CW(model, steps=1).save(loader, tmp_path / "theirs.pt",
                                                    save_type=save_type, **kw)
        atk = TorchattacksAdapter(StrAttack(model, **TINY))
        atk.save(loader, tmp_path / "ours.pt", save_type=save_type, **kw)
        theirs, ours = (torch.load(tmp_path / f"{n}.pt") for n in ("theirs", "ours"))
        assert ours.keys() == theirs.keys() and ours["save_type"] == save_type
        for k in ("adv_inputs", "labels", "preds", "clean_inputs"):
            assert ours[k].dtype == theirs[k].dtype and ours[k].shape == theirs[k].shape
    # torchattacks reads our file back
    adv, labels, preds, clean = next(iter(compat.torchattacks.attack.Attack.load(
        tmp_path / "ours.pt", batch_size=4, load_predictions=True, load_clean_inputs=True)))
    assert torch.equal(labels, y) and torch.allclose(clean, x)
    assert on_grid(adv) and torch.equal(preds, model(adv).argmax(1))  # int: 8-bit, rounded
    rob, l2, _ = atk.save(loader, None, verbose=False, return_verbose=True)
    assert rob == pytest.approx(100.0 * (preds == y).float().mean().item()) and l2 > 0


class SmallConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                                  nn.Dropout(0.1), nn.Flatten(), nn.Linear(4 * 26 * 26, 10))

    def forward(self, x):
        return self.body(x)


def modes_seen(model, attack, x, y):
    """The (model, BatchNorm, Dropout) training flags at every forward during ``attack(x, y)``."""
    seen = set()
    hook = model.register_forward_pre_hook(lambda m, _: seen.add(
        (m.training, m.body[1].training, m.body[3].training)))
    try:
        attack(x, y)
    finally:
        hook.remove()
    return seen


def test_model_training_mode_device_and_logits_follow_torchattacks(compat, mnist):
    _, x, y = mnist
    model = SmallConvNet().eval()
    ours = TorchattacksAdapter(StrAttack(model, search=SearchSpec(iterations=2,
                                                                  rescue_iterations=0),
                                         refine=False))
    theirs = compat.torchattacks.CW(model, steps=1)
    assert modes_seen(model, ours, x, y) == modes_seen(model, theirs, x, y) == {
        (False, False, False)}
    for flags in ((True, False, False), (True, False, True), (True, True, False)):
        ours.set_model_training_mode(*flags)
        theirs.set_model_training_mode(*flags)
        seen = modes_seen(model, ours, x, y)
        assert not any(m.training for m in model.modules())  # ours gives the modes back
        assert seen == modes_seen(model, theirs, x, y) == {flags}
        model.eval()  # torchattacks leaves the model in training mode
    ours.set_model_training_mode()
    assert modes_seen(model, ours, x, y) == {(False, False, False)}

    for atk in (ours, theirs):
        assert atk.device == torch.device("cpu")
        atk.set_device("cpu")
        assert atk.device == "cpu" and atk(x, y).device == x.device
    net = ExpectsNormalised(mnist[0]).eval()
    z = (x - MEAN) / STD
    ours, theirs = TorchattacksAdapter(StrAttack(net, **TINY)), compat.torchattacks.CW(net)
    assert torch.equal(ours.get_logits(z), theirs.get_logits(z))
    for atk in (ours, theirs):  # normalised inputs go to the model as they are
        atk.set_normalization_used(mean=[MEAN], std=[STD])
    assert torch.equal(ours.get_logits(z), theirs.get_logits(z))
    assert torch.equal(ours.get_logits(z), net(z))


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")  # TorchScript on purpose
def test_torchscript_model_with_normalize(mnist, tmp_path):
    net, x, y = mnist
    path = tmp_path / "user.pt"
    torch.jit.trace(ExpectsNormalised(net).eval(), (x - MEAN) / STD).save(str(path))
    scripted = torch.jit.load(str(path))
    a = StrAttack(scripted, normalize=(MEAN, STD), **TINY)(x, y)
    b = StrAttack(ExpectsNormalised(net), normalize=(MEAN, STD), **TINY)(x, y)
    assert a.success.any() and torch.allclose(a.adversarial, b.adversarial, atol=1e-5)


# -- foolbox ------------------------------------------------------------------------------------
def test_foolbox_call_works_with_one_changed_line(compat, mnist):
    fb = compat.foolbox
    model, x, y = mnist
    fmodel = fb.PyTorchModel(model, bounds=(0, 1))
    criterion = fb.criteria.Misclassification(y)
    outputs = {}
    for name, attack in (("theirs", fb.attacks.L2CarliniWagnerAttack(binary_search_steps=1,
                                                                      steps=5)),
                         ("ours", FoolboxAttack(StrAttack, **TINY))):
        outputs[name] = attack(fmodel, x, criterion, epsilons=[1.0, None])
    (raw, clipped, success), (raw_t, clipped_t, success_t) = outputs["ours"], outputs["theirs"]
    assert len(raw) == len(raw_t) == len(clipped) == len(clipped_t) == 2
    assert success.shape == success_t.shape == (2, 4) and success.dtype == success_t.dtype
    assert raw[0].shape == raw_t[0].shape and type(raw[0]) is type(raw_t[0])
    assert torch.equal(clipped[1], raw[1])  # ε = None: no clipping
    assert ((clipped[0] - x).flatten(1).norm(dim=1) <= 1.0 + 1e-5).all()
    for c, s in zip(clipped, success):  # success is foolbox's own criterion on clipped
        assert torch.equal(s, criterion(c, fmodel(c)))
    assert success[1].any()
    raw1, clipped1, success1 = FoolboxAttack(StrAttack, **TINY)(fmodel, x, y, epsilons=None)
    assert success1.shape == (4,) and torch.equal(raw1, raw[0])  # a labels tensor: untargeted


def test_foolbox_bounds_and_preprocessing_are_honoured(compat, mnist):
    fb = compat.foolbox
    net, x, y = mnist
    model = ExpectsNormalised(net).eval()
    t = (y + 1) % 10
    target = fb.criteria.TargetedMisclassification(t)
    attack = FoolboxAttack(CWL2, search=SEARCH)
    f01 = fb.PyTorchModel(model, bounds=(0, 1), preprocessing=dict(mean=[MEAN], std=[STD],
                                                                   axis=-3))
    f255 = fb.PyTorchModel(model, bounds=(0, 255), preprocessing=dict(
        mean=[255 * MEAN], std=[255 * STD], axis=-3))
    raw01, _, ok01 = attack(f01, x, target, epsilons=None)
    raw255, _, ok255 = attack(f255, x * 255, target, epsilons=None)
    python = CWL2(model, normalize=(MEAN, STD), search=SEARCH)(x, y, t)
    assert ok01.any() and torch.equal(ok01, ok255) and torch.equal(ok01, python.success)
    assert torch.allclose(raw255 / 255, raw01, atol=1e-4)
    assert torch.allclose(raw01, python.adversarial, atol=1e-5)
    assert (f255(raw255).argmax(1)[ok255] == t[ok255]).all()
    assert raw255.max() > 1 and ((raw255 == x * 255) | (raw01 != x)).all()  # zeros stay exact


def test_foolbox_refuses_what_it_cannot_attack(compat, mnist):
    fb = compat.foolbox
    model, x, y = mnist
    fmodel = fb.PyTorchModel(model, bounds=(0, 1))
    attack = FoolboxAttack(StrAttack, **TINY)
    with pytest.raises(ValueError, match="bounds"):
        attack(fmodel, x * 255, y, epsilons=None)
    with pytest.raises(TypeError, match="criterion"):
        attack(fmodel, x, "labels", epsilons=None)
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        attack(fmodel, x, fb.criteria.Misclassification(y[:2]), epsilons=None)
    with pytest.raises(TypeError, match="FoolboxAttack"):
        StrAttack(fmodel)
    assert attack.distance is fb.distances.l2


# -- ART ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def art():
    """The Adversarial Robustness Toolbox from .cache/compat, imported as ``compat`` imports
    the other two; skips when absent."""
    with benchutil.compat_libraries(versions={"art": "1.20.1"}) as (libs, why):
        if libs is None:
            pytest.skip(why)
        yield libs.art


def art_classifier(art, net, scale=1.0):
    """A ``PyTorchClassifier`` of a model that expects normalised inputs, on [0, scale]."""
    return art.estimators.classification.PyTorchClassifier(
        model=ExpectsNormalised(net).eval(), loss=nn.CrossEntropyLoss(), input_shape=(1, 28, 28),
        nb_classes=10, clip_values=(0.0, scale), preprocessing=(scale * MEAN, scale * STD))


def test_art_generate_swaps_for_an_art_attack(art, mnist):
    net, x, y = mnist
    classifier = art_classifier(art, net)
    xs = x.numpy()
    theirs = art.attacks.evasion.CarliniL2Method(classifier, max_iter=2,
                                                  binary_search_steps=1).generate(xs)
    attack = ArtAttack(classifier, StrAttack, **TINY)
    ours = attack.generate(xs)
    assert type(ours) is type(theirs) and ours.shape == theirs.shape and ours.dtype == theirs.dtype
    predicted = torch.from_numpy(classifier.predict(xs).argmax(1))
    python = StrAttack(ExpectsNormalised(net), normalize=(MEAN, STD), **TINY)(x, predicted)
    assert np.allclose(ours, python.adversarial.numpy(), atol=1e-6)  # y=None: the predictions
    fooled = classifier.predict(ours).argmax(1) != predicted.numpy()
    assert fooled.any() and np.array_equal(fooled, python.success.numpy())
    assert ((ours == xs).reshape(4, -1).all(1) | fooled).all()  # failures: the input itself


def test_art_targeted_clip_values_and_dtype(art, mnist):
    net, x, y = mnist
    t = ((y + 1) % 10).numpy()
    one_hot = np.eye(10, dtype=np.float32)[t]
    c01, c255 = art_classifier(art, net), art_classifier(art, net, 255.0)
    art.attacks.evasion.CarliniL2Method(c01, targeted=True, max_iter=1).generate(
        x.numpy(), y=one_hot)  # the call ours takes the place of
    attack = ArtAttack(c01, CWL2, targeted=True, search=SEARCH)
    adv01 = attack.generate(x.numpy(), y=one_hot)
    assert np.array_equal(adv01, attack.generate(x.numpy(), y=t))  # indices as one-hot
    hit = c01.predict(adv01).argmax(1) == t
    assert hit.any() and np.array_equal(hit, attack.last_result.success.numpy())
    x255 = x.double().numpy() * 255
    adv255 = ArtAttack(c255, CWL2, targeted=True, search=SEARCH).generate(x255, y=t)
    assert adv255.dtype == np.float64 and adv255.max() > 1 and adv255.max() <= 255
    assert np.allclose(adv255 / 255, adv01, atol=1e-4)
    assert ((adv255 == x255) | (adv01 != x.numpy())).all()  # untouched pixels exact
    with pytest.raises(ValueError, match="y .* required"):
        attack.generate(x.numpy())
    with pytest.raises(ValueError, match="clip_values"):
        attack.generate(x255)
    with pytest.raises(ValueError, match="class indices"):
        attack.generate(x.numpy(), y=t[:2])


# -- saved results ------------------------------------------------------------------------------
def test_save_load_round_trip_and_cli_readers(mnist, tmp_path):
    from attacks.runs.outputs import csv_bytes, result_arrays, to_result
    from attacks.store import RunDir
    model, x, y = mnist
    r = CWL2(model, search=SEARCH)(x[:3], y[:3], targets="random")
    r.save(tmp_path / "res")
    back = AttackResult.load(tmp_path / "res")
    assert back.equals(r) and not back.equals(CWL2(model, search=SEARCH)(x[:3], y[:3]))
    arrays = RunDir(tmp_path / "res").examples()  # what experiments read back
    assert to_result(arrays, r.attack, grid=r.grid).equals(r)
    (tmp_path / "cli.csv").write_bytes(csv_bytes(result_arrays(r)))
    assert (tmp_path / "cli.csv").read_bytes() == (tmp_path / "res" / "metrics.csv").read_bytes()
    with np.load(tmp_path / "res" / "adversarial.npz") as z:
        assert np.allclose(z["original"], x[:3].numpy(), atol=1e-6)
    summary = json.loads((tmp_path / "res" / "summary.json").read_text())
    assert summary["attack"] == "cw-l2" and summary["examples"] == 3 and summary["grid"] is True


def test_cli_run_directory_loads_equal_to_the_python_result(mnist, tmp_path):
    from cli.options import RunOptions
    from cli.solve import solve
    from attacks.catalogue import load_spec
    model, x, y = mnist
    sets = ["search.binary.steps=2", "search.iterations=15", "search.rescue_iterations=0"]
    run = RunOptions(model="mnist-cw", data="mnist-test20", out=tmp_path / "run", n=3,
                     device="cpu", batch_size=16, seed=0, quiet=True)
    solve(run, spec="cw-l2", sets=sets, targets="random", figures=0)
    cli = AttackResult.load(tmp_path / "run")
    python = Attack(model, load_spec("cw-l2", sets).spec, seed=0)(x[:3], y[:3], "random")
    assert cli.equals(python)
    with pytest.raises(ValueError, match="CLI run"):
        python.save(tmp_path / "run")


# -- DataLoader input, defaults, progress -------------------------------------------------------
def test_run_on_loader_and_dataset_equals_tensor_call(mnist):
    model, x, y = mnist
    attack = StrAttack(model, **TINY)
    direct = StrAttack(model, batch_size=3, **TINY)(x, y, "random")
    via_loader = attack.run(DataLoader(TensorDataset(x, y), batch_size=3), "random")
    via_dataset = StrAttack(model, batch_size=3, **TINY).run(TensorDataset(x, y), "random")
    assert via_loader.equals(direct) and via_dataset.equals(direct)
    with pytest.raises(ValueError, match=r"batch 0 must be an \(images, labels\) pair"):
        attack.run([x])
    with pytest.raises(TypeError, match="call the attack"):
        attack.run(x)


def test_defaults_untargeted_and_grid_only_for_8_bit_images(mnist):
    model, x, y = mnist
    on = CWL2(model, search=SEARCH)(x[:2], y[:2])
    assert not on.targeted.any() and on.grid and on_grid(on.adversarial)
    off = CWL2(model, search=SEARCH)((x[:2] * 0.9 + 0.05 + 1e-3).clamp(0, 1), y[:2])
    assert not off.grid and not on_grid(off.adversarial[off.success])
    assert not CWL2(model, search=SEARCH, grid=False)(x[:2], y[:2]).grid
    with pytest.raises(ValueError, match="grid must be"):
        CWL2(model, grid="auto")(x[:2], y[:2])


def test_progress_callback_and_verbose_bar(mnist, capsys):
    model, x, y = mnist
    seen = []
    StrAttack(model, batch_size=2, progress=lambda d, t, p: seen.append((d, t, len(p))),
              **TINY)(x, y)
    assert seen == [(1, 2, 2), (2, 2, 2)]
    StrAttack(model, batch_size=2, verbose=True, **TINY)(x[:2], y[:2])
    err = capsys.readouterr().err
    assert "strattack" in err and "ASR" in err
    with pytest.raises(TypeError, match="progress must be a callable"):
        StrAttack(model, progress=True)


def test_progress_by_default_only_where_a_person_is_watching(mnist, monkeypatch):
    """``verbose=None``: a bar on an interactive stderr, none in a script; the default batch
    size splits 18 examples into two batches, so the bar advances."""
    model, x, y = mnist

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    for stream, shown in ((Terminal(), True), (io.StringIO(), False)):
        monkeypatch.setattr(sys, "stderr", stream)
        seen = []
        StrAttack(model, progress=lambda d, t, p: seen.append((d, t, len(p))),
                  **TINY)(x[:2], y[:2], "all")
        assert seen == [(1, 2, DEFAULT_BATCH_SIZE), (2, 2, 18 - DEFAULT_BATCH_SIZE)]
        assert ("ASR" in stream.getvalue()) == shown
        quiet = io.StringIO() if shown else Terminal()
        monkeypatch.setattr(sys, "stderr", quiet)
        StrAttack(model, verbose=not shown, **TINY)(x[:1], y[:1])
        assert ("ASR" in quiet.getvalue()) != shown
    with pytest.raises(ValueError, match="verbose must be"):
        StrAttack(model, verbose="yes")


def test_a_notebook_counts_as_watched(monkeypatch):
    class ZMQInteractiveShell:  # what a Jupyter kernel's get_ipython() returns
        pass

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not progress.watched()
    fake = types.ModuleType("IPython")
    fake.get_ipython = ZMQInteractiveShell
    monkeypatch.setitem(sys.modules, "IPython", fake)
    assert progress.watched()
    fake.get_ipython = lambda: None  # plain python with IPython imported
    assert not progress.watched()


# -- the thread policy -------------------------------------------------------------------------
class ThreadsSeen(nn.Module):
    """A model that records torch's thread count in every forward (and fails when asked)."""

    def __init__(self, net):
        super().__init__()
        self.net, self.seen, self.fail = net, set(), False

    def forward(self, x):
        self.seen.add(torch.get_num_threads())
        if self.fail:
            raise RuntimeError("the model failed")
        return self.net(x)


def attack_calls(x, y):
    """Every kind of our attack's call, each ``(name, call(model, **threads))``."""
    delta = torch.zeros_like(x)
    return [
        ("StrAttack", lambda m, **kw: StrAttack(m, **TINY, **kw)(x, y)),
        ("StrAttack.run", lambda m, **kw: StrAttack(m, **TINY, **kw).run(TensorDataset(x, y))),
        ("Refine", lambda m, **kw: Refine(m, iterations=5, **kw)(x, y, delta, (y + 1) % 10)),
        ("FGM", lambda m, **kw: FGM(m, search_steps=2, **kw)(x, y)),
        ("TorchattacksAdapter", lambda m, **kw: TorchattacksAdapter(CWL2(m, **TINY, **kw))(x, y)),
        ("FoolboxAttack", lambda m, **kw: FoolboxAttack(CWL2, **TINY, **kw)(m, x, y,
                                                                            epsilons=None)),
    ]


def test_every_attack_call_runs_on_the_thread_policy_and_restores_torchs(mnist, monkeypatch):
    net, x, y = mnist
    x, y = x[:1], y[:1]
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    for name, call in attack_calls(x, y):
        for kw, expected in (({}, 1), ({"threads": 2}, 2), ({"threads": 0}, TORCH_DEFAULT_THREADS)):
            model = ThreadsSeen(net)
            torch.set_num_threads(3)
            call(model, **kw)
            assert model.seen == {expected}, (name, kw)
            assert torch.get_num_threads() == 3, (name, kw)
        monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the policy's default respects it
        model = ThreadsSeen(net)
        call(model)
        assert model.seen == {2}, name
        monkeypatch.delenv("OMP_NUM_THREADS")
        model.fail = True
        with pytest.raises(Exception, match="the model failed"):  # (re-worded by the check)
            call(model)
        assert torch.get_num_threads() == 3, name
    torch.set_num_threads(1)
    with pytest.raises(ValueError, match="threads must be"):
        StrAttack(net, threads=-1)


def test_art_adapter_runs_on_the_thread_policy(art, mnist, monkeypatch):
    net, x, y = mnist
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    model = ThreadsSeen(net)
    classifier = art_classifier(art, model)
    torch.set_num_threads(3)
    try:
        ArtAttack(classifier, CWL2, **TINY).generate(x[:1].numpy())
        assert model.seen == {1} and torch.get_num_threads() == 3
        model.seen.clear()
        ArtAttack(classifier, CWL2, threads=2, **TINY).generate(x[:1].numpy())
        assert model.seen == {2} and torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(1)
