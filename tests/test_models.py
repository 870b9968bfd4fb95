"""attacks.models: zoo models (real accuracy on real images), Keras conversion, user models."""

from __future__ import annotations

import json
import pickle
import re
import textwrap
import warnings
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from attacks.data import load_dataset
from attacks.models import (
    ImageClassifier,
    Normalize,
    check_model_output,
    cifar_cw,
    keras_h5_path,
    list_models,
    load_model,
    model_info,
)
from attacks import training
from attacks.models import export_keras
from attacks.models.defences import accuracy
from attacks.models.files import ExportedModel


@pytest.fixture(scope="module")
def mnist_model():
    return load_model("mnist-cw")


@pytest.fixture(scope="module")
def cifar_model():
    return load_model("cifar10-cnn")


def test_list_models_metadata():
    infos = {i.name: i for i in list_models()}
    assert {"mnist-cw", "mnist-gap", "mnist-lenet", "mnist-mlp", "cifar10-cnn", "cifar10-cw"} <= set(infos)
    assert infos["mnist-cw"].input_shape == (1, 28, 28) and infos["mnist-cw"].num_classes == 10
    assert infos["cifar10-cnn"].input_shape == (3, 32, 32) and infos["cifar10-cnn"].class_names[0] == "airplane"
    assert set(infos["mnist-cw"].accuracy) == {"mnist-heldout", "mnist-test20"}
    assert all(i.weights and i.license and i.architecture for i in infos.values())
    with pytest.raises(ValueError, match="unknown model"):
        model_info("resnet-9000")


def _frozen_eval(model):
    return not model.training and all(not p.requires_grad for p in model.parameters())


def test_mnist_cw_accuracy_on_real_digits(mnist_model):
    assert _frozen_eval(mnist_model)
    x, y = load_dataset("mnist-test20")
    acc20 = accuracy(mnist_model, x, y)
    xh, yh = load_dataset("mnist-heldout")
    acc_heldout = accuracy(mnist_model, xh, yh)
    assert acc20 >= 0.95
    assert acc_heldout >= 0.98
    recorded = model_info("mnist-cw").accuracy
    assert acc20 == pytest.approx(recorded["mnist-test20"], abs=0.051)
    assert acc_heldout == pytest.approx(recorded["mnist-heldout"], abs=0.003)


@pytest.mark.parametrize("name", [i.name for i in list_models() if i.accuracy])
def test_zoo_accuracy_is_as_recorded(name):
    """Every shipped model loads and re-measures its recorded accuracy (at most two images
    of a data set may flip, for other torch builds)."""
    model = load_model(name)
    assert _frozen_eval(model)
    for dataset, recorded in model_info(name).accuracy.items():
        x, y = load_dataset(dataset)
        assert accuracy(model, x, y) == pytest.approx(recorded, abs=2 / len(y) + 1e-9), dataset


def test_mnist_gap_is_a_cam_network():
    """logits = classifier(mean_uv features(x)): the mean over (u, v) of the class activation
    map plus the bias is the logit, and features() takes the [0, 1] images as they are."""
    model = load_model("mnist-gap")
    assert model.input_shape == (1, 28, 28)
    net = model.net
    assert isinstance(net.classifier, nn.Linear) and net.classifier.in_features == 128
    x, _ = load_dataset("mnist-test20", n=4)
    f = net.features(x)
    assert f.shape == (4, 128, 7, 7) and (f >= 0).all()
    cam = torch.einsum("ck,bkhw->bchw", net.classifier.weight, f)
    assert torch.allclose(cam.mean(dim=(2, 3)) + net.classifier.bias, model(x), atol=1e-4)


def test_cifar10_cnn_accuracy_on_real_images(cifar_model):
    assert _frozen_eval(cifar_model)
    x, y = load_dataset("cifar10-test20")
    logits = cifar_model(x)
    assert logits.shape == (20, 10)
    assert (logits.argmax(1) == y).float().mean().item() >= 0.9


def test_zoo_models_give_input_gradients(mnist_model):
    x = load_dataset("mnist-test20", n=2)[0].requires_grad_(True)
    mnist_model(x).logsumexp(1).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def _keras_reference(x_nhwc: np.ndarray, path) -> np.ndarray:
    """Independent NumPy forward pass of the Keras model, read straight from the .h5 (NHWC)."""
    with h5py.File(path, "r") as f:
        w = f["model_weights"]

        def get(layer, p):
            return np.array(w[layer][layer][p + ":0"], dtype=np.float64)

        h = x_nhwc.astype(np.float64)
        for i in range(6):
            conv = "conv2d" if i == 0 else f"conv2d_{i}"
            bn = "batch_normalization" if i == 0 else f"batch_normalization_{i}"
            k, b = get(conv, "kernel"), get(conv, "bias")
            oh, ow = h.shape[1] - 2, h.shape[2] - 2
            out = sum(h[:, di:di + oh, dj:dj + ow, :] @ k[di, dj] for di in range(3) for dj in range(3)) + b
            out = np.maximum(out, 0)
            out = get(bn, "gamma") * (out - get(bn, "moving_mean")) / np.sqrt(get(bn, "moving_variance") + 1e-3) + get(bn, "beta")
            if i in (1, 3):
                n, hh, ww, c = out.shape
                out = out[:, : hh // 2 * 2, : ww // 2 * 2].reshape(n, hh // 2, 2, ww // 2, 2, c).max(axis=(2, 4))
            h = out
        h = h.reshape(len(h), -1)
        h = np.maximum(h @ get("dense", "kernel") + get("dense", "bias"), 0)
        h = np.maximum(h @ get("dense_1", "kernel") + get("dense_1", "bias"), 0)
        return h @ get("dense_2", "kernel") + get("dense_2", "bias")


def test_keras_conversion_matches_a_numpy_reference(cifar_model):
    x, _ = load_dataset("cifar10-test20", n=3)
    ref = _keras_reference((x * 255).permute(0, 2, 3, 1).numpy(), keras_h5_path())
    got = cifar_model(x).double().numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-3)


def test_keras_conversion_command_and_weights_override(tmp_path, cifar_model):
    out = tmp_path / "cifar10_cnn.pt"
    export_keras.main(["--out", str(out)])
    x, _ = load_dataset("cifar10-test20", n=4)
    for weights in (out, keras_h5_path()):
        assert torch.allclose(load_model("cifar10-cnn", weights=weights)(x), cifar_model(x), atol=1e-5)
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="not an HDF5 file"):
        load_model("cifar10-cnn", weights=tmp_path / "bad.h5")


def test_cifar10_cw_needs_weights(tmp_path):
    with pytest.raises(ValueError, match="ships without weights.*attacks.training cifar10-cw"):
        load_model("cifar10-cw")
    torch.save(cifar_cw().state_dict(), tmp_path / "w.pt")
    model = load_model("cifar10-cw", weights=tmp_path / "w.pt")
    assert model(torch.rand(3, 3, 32, 32)).shape == (3, 10)
    with pytest.raises(ValueError, match="do not fit the model"):
        load_model("mnist-cw", weights=tmp_path / "w.pt")


# ---------------------------------------------------------------------- user models


class _Tiny(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.fc = nn.Linear(28 * 28, classes)

    def forward(self, x):
        return self.fc(x.flatten(1))


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")  # TorchScript is deprecated in torch >= 2.10
def test_torchscript_model(tmp_path):
    net = _Tiny()
    for suffix in (".pt", ".ts"):
        path = tmp_path / f"tiny{suffix}"
        torch.jit.save(torch.jit.script(net), path)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # torch.jit.load's deprecation notice is ours to mute
            model = load_model(path, input_shape=(1, 28, 28), num_classes=10)
        x = torch.rand(5, 1, 28, 28)
        assert torch.allclose(model(x), net(x)) and _frozen_eval(model)
    with pytest.raises(ValueError, match=r"output has shape \(2, 10\).*\(2, 7\)"):
        load_model(tmp_path / "tiny.pt", input_shape=(1, 28, 28), num_classes=7)
    with pytest.raises(ValueError, match="failed on a dummy input"):
        load_model(tmp_path / "tiny.pt", input_shape=(3, 32, 32))
    with pytest.raises(ValueError, match="weights= applies"):
        load_model(tmp_path / "tiny.pt", weights=tmp_path / "tiny.pt")


def _export(net: nn.Module, path: Path) -> Path:
    """The docs' recipe: a program with a dynamic batch dimension."""
    batch = torch.export.Dim("batch")
    program = torch.export.export(net.eval(), (torch.rand(2, 1, 28, 28),),
                                  dynamic_shapes=({0: batch},))
    torch.export.save(program, path)
    return path


def test_export_program_model(tmp_path):
    net = _Tiny()
    for name in ("tiny.pt2", "tiny.pt"):  # recognised by its content, not its suffix
        path = _export(net, tmp_path / name)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no deprecation (or other) notice on loading
            model = load_model(path, input_shape=(1, 28, 28), num_classes=10)
        assert isinstance(model, ExportedModel) and _frozen_eval(model)
        for b in (1, 5):  # any batch size
            x = torch.rand(b, 1, 28, 28)
            assert torch.allclose(model(x), net(x), atol=1e-6)
    assert model.train() is model and model.training  # a flag only: the program is fixed
    assert torch.allclose(model(x), net(x), atol=1e-6)
    with pytest.raises(ValueError, match=r"output has shape \(2, 10\).*\(2, 7\)"):
        load_model(path, input_shape=(1, 28, 28), num_classes=7)
    with pytest.raises(ValueError, match="weights= applies"):
        load_model(path, weights=path)


class _Payload:
    """Unpickling this creates the file ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def _tamper(src: Path, dst: Path, edit) -> Path:
    """A copy of the archive ``src`` with each member's bytes replaced by ``edit(name, data)``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info, edit(info.filename, zin.read(info.filename)))
    return dst


def _pickled_example_inputs(marker):
    payload = pickle.dumps(_Payload(marker))
    return lambda name, data: payload if "sample_inputs/" in name else data


def _pickled_weight(marker):
    def edit(name, data):
        if name.endswith("/weight_0"):
            return pickle.dumps(_Payload(marker))
        if name.endswith("_weights_config.json"):
            config = json.loads(data)
            next(iter(config["config"].values()))["use_pickle"] = True
            return json.dumps(config).encode()
        return data
    return edit


def _code_in_shape_expression(marker):
    code = f"open('{marker}', 'w')".encode()  # torch sympify()-s (evaluates) these strings
    symbol = re.compile(rb"Symbol\('s\d+', positive=True, integer=True\)")
    return lambda name, data: symbol.sub(code, data) if "/models/" in name else data


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")  # the payload
@pytest.mark.parametrize("tamper", [_pickled_example_inputs, _pickled_weight,
                                    _code_in_shape_expression])
def test_export_program_payload_does_not_run(tmp_path, tamper):
    """A crafted .pt2 whose payload torch.export.load runs: load_model refuses it unrun."""
    marker = tmp_path / "marker"
    evil = _tamper(_export(_Tiny(), tmp_path / "tiny.pt2"), tmp_path / "evil.pt2",
                   tamper(marker))
    with pytest.raises(Exception):
        torch.export.load(evil)
    assert marker.exists()  # the payload is real: torch's own loader runs it
    marker.unlink()
    with pytest.raises(ValueError, match=r"evil\.pt2.*refusing to load it"):
        load_model(evil)
    assert not marker.exists()


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")  # TorchScript is deprecated in torch >= 2.10
def test_torchscript_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such model file"):
        load_model(tmp_path / "missing.pt")
    torch.save(_Tiny().state_dict(), tmp_path / "state.pt")
    with pytest.raises(ValueError, match="not a TorchScript archive.*package.module:factory"):
        load_model(tmp_path / "state.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="not a TorchScript archive"):
        load_model(tmp_path / "junk.pt")


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_models.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn

        class Tiny(nn.Module):
            input_shape = (1, 28, 28)

            def __init__(self, classes=10):
                super().__init__()
                self.fc = nn.Linear(28 * 28, classes)

            def forward(self, x):
                return self.fc(x.flatten(1))

        def make():
            return Tiny()

        def make_wide():
            return Tiny(12)

        def make_tuple():
            class T(Tiny):
                def forward(self, x):
                    return (super().forward(x),)
            return T()

        def make_not_a_module():
            return 42
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_models"
    import sys

    sys.modules.pop("my_models", None)


def test_factory_with_state_dict(tmp_path, user_module):
    import my_models

    ref = my_models.make()
    torch.save(ref.state_dict(), tmp_path / "w.pt")
    model = load_model("my_models:make", weights=tmp_path / "w.pt", num_classes=10)
    x = torch.rand(4, 1, 28, 28)
    assert torch.allclose(model(x), ref(x)) and _frozen_eval(model)
    torch.save({"state_dict": ref.state_dict()}, tmp_path / "ckpt.pt")
    assert torch.allclose(load_model("my_models:make", weights=tmp_path / "ckpt.pt")(x), ref(x))
    # mean/std put normalisation in front of the user's model
    wrapped = load_model("my_models:make", weights=tmp_path / "w.pt", mean=0.5, std=0.25)
    assert isinstance(wrapped, ImageClassifier)
    assert torch.allclose(wrapped(x), ref((x - 0.5) / 0.25), atol=1e-6)


def test_factory_errors(tmp_path, user_module):
    import my_models

    with pytest.raises(FileNotFoundError, match="weights file not found"):
        load_model("my_models:make", weights=tmp_path / "missing.pt")
    torch.save({"model": my_models.make()}, tmp_path / "pickled.pt")  # a whole module: refused
    with pytest.raises(ValueError, match=r"weights_only=True"):
        load_model("my_models:make", weights=tmp_path / "pickled.pt")
    (tmp_path / "corrupt.pt").write_bytes(b"PK\x03\x04broken")
    with pytest.raises(ValueError, match=r"weights_only=True"):
        load_model("my_models:make", weights=tmp_path / "corrupt.pt")
    torch.save({"fc.weight": torch.zeros(3, 3)}, tmp_path / "wrong.pt")
    with pytest.raises(ValueError, match="do not fit the model"):
        load_model("my_models:make", weights=tmp_path / "wrong.pt")
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="does not hold a state_dict"):
        load_model("my_models:make", weights=tmp_path / "list.pt")
    with pytest.raises(ValueError, match=r"expected \(B, num_classes\) = \(2, 10\)"):
        load_model("my_models:make_wide", num_classes=10)  # input_shape from the model attribute
    with pytest.raises(ValueError, match="returned tuple"):
        load_model("my_models:make_tuple")
    with pytest.raises(ValueError, match="expected a torch.nn.Module"):
        load_model("my_models:make_not_a_module")
    with pytest.raises(ValueError, match="has no callable 'nope'"):
        load_model("my_models:nope")
    with pytest.raises(ValueError, match="cannot import module"):
        load_model("no_such_module_xyz:make")
    with pytest.raises(ValueError, match="mean=/std= apply to user models"):
        load_model("mnist-cw", mean=0.5)


def test_check_model_output_direct():
    check_model_output(_Tiny(), (1, 28, 28), 10)
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        check_model_output(_Tiny(), (1, 28, 28), 3)
    with pytest.raises(ValueError, match=r"output has shape \(2, 1, 10\)"):
        check_model_output(nn.Sequential(_Tiny(), nn.Unflatten(1, (1, 10))), (1, 28, 28), 10)


def test_normalize_and_image_classifier():
    norm = Normalize((0.5, 0.25, 0.0), (0.5, 0.5, 2.0))
    x = torch.rand(2, 3, 4, 4)
    expected = (x - torch.tensor([0.5, 0.25, 0.0]).view(1, 3, 1, 1)) / torch.tensor([0.5, 0.5, 2.0]).view(1, 3, 1, 1)
    assert torch.allclose(norm(x), expected)
    clf = ImageClassifier(nn.Flatten(), 0.5, 2.0, input_shape=(3, 4, 4), num_classes=48)
    assert torch.allclose(clf(x), ((x - 0.5) / 2).flatten(1))
    assert list(clf.state_dict()) == []  # the constants are not weights
    with pytest.raises(ValueError, match="non-zero"):
        Normalize(0.0, 0.0)


# ---------------------------------------------------------------------- training (smoke only)


def test_training_smoke_is_deterministic():
    x, y = load_dataset("mnist-train4k", n=64)
    kwargs = dict(epochs=1, batch_size=32, lr=1e-3, seed=3, max_steps=2, log=None)
    a = training.train_classifier("mnist-cw", x, y, **kwargs)
    b = training.train_classifier("mnist-cw", x, y, **kwargs)
    assert a(x[:5]).shape == (5, 10) and not a.training
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    with pytest.raises(ValueError, match="expects images of shape"):
        training.train_classifier("cifar10-cw", x, y, **kwargs)


def test_train_command_writes_loadable_weights(tmp_path, capsys):
    out = tmp_path / "w.pt"
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        summary = training.main(["mnist-cw", "--out", str(out), "--epochs", "1", "--limit", "32",
                                 "--batch-size", "32", "--threads", "1"])
    finally:  # main() sets both for the whole process
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    assert summary["train_images"] == 32 and set(summary["accuracy"]) == {"mnist-heldout", "mnist-test20"}
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["sha256"] == summary["sha256"]
    assert load_model("mnist-cw", weights=out)(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_cifar10_cnn_without_the_wheel_says_how_to_fetch(tmp_path, monkeypatch):
    from attacks.data import wheels

    monkeypatch.setattr(wheels, "wheel_dirs", lambda: [tmp_path])
    monkeypatch.setattr(wheels, "_installed_site", lambda w: None)
    with pytest.raises(FileNotFoundError, match=r"model 'cifar10-cnn' needs the cifar-10-model==7.4.0 "
                       r"wheel .*python -m attacks.data.fetch$"):
        load_model("cifar10-cnn")
