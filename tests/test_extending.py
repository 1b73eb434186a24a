"""Adding a risk-pool rule, a need adjustment or a result variable touches one module.

Each test registers a new one the way a developer would write it in that module (a
decorated function, or a `Variable` entry), rebuilds what is built from the registry at
import, and shows the scenario schema accepts it and the model uses it. Registrations are
undone afterwards.
"""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import Field

from sim import need, outputs, settlement
from sim.errors import ScenarioError
from sim.scenario import Scenario, allocation_model, settlement_model


@pytest.fixture
def restore_registries():
    pools, adjustments = dict(settlement.RISK_POOLS), dict(need.NEED_ADJUSTMENTS)
    yield
    settlement.RISK_POOLS.clear()
    settlement.RISK_POOLS.update(pools)
    need.NEED_ADJUSTMENTS.clear()
    need.NEED_ADJUSTMENTS.update(adjustments)


def test_a_new_risk_pool_is_one_function(restore_registries):
    @settlement.risk_pool(
        "national_all",
        national_share=Field(0.5, ge=0.0, le=1.0, description="share pooled nationally"),
    )
    def national_all(inputs: settlement.PoolInputs, config) -> np.ndarray:
        """A share of every ICB's variance is pooled nationally and shared by allocation."""
        total = inputs.variance.sum(axis=1, keepdims=True)
        weight = inputs.allocation / inputs.allocation.sum()
        return (
            1 - config.national_share
        ) * inputs.variance + config.national_share * total * weight

    config = settlement_model().model_validate({"risk_pool": "national_all", "national_share": 1.0})
    inputs = settlement.PoolInputs(
        variance=np.array([[30.0, -10.0]]),
        hc_excess=np.zeros((1, 2)),
        allocation=np.array([100.0, 300.0]),
        region=np.array(["R", "S"]),
    )
    np.testing.assert_allclose(settlement.settle(inputs, config), [[5.0, 15.0]])
    with pytest.raises(ValueError, match="national_share"):
        settlement_model().model_validate({"risk_pool": "national_all", "national_share": 2.0})


def test_a_new_need_adjustment_is_one_function(restore_registries):
    @need.need_adjustment(
        "rurality", enabled=False, weight=Field(0.2, ge=0.0, le=1.0, description="weight")
    )
    def rurality(weight: float, inputs: need.NeedInputs) -> np.ndarray:
        """Rurality: 1 + weight for ICBs outside London (a made-up adjustment)."""
        return 1.0 + weight * (inputs.region_name != "London")

    config_model = allocation_model()
    assert config_model.model_fields["rurality"].default is False
    inputs = need.NeedInputs(
        imd_score=np.array([20.0, 20.0]),
        imd_health_score=np.zeros(2),
        weight=np.array([1.0, 1.0]),
        region_name=np.array(["London", "Midlands"]),
    )
    off = need.need_multiplier(config_model(market_forces=False), inputs)
    on = need.need_multiplier(config_model(market_forces=False, rurality=True), inputs)
    np.testing.assert_allclose(on / off, [1.0, 1.2])


def test_a_new_result_variable_is_one_entry(monkeypatch):
    """A derived variable declared once appears in results with its units, and its
    summaries get names and attrs without any other change."""
    extra = outputs.Variable(
        "spend_per_patient",
        ("icb", "portfolio"),
        "GBP",
        "spend per patient treated",
        "replicate",
        lambda v: v.row["spend"] / np.where(v.row["patients"] > 0, v.row["patients"], np.nan),
        needs=("spend", "patients"),
    )
    monkeypatch.setattr(outputs, "VARIABLES", (*outputs.VARIABLES, extra))
    from test_engine import _run, _scenario

    ds = _run(_scenario(), range(3))
    assert ds["spend_per_patient"].dims == ("replicate", "year", "icb", "portfolio")
    assert ds["spend_per_patient"].attrs == extra.attrs
    np.testing.assert_allclose(ds["spend_per_patient"], ds["spend"] / ds["patients"])
    names = outputs.schema()
    assert {"spend_per_patient_mean", "spend_per_patient_quantile"} <= set(names)
    assert (
        names["spend_per_patient_mean"].long_name
        == "spend per patient treated: mean over replicates"
    )


def test_a_scenario_naming_an_unregistered_rule_lists_the_registered_ones():
    with pytest.raises(ScenarioError) as caught:
        Scenario.from_dict({"name": "x", "settlement": {"risk_pool": "national_all"}})
    for name in settlement.RISK_POOLS:
        assert name in str(caught.value)
