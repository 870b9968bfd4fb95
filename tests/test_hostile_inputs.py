"""Hostile and careless inputs: spec values a run cannot hold, TOML built to break the parser,
models whose outputs change shape or type mid-attack, data that leads out of its folder, and
API arguments of the wrong kind. Each is one clear line (a ``UserError`` / ``ValueError`` in
Python, ``error: ...`` and exit status 2 on the command line), never a traceback or a hang."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from attacks import CWL2
from attacks.catalogue import load_spec
from attacks.checks import ModelOutputError
from attacks.classifier import InputError
from attacks.data import load_dataset
from attacks.data.folder import load_image_folder
from attacks.models import load_model
from attacks.search_spec import SearchSpec
from attacks.spec import AttackSpec
from attacks.spec_values import FLOAT32_MAX, SpecError
from test_cli_helpers import FAST, TINY, invoke
from test_cli_helpers import assert_user_error as one_line_error

FIVE_THOUSAND_DIGITS = "9" * 5000
QUICK = SearchSpec(iterations=5, rescue_iterations=0)


def spec_text(**replace) -> str:
    text = invoke("specs", "show", "strattack").stdout
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def check(*args):
    return invoke("specs", "check", *args)


# -- spec values a run cannot hold --------------------------------------------------------------
@pytest.mark.parametrize("setting, bound", [
    ("solver.rho=1e308", "at most 3.4e+38 (float32's largest value)"),
    ("solver.rho=3e38", "at most 1.7e+38 (ρ·rho_factor (adaptive ρ) must stay finite"),
    ("solver.eta=1e37", "at most 2.41e+35 (η·√k over the longest solve must stay finite"),
    ("loss.c=1e308", "at most 3.4e+38"),
    ("loss.c=1e14", "at most 1.84e+13 (c·∇margin (margins up to 1e+06) must stay finite in "
                    "float32, squared)"),
    ("search.lagrangian.mu=1e308", "at most 3.4e+38"),
    ("search.lagrangian.mu=1e13", "at most 2.31e+12 (c's step μ·mu_growth_limit·margin"),
    ("loss.kappa=1e7", "at most 1e+06 (a margin in logits)"),
    ("terms.0.params.weight=1e39", "at most 3.4e+38"),
    ("search.binary.growth=1e39", "at most 3.4e+38"),
    ("eps=1e39", "at most 3.4e+38"),
    ("search.budget=100000000000000", "at most 10,000,000,000"),
    ("search.track_every=10000000", "at most 1,000,000"),
    ("terms.1.groups.size=9000", "at most 8,192"),
])
def test_values_that_overflow_at_run_time_are_refused_when_the_spec_is_checked(setting, bound):
    key = setting.split("=")[0].replace("terms.0.", "terms.l2.").replace(
        "terms.1.", "terms.groups.")
    one_line_error(check("strattack", "--set", setting), f"{key}: expected {bound}")


@pytest.mark.parametrize("setting", ["solver.rho=1e38", "loss.c=1.8e13", "solver.eta=2.4e35",
                                     "search.lagrangian.mu=2.3e12"])
def test_values_just_inside_the_bounds_run(tmp_path, setting):
    """At the bound a run keeps every number finite: it ends with its files and no example
    with non-finite scores or gradients."""
    r = invoke("solve", "--spec", "strattack", *FAST, *TINY, "-n", "2", "--figures", "0",
               "--set", setting, "--out", tmp_path / "run")
    assert "Traceback" not in r.output
    assert '"nonfinite": 0' in (tmp_path / "run" / "summary.json").read_text(), r.output


def test_the_bound_is_the_float32_range():
    assert FLOAT32_MAX == float(torch.finfo(torch.float32).max)
    assert torch.tensor(FLOAT32_MAX, dtype=torch.float32).isfinite()


@pytest.mark.parametrize("key", ["solver.rho", "loss.c", "search.lagrangian.mu",
                                 "terms.0.params.weight", "search.budget", "search.iterations",
                                 "refine.quantile"])
def test_a_400_digit_integer_is_refused_and_shown_short(key):
    r = check("strattack", "--set", f"{key}={'9' * 400}")
    one_line_error(r, "an integer of about 401 digits")
    assert len(r.stderr) < 400


def test_a_5000_digit_integer_is_one_line(tmp_path):
    one_line_error(check("strattack", "--set", f"solver.rho={FIVE_THOUSAND_DIGITS}"),
                   "--set solver.rho: not valid TOML", "5000 digits")
    path = tmp_path / "big.toml"
    iterations = f"iterations = {SearchSpec().iterations}"
    path.write_text(spec_text(**{iterations: f"iterations = {FIVE_THOUSAND_DIGITS}"}))
    one_line_error(check(path), str(path), "not valid TOML", "5000 digits")
    with pytest.raises(SpecError, match="5000 digits"):
        AttackSpec.from_toml(path.read_text())


@pytest.mark.parametrize("nested", [
    "zz = " + "[" * 5000 + "]" * 5000,                       # arrays: the parser's recursion
    "zz = " + "{a = " * 5000 + "1" + "}" * 5000,              # inline tables
    "[" + ".".join(["a"] * 5000) + "]\nx = 1",                # a header: parses, 5000 deep
    "[search.lagrangian." + ".".join(["a"] * 20) + "]\nx = 1",
])
def test_toml_nested_5000_deep_is_one_line(tmp_path, nested):
    path = tmp_path / "deep.toml"
    path.write_text(spec_text() + "\n" + nested + "\n")
    one_line_error(check(path), str(path), "nested deeper than 8 levels")
    with pytest.raises(SpecError, match="nested deeper than 8 levels"):
        AttackSpec.from_toml(path.read_text())
    one_line_error(check("cw-l2", "--set", "solver.rho=" + "[" * 5000 + "]" * 5000),
                   "--set solver.rho: nested deeper than 8 levels")


def test_a_spec_file_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + spec_text().encode("utf-8"))
    r = check(path)
    assert r.exit_code == 0, r.output


def test_the_python_api_refuses_the_same_values():
    from attacks.spec_values import LossSpec, SolverSpec
    with pytest.raises(SpecError, match="rho: expected at most 3.4e"):
        SolverSpec(rho=1e308)
    with pytest.raises(SpecError, match="c: expected at most 3.4e"):
        LossSpec(c=10 ** 400)
    with pytest.raises(SpecError, match=r"search.lagrangian.mu: expected at most"):
        load_spec("strattack", ["search.lagrangian.mu=1e308"])


# -- models whose outputs change during the attack --------------------------------------------
class OffGrid(nn.Module):
    """mnist-cw, whose outputs go wrong once the input leaves the 8-bit grid (mid-attack)."""

    def __init__(self, how: str):
        super().__init__()
        self.net, self.how = load_model("mnist-cw"), how

    def forward(self, x):
        out = self.net(x)
        if bool(((x * 255 - (x * 255).round()).abs() < 1e-4).all()):
            return out
        return {"int64": lambda: out.long(), "extra row": lambda: torch.cat([out, out[:1]]),
                "missing row": lambda: out[1:], "extra class": lambda: torch.cat(
                    [out, out[:, :1]], 1), "flat": lambda: out.flatten(),
                "tuple": lambda: (out,), "bool": lambda: out > 0}[self.how]()


@pytest.mark.parametrize("how, fragment", [
    ("int64", "returned torch.int64 outputs; expected floating-point logits"),
    ("bool", "returned torch.bool outputs; expected floating-point logits"),
    ("extra row", "returned outputs of shape (3, 10) for a batch of 2; expected logits of "
                  "shape (batch, classes) = (2, 10)"),
    ("missing row", "shape (1, 10) for a batch of 2"),
    ("extra class", "shape (2, 11) for a batch of 2"),
    ("flat", "shape (20,) for a batch of 2"),
    ("tuple", "returned tuple, expected a tensor of logits")])
def test_outputs_are_checked_on_every_call_not_only_on_the_clean_check(how, fragment):
    x, y = load_dataset("mnist-test20", 2)
    with pytest.raises(ModelOutputError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        CWL2(OffGrid(how), search=QUICK, grid=False)(x, y)


def test_a_model_changing_its_outputs_mid_attack_is_one_line_on_the_command_line(tmp_path,
                                                                                monkeypatch):
    (tmp_path / "offgrid_nets.py").write_text(
        "from test_hostile_inputs import OffGrid\n"
        "def int64():\n    return OffGrid('int64')\n"
        "def extra_row():\n    return OffGrid('extra row')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for factory, fragment in (("int64", "torch.int64 outputs"), ("extra_row", "(3, 10)")):
        r = invoke("solve", "--spec", "cw-l2", *FAST, *TINY, "-n", 2, "--figures", 0,
                   "--model", f"offgrid_nets:{factory}", "--out", tmp_path / factory)
        one_line_error(r, fragment)
        assert not (tmp_path / factory / ".admm-attack.lock").exists()


def test_integer_logits_on_clean_images_are_refused_up_front(tmp_path, monkeypatch):
    class Integer(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = load_model("mnist-cw")

        def forward(self, x):
            return (self.net(x) * 100).long()

    x, y = load_dataset("mnist-test20", 2)
    with pytest.raises(ModelOutputError, match="torch.int64 outputs"):
        CWL2(Integer(), search=QUICK)(x, y)


def test_a_model_of_one_class_is_refused():
    x, y = load_dataset("mnist-test20", 2)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 1))
    with pytest.raises(InputError, match="1 class score per image; an attack needs at least 2"):
        CWL2(model, search=QUICK)(x, torch.zeros(2, dtype=torch.long))


def test_meta_device_inputs_and_models_get_the_apis_own_message():
    x, y = load_dataset("mnist-test20", 2)
    attack = CWL2(load_model("mnist-cw"), search=QUICK)
    with pytest.raises(InputError, match="images are on the meta device"):
        attack(x.to("meta"), y)
    with pytest.raises(InputError, match="labels are on the meta device"):
        attack(x, y.to("meta"))
    with pytest.raises(ValueError, match="model: its parameters are on the meta device"):
        CWL2(load_model("mnist-cw").to("meta"), search=QUICK)


# -- labels, targets, seeds --------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.bool, torch.complex64, torch.float16])
def test_labels_and_targets_that_are_no_class_indices_are_refused(dtype):
    x, y = load_dataset("mnist-test20", 2)
    attack = CWL2(load_model("mnist-cw"), search=QUICK)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # casting complex to real warns
        with pytest.raises(InputError, match=f"labels must be an integer tensor.*{dtype}"):
            attack(x, torch.tensor([1, 0]).to(dtype))
        with pytest.raises(ValueError, match=f"targets must be an integer tensor.*{dtype}"):
            attack(x, y, torch.tensor([1, 0]).to(dtype))


@pytest.mark.parametrize("seed, shown", [(2 ** 64, str(2 ** 64)), (-2 ** 64, str(-2 ** 64)),
                                         (10 ** 40, "an integer of 133 bits"),
                                         (1.5, "1.5"), (True, "True"), ("1", "'1'")])
def test_a_seed_no_generator_takes_is_one_line(seed, shown):
    x, y = load_dataset("mnist-test20", 2)
    with pytest.raises(ValueError, match=f"seed must be an integer in .*got {shown}"):
        CWL2(load_model("mnist-cw"), search=QUICK, seed=seed)(x, y, "random")


def test_numpy_and_negative_seeds_still_work():
    x, y = load_dataset("mnist-test20", 2)
    model = load_model("mnist-cw")
    a = CWL2(model, search=QUICK, seed=np.int64(3))(x, y, "random")
    b = CWL2(model, search=QUICK, seed=3)(x, y, "random")
    assert torch.equal(a.targets, b.targets)
    CWL2(model, search=QUICK, seed=-1)(x, y, "random")


# -- image folders ------------------------------------------------------------------------------
def png(path, value=0):
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((28, 28), value, np.uint8)).save(path)


def test_class_folder_images_that_link_out_of_the_folder_are_refused(tmp_path):
    outside = tmp_path / "outside.png"
    png(outside, 200)
    folder = tmp_path / "images"
    png(folder / "0" / "a.png")
    (folder / "1").mkdir()
    (folder / "1" / "b.png").symlink_to(outside)
    with pytest.raises(ValueError, match="b.png points outside"):
        load_image_folder(folder)
    one_line_error(invoke("solve", "--spec", "cw-l2", "--model", "mnist-cw", "--data", folder,
                          "-q", "--out", tmp_path / "run"), "b.png points outside")


def test_a_class_folder_that_links_out_of_the_folder_is_refused(tmp_path):
    png(tmp_path / "elsewhere" / "c.png", 100)
    folder = tmp_path / "images"
    png(folder / "0" / "a.png")
    (folder / "1").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="c.png points outside"):
        load_image_folder(folder)


def test_links_inside_the_folder_are_followed(tmp_path):
    folder = tmp_path / "images"
    png(folder / "0" / "a.png", 10)
    (folder / "1").mkdir()
    (folder / "1" / "b.png").symlink_to(folder / "0" / "a.png")
    x, y = load_image_folder(folder)
    assert y.tolist() == [0, 1] and torch.equal(x[0], x[1])


@pytest.mark.parametrize("header", ["filename,label\n", ""])
def test_labels_csv_with_a_byte_order_mark_is_read(tmp_path, header):
    folder = tmp_path / "images"
    png(folder / "a.png", 10)
    png(folder / "b.png", 20)
    (folder / "labels.csv").write_bytes(("\ufeff" + header + "a.png,3\nb.png,7\n")
                                        .encode("utf-8"))
    x, y = load_image_folder(folder)
    assert y.tolist() == [3, 7]
    assert math.isclose(float(x[1].max()), 20 / 255, rel_tol=1e-6)


@pytest.mark.parametrize("label", [FIVE_THOUSAND_DIGITS, "9" * 4000, "-" + "9" * 30])
def test_a_label_of_thousands_of_digits_is_shown_short(tmp_path, label):
    folder = tmp_path / "images"
    png(folder / "a.png")
    (folder / "labels.csv").write_text(f"a.png,{label}\n")
    with pytest.raises(ValueError, match=r"is not a class index") as e:
        load_image_folder(folder)
    assert len(str(e.value)) < 300
