"""Specs as TOML: the exact writer, ``specs list|show|check``, ``--set`` overrides and the
validation messages (file, key, expected, found)."""

from __future__ import annotations

import math
import re

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attacks.builtin import BUILTIN, TAU_PER_DISTANCE, builtin_spec
from attacks.spec import (SAFE_NAME, AttackSpec, BinarySearch, GroupSpec, LossSpec, RefineSpec,
                          SearchSpec, SolverSpec, SpecError, TermSpec)
from attacks.schema import apply_overrides, parse_value
from attacks.spec_toml import dumps_spec, toml_value
import tomllib
from test_cli_helpers import ROOT, invoke

SPEC_DIR = ROOT / "attacks" / "specs"


# -- the writer ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(BUILTIN))
def test_builtin_specs_round_trip_through_toml(name):
    spec = builtin_spec(name)
    text = dumps_spec(spec)
    assert AttackSpec.from_dict(tomllib.loads(text)) == spec
    assert all(len(line) <= 88 or line.startswith("description")
               for line in text.splitlines())


def test_variants_round_trip():
    for spec in (builtin_spec("strattack", eps=0.3, c=2.5, group_size=3, stride=1,
                              copies="full", kappa=1.5),
                 builtin_spec("ead", beta=1e-5, decision="l1", refine=True),
                 attrs.evolve(builtin_spec("cw-l2"), description='quotes " and \\ and\ttab')):
        assert AttackSpec.from_dict(tomllib.loads(dumps_spec(spec))) == spec


finite = st.floats(min_value=1e-12, max_value=1e12, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(rho=finite, eta=finite, growth=st.floats(min_value=1.001, max_value=1e12),
       kappa=st.floats(0, 1e6), weight=st.floats(0, 1e9),
       steps=st.integers(1, 1000), quantile=st.floats(0, 0.999),
       name=st.from_regex(SAFE_NAME, fullmatch=True),
       text=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20),
       eps=st.one_of(st.none(), finite), c=st.one_of(st.none(), finite))
def test_writer_is_exact(rho, eta, growth, kappa, weight, steps, quantile, name, text, eps, c):
    spec = AttackSpec(
        name=name, terms=[TermSpec("l1", "distortion", {"weight": weight}, name="a"),
                          TermSpec("group_l2", "regularizer", {"weight": weight},
                                   GroupSpec(2, 1, "full", True), name="b")],
        loss=LossSpec(kappa=kappa, c=c), eps=eps, solver=SolverSpec(rho=rho, eta=eta),
        search=SearchSpec(sections=[BinarySearch(steps=steps, growth=growth)]),
        refine=RefineSpec(quantile, steps),
        description=text)
    assert AttackSpec.from_dict(tomllib.loads(dumps_spec(spec))) == spec


def test_toml_scalars():
    assert toml_value(1e-05) == "1e-05" and toml_value(2) == "2" and toml_value(True) == "true"
    assert tomllib.loads("v = " + toml_value(math.inf))["v"] == math.inf
    assert tomllib.loads("v = " + toml_value("ℓ∞ \x7f \n"))["v"] == "ℓ∞ \x7f \n"


def test_absent_values_are_commented_out():
    text = dumps_spec(builtin_spec("cw-l2"))
    assert re.search(r"^# eps = ", text, re.M) and re.search(r"^# c = ", text, re.M)
    assert "[refine]" not in [line.strip() for line in text.splitlines()]
    assert "# [refine]" in text


# -- the commands ----------------------------------------------------------------------------
def test_specs_list_names_builtins_and_examples():
    r = invoke("specs", "list")
    assert r.exit_code == 0
    for name in [*BUILTIN, "sparse-group-lasso", "l1-overlapping-groups", "strattack-group-l0",
                 "l1-attack"]:
        assert name in r.stdout


def test_specs_show_prints_valid_toml():
    r = invoke("specs", "show", "strattack")
    assert r.exit_code == 0
    assert AttackSpec.from_dict(tomllib.loads(r.stdout)) == builtin_spec("strattack")


def test_specs_show_file_as_written_or_resolved():
    path = SPEC_DIR / "sparse-group-lasso.toml"
    assert invoke("specs", "show", str(path)).stdout == path.read_text()
    assert invoke("specs", "show", "sparse-group-lasso").stdout == path.read_text()
    resolved = invoke("specs", "show", str(path), "--resolved").stdout
    assert resolved != path.read_text()
    assert AttackSpec.from_dict(tomllib.loads(resolved)) == AttackSpec.from_dict(tomllib.loads(
        path.read_text()))


def test_specs_show_applies_overrides():
    r = invoke("specs", "show", "strattack", "--set", "solver.rho=2", "--set",
               "search.iterations=50", "--set", "terms.groups.params.weight=3", "--set",
               "eps=0.3", "--set", "decision=l2", "--set", "terms.groups.groups.size=4",
               "--set", "refine=false")
    assert r.exit_code == 0, r.output
    spec = AttackSpec.from_dict(tomllib.loads(r.stdout))
    assert spec.solver.rho == 2 and spec.search.iterations == 50 and spec.eps == 0.3
    assert spec.terms[1].params == {"weight": 3} and spec.terms[1].groups.size == 4
    assert spec.decision == "l2" and spec.refine is None


def test_specs_check_every_shipped_file():
    files = sorted(SPEC_DIR.glob("*.toml"))
    assert len(files) >= 2
    r = invoke("specs", "check", *map(str, files))
    assert r.exit_code == 0 and r.stdout.count("ok:") == len(files)


# -- overrides -------------------------------------------------------------------------------
def test_override_values_are_toml_scalars():
    assert parse_value("2") == 2 and parse_value("2.5") == 2.5 and parse_value("true") is True
    assert parse_value('"l2"') == "l2" and parse_value("l2") == "l2"
    assert parse_value("1e-3") == 1e-3


def test_overrides_by_index_and_refine_switch():
    data = builtin_spec("cw-l2").to_dict()
    out = apply_overrides(data, ["terms.0.params.weight=4", "refine=true",
                                 "refine.iterations=7", "loss.c=1.5"])
    spec = AttackSpec.from_dict(out)
    assert spec.terms[0].params["weight"] == 4 and spec.refine == RefineSpec(iterations=7)
    assert spec.loss.c == 1.5
    assert "refine" not in data  # the input is not modified


@pytest.mark.parametrize("item, fragment", [
    ("solver.rhoo=2", "--set solver.rhoo: unknown key 'rhoo' (did you mean 'rho'?)"),
    ("serch.steps=2", "--set serch.steps: unknown key"),
    ("terms.groups.params.wieght=3", "no parameter 'wieght' (did you mean 'weight'?)"),
    ("terms.nope.params.weight=3", "no term 'nope'"),
    ("terms.l2.groups.size=2", "term l2 (squared_l2) has no groups"),
    ("terms.groups.colour=red", "unknown term key 'colour'"),
    ("refine=maybe", "--set refine: expected true or false"),
    ("solver.rho", "expected KEY=VALUE"),
])
def test_override_errors_name_the_key(item, fragment):
    r = invoke("specs", "show", "strattack", "--set", item)
    assert r.exit_code == 2
    assert fragment in r.stderr and r.stderr.count("\n") == 1 and r.stdout == ""


def test_override_on_absent_refine_is_refused():
    r = invoke("specs", "show", "cw-l2", "--set", "refine.iterations=3")
    assert r.exit_code == 2 and "no refine stage" in r.stderr and "refine=true" in r.stderr


# -- validation of files ---------------------------------------------------------------------
BASE = dumps_spec(builtin_spec("strattack"))
TAU = f"weight = {TAU_PER_DISTANCE}"  # the group term's
CASES = [
    # (replace, with, expected fragments of the message)
    ('kind = "group_l2"', 'kind = "group_l3"',
     ["terms.groups.kind", "unknown kind 'group_l3'", "group_l2"]),
    ("rho = 1.0", 'rho = "fast"', ["solver.rho", "expected a number", "'fast' (a string)"]),
    ("rho = 1.0", "rho = -1.0", ["solver.rho", "positive", "-1.0"]),
    ("steps = 6", "steps = 2.5", ["search.binary.steps", "expected an integer", "2.5"]),
    ("quantile = 0.15", "quantile = 1.5", ["refine.quantile", "[0, 1)", "1.5"]),
    (TAU, "weight = -2.0", ["terms.groups.params.weight", ">= 0", "-2.0"]),
    (TAU, "weigth = 2.0", ["terms.groups.params", "unknown parameter 'weigth'", "weight"]),
    ('scale = "boundary"', 'scale = "everywhere"', ["terms.groups.scale", "'everywhere'"]),
    ('scale = "none"', 'scale = "boundary"', ["terms.l2.scale", "degree 2"]),
    ("[search]", "[serch]", ["unknown table [serch]", "did you mean 'search'"]),
    ('name = "groups"', 'name = "groups"\nweight = 3', ["terms.groups", "params table"]),
    ('kind = "squared_l2"', "", ["terms.l2.kind: missing"]),
    ('name = "strattack"', "", ["name: missing"]),
    ('copies = "local"', 'copies = "remote"', ["terms.groups.groups.copies", "'remote'"]),
    ('decision = "objective"', 'decision = "best"', ["decision", "'best'"]),
    ("[terms.groups]", "[terms.grups]", ["terms.groups: unknown table 'grups'",
                                         "did you mean 'groups'"]),
    ("eta = 5.0", "eta = 5.0\ntau = 1", ["solver: unknown key 'tau'"]),
    ("[loss]", "[loss", ["not valid TOML", "line"]),
]


@pytest.mark.parametrize("old, new, fragments", CASES)
def test_file_errors_name_file_key_expected_found(tmp_path, old, new, fragments):
    assert old in BASE
    path = tmp_path / "bad.toml"
    path.write_text(BASE.replace(old, new, 1))
    r = invoke("specs", "check", str(path))
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith(f"error: {path}: ") and r.stderr.count("\n") == 1
    for f in fragments:
        assert f in r.stderr, (f, r.stderr)


def test_spec_from_dict_rejects_structural_mistakes():
    good = builtin_spec("cw-l2").to_dict()
    with pytest.raises(SpecError, match=r"terms: expected an array of tables"):
        AttackSpec.from_dict({**good, "terms": {"kind": "l1"}})
    with pytest.raises(SpecError, match="terms: missing"):
        AttackSpec.from_dict({k: v for k, v in good.items() if k != "terms"})
    with pytest.raises(SpecError, match=r"terms.0.groups: kind l1 acts on single pixels"):
        AttackSpec.from_dict({**good, "terms": [{"kind": "l1", "groups": {}}]})
    with pytest.raises(SpecError, match=r"terms: expected unique names"):
        AttackSpec.from_dict({**good, "terms": [{"kind": "l1", "name": "a"},
                                                {"kind": "l1", "name": "a"}]})
    with pytest.raises(SpecError, match=r"terms.0.groups: missing; kind group_l2 needs"):
        AttackSpec.from_dict({**good, "terms": [{"kind": "group_l2"}]})
    with pytest.raises(SpecError, match=r"solver: expected a table"):
        AttackSpec.from_dict({**good, "solver": 3})


# -- the tutorial ----------------------------------------------------------------------------
def test_tutorial_includes_the_spec_file_verbatim():
    """docs/tutorial-spec.md shows attacks/specs/sparse-group-lasso.toml exactly (the tests run
    that file, see test_cli.py)."""
    doc = (ROOT / "docs" / "tutorial-spec.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", doc, re.S)
    assert (SPEC_DIR / "sparse-group-lasso.toml").read_text() in blocks
    for block in blocks:  # every TOML snippet in the tutorial is a valid spec or fragment
        tomllib.loads(block)


def test_specs_show_with_set_keeps_the_files_comments_and_order():
    """--set rewrites a user's file in place (tomlkit): comments and order stay."""
    path = SPEC_DIR / "sparse-group-lasso.toml"
    original = path.read_text(encoding="utf-8")
    r = invoke("specs", "show", "sparse-group-lasso", "--set", "search.iterations=100",
               "--set", "terms.sparse.params.weight=0.2")
    assert r.exit_code == 0, r.output
    changed = [(a, b) for a, b in zip(original.splitlines(), r.stdout.splitlines()) if a != b]
    assert len(r.stdout.splitlines()) == len(original.splitlines())
    assert [b.split("#")[0].strip() for _, b in changed] == ["weight = 0.2", "iterations = 100"]
    assert all(a.split("#")[1:] == b.split("#")[1:] for a, b in changed)  # comments kept
    spec = AttackSpec.from_dict(tomllib.loads(r.stdout))
    assert spec.search.iterations == 100 and spec.terms[1].params["weight"] == 0.2
    # a built-in keeps its per-key comments too
    r = invoke("specs", "show", "strattack", "--set", "solver.rho=2")
    assert "rho = 2" in r.stdout and "ADMM penalty" in r.stdout
