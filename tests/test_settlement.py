"""Year-end settlement: risk pools, regional risk shares and carry-forward conserve money."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.scenario import Scenario, SettlementConfig
from sim.settlement import RISK_POOLS, PoolInputs, settle_year

REGIONS = np.array(["A", "A", "B", "B", "B"])
ALLOCATION = np.array([100e6, 300e6, 50e6, 150e6, 200e6])


def _inputs(variance: np.ndarray) -> PoolInputs:
    return PoolInputs(variance, np.abs(variance) * 0.1, ALLOCATION, REGIONS)


def test_regional_risk_share_by_hand():
    """Own 50%, pool 50% of which NHS England carries 40%: region A's ICBs have variances
    +10m and -2m, so the pool is 4m; NHS England carries 1.6m, the ICBs 2.4m by allocation
    (0.6m and 1.8m); each keeps half its own (5m, -1m)."""
    config = SettlementConfig(
        risk_pool="regional", regional_pool_share=0.5, regional_nhse_share=0.4
    )
    variance = np.array([[10e6, -2e6, 0.0, 0.0, 0.0]])
    out = settle_year(_inputs(variance), np.zeros_like(variance), config)
    np.testing.assert_allclose(out.outturn[0, :2], [5.6e6, 0.8e6])
    np.testing.assert_allclose(out.nhse, [1.6e6])


def test_carry_forward_moves_a_share_into_next_year_and_nhse_finances_it():
    """carry_forward_share 0.25, no pool: an overspend of 8m leaves the ICB 6m this year
    and 2m less budget next year; NHS England pays 2m now and gets it back next year."""
    config = SettlementConfig(carry_forward_share=0.25)
    first = settle_year(_inputs(np.array([[8e6, 0, 0, 0, 0]])), np.zeros((1, 5)), config)
    assert first.carried_forward[0, 0] == 2e6 and first.outturn[0, 0] == 6e6
    assert first.nhse[0] == 2e6
    second = settle_year(_inputs(np.zeros((1, 5))), first.carried_forward, config)
    assert second.outturn[0, 0] == 1.5e6  # the 2m repayment is this year's overspend...
    assert second.carried_forward[0, 0] == 0.5e6  # ...a quarter of it carried again
    assert second.nhse[0] == 0.5e6 - 2e6  # NHS England is repaid 2m and finances 0.5m


VARIANCES = st.lists(st.floats(-5e7, 5e7, allow_nan=False), min_size=5, max_size=5).map(
    lambda v: np.array([v])
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    years=st.lists(VARIANCES, min_size=1, max_size=4),
    rule=st.sampled_from(sorted(RISK_POOLS)),
    carry=st.sampled_from([0.0, 0.3, 1.0]),
    pooled=st.floats(0.0, 1.0),
    nhse=st.floats(0.0, 1.0),
)
def test_every_rule_with_carry_forward_conserves_money_to_the_pound(
    years, rule, carry, pooled, nhse
):
    """Each year: the ICBs' variances = what they end with + what NHS England bears; over
    the years every pound ends with an ICB, NHS England, or the last carry-forward."""
    config = SettlementConfig(
        risk_pool=rule,
        carry_forward_share=carry,
        regional_pool_share=pooled,
        regional_nhse_share=nhse,
    )
    brought = np.zeros((1, 5))
    total_variance = total_outturn = total_nhse = 0.0
    for variance in years:
        out = settle_year(_inputs(variance), brought, config)
        assert abs(variance.sum() - out.outturn.sum() - out.nhse.sum()) < 1.0
        assert np.array_equal(out.carried_forward, np.rint(out.carried_forward))
        total_variance += variance.sum()
        total_outturn += out.outturn.sum()
        total_nhse += out.nhse.sum()
        brought = out.carried_forward
    assert abs(total_variance - total_outturn - total_nhse) < 1.0


def test_the_engine_settles_with_carry_forward_and_conserves(reference_data):
    """On the packaged data: spend - allocation, summed over ICBs, equals what ICBs end
    with plus what NHS England bears, every year and replicate, to the pound."""
    from sim.simulate import simulate

    sc = Scenario.model_validate(
        {
            "name": "carry",
            "time": {"base_year": 2024, "end_year": 2027},
            "settlement": {
                "risk_pool": "regional",
                "regional_nhse_share": 0.5,
                "carry_forward_share": 0.5,
            },
        }
    )
    ds = simulate(sc, range(3), 4, reference_data)
    variance = ds["variance_to_budget"].sel(portfolio="delegated").sum("icb")
    outturn = (ds["overspend_after_pooling"] * ds["allocation"]).sum("icb")
    gap = abs(variance - outturn - ds["nhse_risk_cost"])
    assert float(gap.max()) < 1.0
    forward = ds["carried_forward"]
    assert float(abs(forward).sum()) > 0 and (forward == np.rint(forward)).all()


@pytest.fixture(scope="module")
def reference_data():
    from sim.reference import load_data

    return load_data()
