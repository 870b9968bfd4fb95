"""The term-kind registry is the one place a term kind is declared: a registration alone makes
a kind valid in TOML, settable with --set and commented by the writer."""

import pytest

from admmkit.prox import Zero
from admmkit.testing.strategies import GROUPED, OPERATORS
from attacks.spec import AttackSpec, SpecError
from attacks.spec_toml import key_doc
from attacks.terms import TERM_KINDS, Param, TermKind, register


def test_every_kind_has_a_property_strategy_and_documented_parameters():
    for kind in TERM_KINDS.values():
        name = kind.operator.__name__
        assert name in OPERATORS, f"{kind.name}: no hypothesis strategy for {name}"
        assert (name in GROUPED) == kind.grouped, kind.name
        assert kind.doc
        for p, param in kind.params.items():
            assert param.doc and key_doc(f"terms.params.{p}", kind.name) == param.doc
            kind.operator(**kind.defaults)  # the defaults build the operator


@pytest.fixture
def zero_kind():
    kind = register(TermKind("nothing", lambda weight: Zero(),
                             {"weight": Param(1.0, "ignored: this term is zero")},
                             doc="0 (a test kind)"))
    yield kind
    del TERM_KINDS["nothing"]


SPEC = {"name": "with-nothing",
        "terms": [{"name": "l2", "kind": "squared_l2", "role": "distortion"},
                  {"name": "z", "kind": "nothing", "params": {"weight": 2.0}}]}


def test_one_registration_makes_a_kind_usable_everywhere(zero_kind):
    spec = AttackSpec.from_dict(SPEC)
    assert isinstance(spec.terms[1].function(), Zero)
    text = spec.to_toml()
    assert 'kind = "nothing"' in text and "ignored: this term is zero" in text
    assert AttackSpec.from_toml(text).to_dict() == spec.to_dict()  # round trip
    changed = spec.with_overrides("terms.z.params.weight=3")
    assert changed.terms[1].params == {"weight": 3}
    with pytest.raises(SpecError, match="no parameter 'wieght'.*did you mean 'weight'"):
        spec.with_overrides("terms.z.params.wieght=3")


def test_an_unregistered_kind_is_refused_with_the_known_ones():
    with pytest.raises(SpecError, match="unknown kind 'nothing'.*group_l2"):
        AttackSpec.from_dict(SPEC)


def test_a_kind_is_registered_once(zero_kind):
    with pytest.raises(ValueError, match="already registered"):
        register(zero_kind)


@pytest.mark.parametrize("kind", sorted(TERM_KINDS))
def test_every_kind_round_trips_through_toml_and_specs_show(kind, tmp_path):
    from test_cli_helpers import invoke
    term = {"name": "t", "kind": kind, "role": "regularizer",
            "params": {p: 2 * d for p, d in TERM_KINDS[kind].defaults.items()}}
    if TERM_KINDS[kind].grouped:
        term["groups"] = {"size": 2, "stride": 2}
    spec = AttackSpec.from_dict({"name": f"with-{kind}", "terms": [
        {"name": "l2", "kind": "squared_l2", "role": "distortion", "params": {"weight": 1.0}},
        term]})
    text = spec.to_toml()
    assert f'kind = "{kind}"' in text
    assert AttackSpec.from_toml(text) == spec
    path = tmp_path / "s.toml"
    path.write_text(text)
    shown = invoke("specs", "show", str(path), "--resolved")
    assert shown.exit_code == 0, shown.output
    assert AttackSpec.from_toml(shown.stdout) == spec
    spec.check_fits((1, 28, 28))
    assert type(spec.terms[1].function()) is TERM_KINDS[kind].operator
