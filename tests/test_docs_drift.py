"""The docs say what the code does: the spec key tables of docs/cli.md list exactly the keys
the schema accepts, and every default the option tables state is the command's default."""

import re
from pathlib import Path

import attrs
import pytest
import typer

from attacks.schema import TABLES, TERM_KEYS, TOP_KEYS, field_names
from attacks.search_spec import SECTIONS
from attacks.spec import GroupSpec
from attacks.terms import TERM_KINDS
from cli.main import app

ROOT = Path(__file__).resolve().parents[1]
CLI_MD = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")


def table_rows(text: str, header: str, which: int = 0):
    """The rows (lists of cells) of the ``which``-th Markdown table whose header row is
    ``header``."""
    lines = text.splitlines()
    start = [i for i, line in enumerate(lines) if line == header][which]
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split(" | ")])
    return rows


def named_keys(cell: str) -> set:
    """The backticked names of a cell, leaving out what parentheses explain (values)."""
    depth, kept = 0, []
    for ch in cell:
        depth += ch == "("
        if depth == 0:
            kept.append(ch)
        depth -= ch == ")" and depth > 0
    return {k.split(" =")[0] for k in re.findall(r"`([^`]+)`", "".join(kept))}


def test_the_spec_key_table_lists_exactly_the_schemas_keys():
    rows = {r[0]: named_keys(r[1]) for r in table_rows(CLI_MD, "| where | keys |")}
    assert rows["top level"] == set(TOP_KEYS)
    assert rows["`[[terms]]` (one or more)"] == set(TERM_KEYS) - {"params", "groups"}
    assert rows["`[terms.params]`"] == {p for k in TERM_KINDS.values() for p in k.params}
    groups = next(v for k, v in rows.items() if k.startswith("`[terms.groups]`"))
    assert groups == {f.name for f in attrs.fields(GroupSpec)}
    tables = {**TABLES, **{f"search.{name}": cls for name, cls in SECTIONS.items()}}
    for name, cls in tables.items():
        row = next(v for k, v in rows.items() if k.startswith(f"`[{name}]`"))
        assert row == set(field_names(cls)), name


def test_the_term_kinds_the_docs_name_are_the_registered_ones():
    row = next(r for r in table_rows(CLI_MD, "| where | keys |") if r[0].startswith("`[[terms"))
    kinds = set(re.findall(r"`([a-z_0-9]+)`", row[1].split("`kind`")[1].split(")")[0]))
    assert kinds == set(TERM_KINDS)


def option_defaults(command: str) -> dict:
    click = typer.main.get_command(app)
    cmd = click.commands[command]
    return {opt: p.default for p in cmd.params for opt in p.opts}


@pytest.mark.parametrize("command, which, least", [("solve", 0, 5), ("explain", 1, 4)])
def test_every_default_in_an_options_table_is_the_codes(command, which, least):
    from cli.solve import DEFAULT_BATCH_SIZE
    defaults = option_defaults(command)
    defaults["--batch-size"] = DEFAULT_BATCH_SIZE
    checked = 0
    for option, meaning in table_rows(CLI_MD, "| option | meaning |", which):
        names = re.findall(r"`(-[-\w]+)", option)
        stated = re.search(r"default:? (`[^`]+`|\d[\d.]*)", meaning)
        if not names or not stated or names[0] not in defaults:
            continue
        value = stated.group(1).strip("`")
        assert str(defaults[names[0]]) == value, (names[0], value, defaults[names[0]])
        checked += 1
    assert checked >= least


def test_the_help_reads_cleanly_at_80_columns():
    from typer.testing import CliRunner
    for command in ([], ["solve"], ["eval"], ["explain"], ["specs"], ["specs", "show"],
                    ["models"], ["datasets"]):
        r = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "80"},
                               terminal_width=80)
        assert r.exit_code == 0, r.output
        long = [line for line in r.output.splitlines() if len(line) > 80]
        assert not long, (command, long)
        assert "<bool>" not in r.output and "…" not in r.output, command


def listed(file: str) -> list:
    """The comma list in the first backticks of the row of ``file`` in docs/cli.md's table of
    what a run writes."""
    row = next(r for r in table_rows(CLI_MD, "| file | content |") if r[0] == f"`{file}`")
    return re.search(r"`([^`]*,[^`]*)`", row[1]).group(1).split(", ")


def test_the_docs_list_every_column_of_metrics_csv_and_key_of_summary_json(tmp_path):
    from test_cli_helpers import FAST, TINY, invoke, read_json

    from attacks.runs.outputs import CSV_COLUMNS
    out = tmp_path / "run"
    r = invoke("solve", "--spec", "cw-l2", *FAST, *TINY, "-n", 1, "--figures", 0, "--out", out)
    assert r.exit_code == 0, r.output
    assert listed("metrics.csv") == list(CSV_COLUMNS)
    assert (out / "metrics.csv").read_text().splitlines()[0].split(",") == list(CSV_COLUMNS)
    assert listed("summary.json") == list(read_json(out / "summary.json"))
