"""Scenario loading: `extends` overlays, provenance, shipped scenarios and one-line errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from sim.errors import ScenarioError
from sim.scenario import PROJECTION_VARIANTS, Scenario, list_scenarios, load_scenario


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def baseline(scenarios_dir: Path) -> Scenario:
    return load_scenario(scenarios_dir / "baseline.toml")


@pytest.fixture
def extends_baseline(scenarios_dir: Path) -> str:
    """An `extends` line pointing at the shipped baseline from any folder."""
    return f"extends = {json.dumps(str(scenarios_dir / 'baseline.toml'))}\n"


def load_error(path: Path) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    return info.value


def assert_one_line(err: ScenarioError, path: Path, field: str | None, *fragments: str) -> None:
    """The message names the file and the field, fits on one line and says what is wrong."""
    message = str(err)
    assert "\n" not in message
    assert err.path == str(path)
    assert err.field == field
    assert message.startswith(f"{path}: {field}: " if field else f"{path}: ")
    for fragment in fragments:
        assert fragment in message, message


# ---- inheritance -------------------------------------------------------------------------


def test_child_overrides_only_what_it_states(tmp_path, baseline, extends_baseline):
    child = load_scenario(
        write(
            tmp_path, "child.toml", extends_baseline + '[population]\nvariant = "high_migration"\n'
        )
    )
    assert child.population.variant == "high_migration"
    expected = baseline.model_dump(exclude={"name", "description"})
    expected["population"]["variant"] = "high_migration"
    assert child.model_dump(exclude={"name", "description"}) == expected


def test_nested_tables_merge_key_by_key(tmp_path):
    write(
        tmp_path,
        "parent.toml",
        'name = "parent"\n[envelope]\nbase_gbp = 1e9\ngrowth = 0.03\n'
        "[envelope.growth_by_year]\n2030 = 0.10\n",
    )
    child = load_scenario(
        write(
            tmp_path,
            "child.toml",
            'extends = "parent.toml"\n[envelope]\ngrowth = 0.07\n'
            "[envelope.growth_by_year]\n2031 = 0.02\n",
        )
    )
    assert child.envelope.base_gbp == 1e9  # kept from the parent
    assert child.envelope.growth == 0.07  # overridden
    assert child.envelope.growth_by_year == {2030: 0.10, 2031: 0.02}  # merged


def test_arrays_are_replaced_not_appended(tmp_path, baseline, extends_baseline):
    assert len(baseline.delegation.waves) == 2
    child = load_scenario(
        write(
            tmp_path,
            "child.toml",
            extends_baseline + "[cpag]\nround_months = [7]\n"
            '[[delegation.waves]]\nname = "one wave"\nyear = 2026\n',
        )
    )
    assert [w.name for w in child.delegation.waves] == ["one wave"]
    assert child.delegation.waves[0].regions == "all"  # the wave's own default, not merged
    assert child.cpag.round_months == [7]
    assert child.cpag.candidates_per_round == baseline.cpag.candidates_per_round


def test_chain_of_two_with_relative_paths(tmp_path, extends_baseline):
    write(
        tmp_path,
        "base/middle.toml",
        extends_baseline + "[time]\nend_year = 2030\n[run]\nseed = 7\n",
    )
    top = write(
        tmp_path,
        "mine/top.toml",
        'extends = "../base/middle.toml"\nname = "top"\n[run]\nseed = 11\n',
    )
    scenario = load_scenario(top)
    assert scenario.time.end_year == 2030  # from the middle file
    assert scenario.time.base_year == 2024  # from the baseline
    assert scenario.run.seed == 11  # the extending file wins
    assert scenario.run.replications == 100  # baseline, through two levels


def test_name_and_description_are_not_inherited(tmp_path, extends_baseline):
    scenario = load_scenario(write(tmp_path, "my_reform.toml", extends_baseline))
    assert scenario.name == "my_reform"
    assert scenario.description == ""


def test_from_dict_matches_the_file(baseline, scenarios_dir):
    import tomllib

    data = tomllib.loads((scenarios_dir / "baseline.toml").read_text(encoding="utf-8"))
    built = Scenario.from_dict(data)
    assert built.model_dump() == baseline.model_dump()
    assert built.source_path is None
    assert built.sha256 == Scenario.from_dict(data).sha256
    overlay = Scenario.from_dict(
        {"extends": "baseline.toml", "name": "x", "time": {"end_year": 2030}},
        path=scenarios_dir / "x.toml",
    )
    assert (overlay.time.end_year, overlay.envelope.base_gbp) == (2030, baseline.envelope.base_gbp)


def test_every_shipped_scenario_validates_and_baseline_is_listed_first(scenarios_dir):
    infos = list_scenarios(scenarios_dir)
    assert infos[0].name == "baseline"
    assert [i for i in infos if i.error] == []
    assert all(i.description for i in infos), "every shipped scenario needs a description"
    assert len({i.name for i in infos}) == len(infos)


def test_every_baseline_setting_is_commented(scenarios_dir):
    """Analysts edit these files: each key and table is explained by the comment above it."""
    lines = (scenarios_dir / "baseline.toml").read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            assert lines[number - 1].lstrip().startswith("#"), f"line {number + 1}: {line}"


# ---- provenance --------------------------------------------------------------------------


def test_single_file_provenance_is_the_file_itself(scenarios_dir, baseline):
    path = scenarios_dir / "baseline.toml"
    assert baseline.source_path == path
    assert baseline.source_text == path.read_text(encoding="utf-8")
    assert baseline.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert load_scenario(path).sha256 == baseline.sha256


def test_scenarios_built_in_code_get_distinct_provenance():
    a, b = Scenario(name="a"), Scenario(name="a", run={"seed": 1})
    assert a.source_path is None
    assert '"seed": 20240401' in a.source_text
    assert a.sha256 != b.sha256
    assert a.sha256 == Scenario(name="a").sha256


def test_chain_provenance_holds_every_file_and_changes_with_any(tmp_path):
    parent = write(tmp_path, "parent.toml", 'name = "p"\n[run]\nseed = 1\n')
    child = write(tmp_path, "child.toml", 'extends = "parent.toml"\n[run]\nreplications = 3\n')
    first = load_scenario(child)
    text = first.source_text
    assert text.index("seed = 1") < text.index("replications = 3")  # base first
    assert "parent.toml" in text and "child.toml" in text  # labelled
    assert load_scenario(child).sha256 == first.sha256  # stable
    assert str(tmp_path) not in text  # independent of where the files live

    parent.write_text('name = "p"\n[run]\nseed = 1  # a comment is part of the record\n')
    assert load_scenario(child).sha256 != first.sha256


# ---- errors: one line naming file and field ----------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.toml"
    assert_one_line(load_error(path), path, None, "file not found")


def test_not_toml_gives_line_and_column(tmp_path):
    path = write(tmp_path, "bad.toml", 'name = "x"\n[time]\nbase_year = \n')
    assert_one_line(load_error(path), path, None, "not valid TOML", "line 3")


def test_extends_missing(tmp_path):
    path = write(tmp_path, "child.toml", 'extends = "gone.toml"\n')
    assert_one_line(load_error(path), path, "extends", "file not found", "gone.toml")


def test_extends_must_be_a_file_name(tmp_path):
    path = write(tmp_path, "child.toml", "extends = 3\n")
    assert_one_line(load_error(path), path, "extends", "must be a file name")


def test_extends_cycle(tmp_path):
    write(tmp_path, "a.toml", 'extends = "b.toml"\n')
    b = write(tmp_path, "b.toml", 'extends = "a.toml"\n')
    assert_one_line(load_error(tmp_path / "a.toml"), b, "extends", "cycle", "a.toml -> b.toml")
    selfish = write(tmp_path, "self.toml", 'extends = "self.toml"\n')
    assert_one_line(load_error(selfish), selfish, "extends", "cycle")


def test_unknown_key_suggests_and_lists_allowed(tmp_path, extends_baseline):
    path = write(
        tmp_path, "typo.toml", extends_baseline + "[population]\nmortality_multipler = 1.1\n"
    )
    assert_one_line(
        load_error(path),
        path,
        "population.mortality_multipler",
        "unknown key",
        "did you mean 'mortality_multiplier'?",
        "allowed keys: mode, basis, variant, mortality_multiplier",
    )


def test_unknown_section_and_key_inside_a_list(tmp_path, extends_baseline):
    path = write(tmp_path, "typo.toml", extends_baseline + "[populaton]\nvariant = 'principal'\n")
    assert_one_line(load_error(path), path, "populaton", "did you mean 'population'?")
    path = write(
        tmp_path, "wave.toml", extends_baseline + "[[delegation.waves]]\nnme = 'x'\nyear = 2025\n"
    )
    # the misspelling is reported, not the "missing name" it causes
    assert_one_line(load_error(path), path, "delegation.waves[0].nme", "did you mean 'name'?")


def test_wrong_type(tmp_path, extends_baseline):
    path = write(tmp_path, "type.toml", extends_baseline + '[time]\nbase_year = "soon"\n')
    assert_one_line(load_error(path), path, "time.base_year", "integer", "(got 'soon')")
    path = write(tmp_path, "table.toml", 'name = "t"\npopulation = 5\n')
    assert_one_line(load_error(path), path, "population", "table")


def test_union_field_reports_both_alternatives_once(tmp_path, extends_baseline):
    path = write(
        tmp_path,
        "regions.toml",
        extends_baseline + "[[delegation.waves]]\nname = 'w'\nyear = 2025\nregions = 5\n",
    )
    err = load_error(path)
    assert_one_line(err, path, "delegation.waves[0].regions", "list", "'all'", "(got 5)")
    assert "more problem" not in str(err)


def test_out_of_range_names_the_allowed_range(tmp_path, extends_baseline):
    path = write(
        tmp_path, "neg.toml", extends_baseline + "[population]\nmortality_multiplier = -0.5\n"
    )
    assert_one_line(
        load_error(path), path, "population.mortality_multiplier", "must be >= 0", "(got -0.5)"
    )


def test_unknown_projection_variant_lists_the_allowed_ones(tmp_path, extends_baseline):
    path = write(
        tmp_path, "var.toml", extends_baseline + '[population]\nvariant = "high_migraton"\n'
    )
    err = load_error(path)
    assert_one_line(
        err, path, "population.variant", "unknown projection variant", "'high_migration'?"
    )
    assert all(variant in str(err) for variant in PROJECTION_VARIANTS)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("[time]\nend_year = 2050\n", "time.end_year"),
        ("[time]\nbase_year = 2017\n", "time.base_year"),
        (
            "[[delegation.waves]]\nname = 'a'\nyear = 2024\n"
            "[[delegation.waves]]\nname = 'b'\nyear = 2048\n",
            "delegation.waves[1].year",
        ),
    ],
)
def test_year_outside_the_data(tmp_path, extends_baseline, body, field):
    path = write(tmp_path, "year.toml", extends_baseline + body)
    assert_one_line(load_error(path), path, field, "the reference data covers 2018..2047")


def test_cross_field_rule_names_its_section(tmp_path, extends_baseline):
    path = write(
        tmp_path, "order.toml", extends_baseline + "[time]\nbase_year = 2030\nend_year = 2026\n"
    )
    assert_one_line(load_error(path), path, "time", "must not be before base_year")


def test_further_problems_are_counted_not_listed(tmp_path, extends_baseline):
    path = write(
        tmp_path,
        "many.toml",
        extends_baseline + "[demand]\ngrowth_multiplier = -1\n[run]\nreplications = 0\n",
    )
    assert_one_line(load_error(path), path, "demand.growth_multiplier", "(and 1 more problem)")


def test_dict_scenario_errors_have_no_file(extends_baseline):
    with pytest.raises(ScenarioError) as info:
        Scenario.from_dict({"name": "x", "run": {"seed": -1}})
    assert (
        str(info.value) == "<scenario>: run.seed: must be >= 0 and <= 9223372036854775807 (got -1)"
    )
