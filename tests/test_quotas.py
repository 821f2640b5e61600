"""The request and quota rules on small hand-worked examples, and their invariants."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocator.cli import main
from scenarios import reference
from scenarios.behaviour import Behaviour, calibrate, observed_ratios
from scenarios.quotas import (DanishQuota, FixedQuotas, NorwegianRequest, QuotaRule, SwedishKey,
                              largest_remainder, make_rule, regional_sums, split_minors)
from scenarios.quotas.norwegian import with_minimum


def munis(pops: list[int], counties: list[str] | None = None, **columns: list[float]) -> pd.DataFrame:
    n = len(pops)
    return pd.DataFrame({
        "municipality_id": [f"{k:04d}" for k in range(1, n + 1)],
        "name": [f"M{k}" for k in range(1, n + 1)],
        "county_id": counties or ["01"] * n,
        "population": pops,
        **columns,
    })


# -- rounding ---------------------------------------------------------------------------------
def test_largest_remainder_by_hand():
    # exact 3.5, 2.1, 1.4: floors 3, 2, 1 (6); the missing person goes to the largest remainder (.5)
    assert largest_remainder([0.5, 0.3, 0.2], 7).tolist() == [4, 2, 1]
    # exact 28.337, 44.731, 26.932: two missing persons go to .932 and .731
    assert largest_remainder([30.25, 47.75, 28.75], 100).tolist() == [28, 45, 27]


def test_largest_remainder_ties_and_zeros():
    # equal remainders: the larger exact number first, then input order
    assert largest_remainder([1, 1, 1], 2).tolist() == [1, 1, 0]
    assert largest_remainder([1, 3], 2).tolist() == [0, 2]  # exact 0.5, 1.5: tie in remainder, larger wins
    assert largest_remainder([0, 1, 0], 5).tolist() == [0, 5, 0]
    assert largest_remainder([2, 2], 0).tolist() == [0, 0]
    with pytest.raises(ValueError):
        largest_remainder([0, 0], 3)
    with pytest.raises(ValueError):
        largest_remainder([1, -1], 3)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=30), st.integers(0, 100_000))
def test_largest_remainder_properties(weights, total):
    w = np.array(weights)
    if w.sum() <= 0:
        return
    q = largest_remainder(w, total)
    exact = w / w.sum() * total
    assert q.sum() == total
    assert np.all(np.abs(q - exact) < 1 + 1e-6)
    assert np.all(q[w == 0] == 0)


# -- Danish ---------------------------------------------------------------------------------------
def test_danish_hand_example():
    """p = .50 .30 .15 .05; i = .65 .15 .05 .15 -> a = .35 .45 .25 -.05; L = 100, F_k = 10 4 0 1 (F = 15):
    computed = a x 115 - F_k = 30.25, 47.75, 28.75, -6.75 -> 0; scaled to 100: 28.337, 44.731, 26.932 ->
    largest remainder 28, 45, 27, 0."""
    table = DanishQuota().compute(
        munis([500, 300, 150, 50], immigrants=[650, 150, 50, 150], family_reunified=[10, 4, 0, 1]), 100)
    assert np.allclose(table["a"], [0.35, 0.45, 0.25, -0.05])
    assert np.allclose(table["computed"], [30.25, 47.75, 28.75, -6.75])
    assert np.allclose(table["scaled"], [28.3372, 44.7307, 26.9321, 0.0], atol=1e-4)
    assert table["quota"].tolist() == [28, 45, 27, 0]
    assert table["quota"].sum() == 100
    assert list(table.columns[:6]) == ["municipality_id", "name", "county_id", "population", "share", "quota"]


def test_danish_zero_quota_from_family_reunification():
    """a_k > 0 but the family members already reunified there exceed its computed number:
    p = i = .4 .4 .2, L = 60, F_k = 0 0 30: computed = 36, 36, 0.2 x 90 - 30 = -12 -> 0; 30, 30, 0."""
    table = DanishQuota().compute(munis([400, 400, 200], immigrants=[4, 4, 2], family_reunified=[0, 0, 30]), 60)
    assert table["a"].tolist() == pytest.approx([0.4, 0.4, 0.2])
    assert table["computed"].tolist() == pytest.approx([36, 36, -12])
    assert table["quota"].tolist() == [30, 30, 0]


def test_danish_uses_landstal_plus_f_not_landstal():
    """Without negatives the computed numbers add up to L exactly: sum a_k (L + F) - F = L."""
    table = DanishQuota().compute(munis([100, 100], immigrants=[1, 1], family_reunified=[5, 0]), 20)
    assert table["computed"].tolist() == pytest.approx([7.5, 12.5])  # 0.5 x 25 - 5, 0.5 x 25 - 0
    assert table["quota"].tolist() == [7, 13]  # exact 7.5 / 12.5: tie in remainder, larger first


def test_danish_regional_sums():
    table = DanishQuota().compute(munis([500, 300, 150, 50], counties=["A", "A", "B", "B"],
                                        immigrants=[650, 150, 50, 150], family_reunified=[10, 4, 0, 1]), 100)
    regions = regional_sums(table)
    assert regions.set_index("county_id")["quota"].to_dict() == {"A": 73, "B": 27}


def test_danish_synthetic_proxy_is_labelled_and_seeded():
    real = reference.municipalities()
    a = DanishQuota(seed=3).compute(real, 5000)
    b = DanishQuota(seed=3).compute(real, 5000)
    assert a["quota"].equals(b["quota"]) and a["quota"].sum() == 5000
    assert any("SYNTHETIC" in n for n in a.attrs["notes"])
    assert (a["quota"] == 0).any()  # municipalities with many immigrants get a zero quota
    with pytest.raises(ValueError, match="immigrants"):
        DanishQuota(allow_synthetic=False).compute(real, 5000)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 10_000), st.integers(0, 5_000), st.integers(0, 50)),
                min_size=2, max_size=15), st.integers(1, 3_000))
def test_danish_invariants(rows, total):
    pops, imm, fam = map(list, zip(*rows))
    if sum(imm) == 0:
        imm[0] = 1
    table = DanishQuota().compute(munis(pops, immigrants=imm, family_reunified=fam), total)
    if (table["computed"] > 0).any():
        assert table["quota"].sum() == total
        assert (table.loc[table["computed"] <= 0, "quota"] == 0).all()
        assert (table["quota"] >= 0).all()


# -- Norwegian -------------------------------------------------------------------------------------
def test_norwegian_request_raises_to_minimum_by_hand():
    """Population only, over-ask 1.25 x 80 = 100: exact 60, 25, 10, 5. 5 < 10 -> 10, the rest 90 by
    share: 56.84, 23.68, 9.47; 9.47 < 10 -> 10, the rest 80: 56.47, 23.53 -> 56, 24."""
    rule = NorwegianRequest(over_ask=1.25, weights={"population": 1.0})
    table = rule.compute(munis([600, 250, 100, 50]), 80)
    assert table["quota"].tolist() == [56, 24, 10, 10]


def test_norwegian_request_drop_mode_by_hand():
    """Drop the smallest below 10 (exact 5), the rest 100 over 950: 63.16, 26.32, 10.53 -> 63, 26, 11, 0."""
    rule = NorwegianRequest(over_ask=1.25, weights={"population": 1.0}, below_minimum="drop")
    assert rule.compute(munis([600, 250, 100, 50]), 80)["quota"].tolist() == [63, 26, 11, 0]


def test_norwegian_request_falls_back_to_drop_when_minimum_impossible(caplog):
    rule = NorwegianRequest(over_ask=1.0, weights={"population": 1.0})
    with caplog.at_level(logging.WARNING):
        table = rule.compute(munis([100, 100, 100, 1000]), 25)
    assert "dropping" in caplog.text
    assert table["quota"].sum() == 25
    assert ((table["quota"] == 0) | (table["quota"] >= 10)).all()


def test_norwegian_request_on_real_municipalities():
    table = NorwegianRequest().compute(reference.municipalities(), 12000)
    assert table["quota"].sum() == round(1.13 * 12000)
    assert table["quota"].min() >= 10 and len(table) == 357
    assert table.set_index("name").loc["Oslo", "quota"] == table["quota"].max()


# -- Swedish --------------------------------------------------------------------------------------
def swedish_input() -> pd.DataFrame:
    return munis([300, 100, 600], counties=["A", "A", "B"], labour_market=[200, 0, 800],
                 earlier_reception=[50, 50, 100])


def test_swedish_key_by_hand():
    """p = .4/.6, labour .2/.8, earlier reception .5/.5 -> compensating 2p - e = .3/.7.
    County share A = .43 x .2 + .37 x .4 + .20 x .3 = .294, B = .706 -> 29.4, 70.6 -> 29, 71.
    Within A by population 300:100 -> 21.75, 7.25 -> 22, 7."""
    table = SwedishKey().compute(swedish_input(), 100)
    assert table["county_share"].tolist() == pytest.approx([0.294, 0.294, 0.706])
    assert table["county_quota"].tolist() == [29, 29, 71]
    assert table["quota"].tolist() == [22, 7, 71]


def test_swedish_key_proportional_reception():
    table = SwedishKey(reception_effect="proportional").compute(swedish_input(), 100)
    assert table["county_quota"].tolist() == [33, 33, 67]  # A = .086 + .148 + .1 = .334


def test_swedish_key_on_real_municipalities():
    table = SwedishKey().compute(reference.municipalities(), 10000)
    assert table["quota"].sum() == 10000
    counties = table.attrs["counties"]
    assert len(counties) == 15 and counties["county_quota"].sum() == 10000
    within = table.groupby("county_id")["quota"].sum()
    assert within.to_dict() == counties.set_index("county_id")["county_quota"].to_dict()


# -- shared -------------------------------------------------------------------------------------------
def test_every_rule_implements_the_interface():
    for name in ("norwegian", "danish", "swedish", "fixed"):
        assert isinstance(make_rule(name), QuotaRule)
    with pytest.raises(ValueError, match="unknown rule"):
        make_rule("german")
    with pytest.raises(ValueError, match="bad parameters"):
        make_rule("danish", {"landstal": 3})


def test_fixed_quotas_and_minors_split():
    table = FixedQuotas(quotas={"0001": 5, "0003": 2}).compute(munis([1, 1, 1]), 999)
    assert table["quota"].tolist() == [5, 0, 2]
    assert split_minors(np.array([5, 0, 2]), 3).tolist() == [2, 0, 1]  # exact 2.14, 0, 0.86
    assert split_minors(np.array([1, 0, 0]), 4).tolist() == [1, 0, 0]  # never more minors than persons


def test_calibration_fit_is_stable():
    persons, minors = calibrate()
    assert len(observed_ratios()) == 38
    assert persons.a == pytest.approx(11.19, abs=0.05) and persons.b == pytest.approx(2.62, abs=0.05)
    assert persons.mean == pytest.approx(0.892, abs=0.005)
    assert minors.mean == pytest.approx(0.82, abs=0.01)


def test_behaviour_binding_and_voluntary():
    rng = np.random.default_rng(0)
    binding = Behaviour("binding")
    assert binding.resolve(np.array([10, 0]), np.array([2, 0]), rng)[0].tolist() == [10, 0]
    assert binding.answer(3, rng).all()
    voluntary = Behaviour("voluntary", decline_rate=1.0)
    assert not voluntary.answer(3, rng).any()
    resolved, minors = Behaviour("voluntary").resolve(np.full(2000, 100), np.full(2000, 10), rng)
    assert 85 < resolved.mean() < 93 and (minors <= resolved).all()


# -- CLI --------------------------------------------------------------------------------------------
def test_cli_quotas_csv(capsys):
    assert main(["quotas", "--policy", "danish", "--total", "500", "--csv", "--year", "2026"]) == 0
    from io import StringIO

    table = pd.read_csv(StringIO(capsys.readouterr().out), dtype={"municipality_id": str})
    assert len(table) == 357 and table["quota"].sum() == 500 and (table["year"] == 2026).all()


def test_cli_quotas_table_and_counties(capsys):
    assert main(["quotas", "--policy", "swedish", "--total", "1000", "--by-county"]) == 0
    out = capsys.readouterr().out
    assert "Vestland" in out and "1,000 persons" in out
    assert main(["quotas", "--policy", "norwegian", "--total", "9000", "--minors", "300",
                 "--param", "over_ask=1.2"]) == 0
    out = capsys.readouterr().out
    assert "10,800 persons" in out and "Oslo" in out


def test_with_minimum_edge_cases():
    # a municipality with share 0 is never asked; the total is kept
    assert with_minimum(np.array([0.0, 0.5, 0.5]), 30, 10).tolist() == [0, 15, 15]
    # the total is below one minimum: the largest municipality is asked for all of it
    assert with_minimum(np.array([0.2, 0.8]), 7, 10, "drop").tolist() == [0, 7]
    assert with_minimum(np.array([0.2, 0.8]), 0, 10).tolist() == [0, 0]
