"""One summary, two ways in: `summarize` of a SimResult and `summarize_counts` of the same
step's StepCounts (what `simulate --format json` prints without --out) agree to the last bit,
and the per-component, phase and layer energies are exactly rounded sums."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hwsim.energy import group_sums, per_example_breakdown, summarize, summarize_counts
from hwsim.io.arch import load_arch_with_energies, shipped_archs
from hwsim.sim.engine import simulate, simulate_counts
from tests.sim.test_golden import digits_trace


@pytest.mark.parametrize("spec", shipped_archs())
def test_the_counts_summary_is_the_results(spec):
    arch, energies = load_arch_with_energies(spec)
    for algorithm in ("bp", "dfa", "ssdfa"):
        trace = digits_trace(algorithm)
        full = summarize(simulate(arch, trace, energies=energies), energies)
        alone = summarize_counts(simulate_counts(arch, trace, energies=energies), energies)
        assert json.dumps(alone) == json.dumps(full)


def test_the_summary_sums_the_priced_breakdown():
    arch, energies = load_arch_with_energies("von_neumann_sparse")
    result = simulate(arch, digits_trace("dfa"), energies=energies)
    summary = summarize(result, energies)
    priced = per_example_breakdown(result, energies)
    assert summary["energy_pj"] == float(priced["energy_pj"].sum())
    for column in ("component", "phase", "layer"):
        exact = {
            key: float(sum(map(Fraction, group["energy_pj"].tolist())))
            for key, group in priced.groupby(column, sort=False)
        }
        assert summary["breakdown"][f"energy_pj_by_{column}"] == exact
        assert list(summary["breakdown"][f"energy_pj_by_{column}"]) == list(exact)


@given(
    st.lists(
        st.tuples(
            st.sampled_from("abcde"),
            st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300),
        ),
        max_size=60,
    )
)
def test_group_sums_are_exactly_rounded_in_first_appearance_order(rows):
    keys = [key for key, _ in rows]
    values = np.array([value for _, value in rows], dtype=np.float64)
    sums = group_sums(keys, values)
    assert list(sums) == list(dict.fromkeys(keys))
    for key, total in sums.items():
        exact = sum(Fraction(value) for k, value in rows if k == key)
        assert total == float(exact)
