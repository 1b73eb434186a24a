"""Delegation status over time: published waves, scenario overrides and user errors."""

from __future__ import annotations

import pandas as pd
import pytest

from sim.delegation import delegation_status
from sim.errors import ScenarioError
from sim.reference import load_services
from sim.scenario import DelegationWave, Scenario

ICBS = pd.DataFrame(
    {
        "icb": ["E54000001", "E54000002", "E54000003", "E54000004"],
        "icb_ods": ["QAA", "QBB", "QCC", "QDD"],
        "icb_name": ["NHS A", "NHS B", "NHS C", "NHS D"],
        "region_name": ["London", "North West", "Midlands", "East of England"],
    }
)
YEARS = [2023, 2024, 2025, 2026]


@pytest.fixture(scope="module")
def services() -> pd.DataFrame:
    return load_services()


def _ids(services: pd.DataFrame, *groups: str) -> list[str]:
    return list(services.loc[services["delegation_group"].isin(groups), "service_id"])


def test_published_waves_by_default(services):
    status = delegation_status(Scenario(name="t").delegation, services, ICBS, YEARS)
    assert status.dims == ("year", "icb", "service") and status.dtype == bool
    assert not status.sel(year=2023).any()  # joint committees only: NHS England holds budgets
    y24 = status.sel(year=2024)
    assert not y24.sel(icb="E54000001").any()  # London waits a year
    for icb in ("E54000002", "E54000003", "E54000004"):
        held = set(y24["service"].values[y24.sel(icb=icb).values])
        assert held == set(_ids(services, "wave_59"))
    y25 = status.sel(year=2025)
    assert len(_ids(services, "wave_59", "wave_70")) == int(y25.sel(icb="E54000001").sum())
    assert not y25.sel(service=_ids(services, "retained")).any()
    assert (status.sel(year=2026) == y25).all()


def test_retain_all_delegates_nothing(services):
    scenario = Scenario(name="t", delegation={"retain_all": True})
    assert not delegation_status(scenario.delegation, services, ICBS, YEARS).any()


def test_move_services_between_portfolios(services):
    moved_in, kept = "cancer_drugs_fund", "renal_dialysis"
    scenario = Scenario(name="t", delegation={"also_delegate": [moved_in], "also_retain": [kept]})
    status = delegation_status(scenario.delegation, services, ICBS, YEARS)
    assert status.sel(year=2024, icb="E54000002", service=moved_in)
    assert not status.sel(year=2024, icb="E54000001", service=moved_in)
    assert not status.sel(service=kept).any()


def test_extra_wave_for_single_icbs(services):
    waves = [
        DelegationWave(
            name="pilot", year=2026, regions=[], icbs=["QAA"], services=["car_t_therapy"]
        )
    ]
    status = delegation_status(
        Scenario(name="t", delegation={"waves": waves}).delegation, services, ICBS, YEARS
    )
    assert int(status.sum()) == 1
    assert status.sel(year=2026, icb="E54000001", service="car_t_therapy")


@pytest.mark.parametrize(
    ("delegation", "field", "word"),
    [
        (
            {"waves": [{"name": "w", "year": 2024, "services": ["wave_95"]}]},
            "delegation.waves[0].services",
            "wave_59",
        ),
        (
            {"waves": [{"name": "w", "year": 2024, "regions": ["Londn"]}]},
            "delegation.waves[0].regions",
            "London",
        ),
        (
            {"waves": [{"name": "w", "year": 2024, "regions": [], "icbs": ["QZZ"]}]},
            "delegation.waves[0].icbs",
            "QZZ",
        ),
        ({"also_delegate": ["nope"]}, "delegation.also_delegate", "nope"),
        ({"also_delegate": ["ecmo"], "also_retain": ["ecmo"]}, "delegation.also_retain", "ecmo"),
    ],
)
def test_unknown_names_are_one_line_errors(services, delegation, field, word):
    scenario = Scenario(name="t", delegation=delegation)
    with pytest.raises(ScenarioError) as caught:
        delegation_status(scenario.delegation, services, ICBS, YEARS)
    message = str(caught.value)
    assert field in message and word in message and "\n" not in message
