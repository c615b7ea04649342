"""Tests for stratalog.cli._stats: nearest-rank percentiles, bounded series."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stratalog.cli._stats import LatencySeries, nearest_rank

from .logs import nearest_rank as reference_rank

durations = st.lists(
    st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1
)


@given(durations, st.integers(min_value=1, max_value=100))
def test_nearest_rank_matches_the_definition(
    values: list[float], percent: int
) -> None:
    """The percentile is the smallest sample with p % of samples at most it."""
    assert nearest_rank(sorted(values), percent) == reference_rank(
        values, percent
    )


@pytest.mark.parametrize(
    ("percent", "expected"),
    [
        pytest.param(50, 5.0, id="p50-of-10-is-the-5th"),
        pytest.param(95, 10.0, id="p95-of-10-is-the-10th"),
        pytest.param(1, 1.0, id="p1-is-the-first"),
        pytest.param(100, 10.0, id="p100-is-the-max"),
    ],
)
def test_nearest_rank_picks_an_observed_sample(
    percent: int, expected: float
) -> None:
    """Ranks round up and never interpolate between samples."""
    assert nearest_rank([float(n) for n in range(1, 11)], percent) == expected


def test_nearest_rank_refuses_an_empty_list() -> None:
    """A percentile of nothing is an error that names the problem."""
    with pytest.raises(ValueError, match="at least one"):
        nearest_rank([], 50)


def test_summary_of_an_empty_series_has_no_figures() -> None:
    """An empty series reports count 0 and None for every figure."""
    summary = LatencySeries().summary()

    assert summary["count"] == 0
    assert summary["p95"] is None
    assert summary["max"] is None


@given(durations)
def test_summary_is_exact_below_the_limit(values: list[float]) -> None:
    """Below the limit count, mean, max and percentiles are exact."""
    series = LatencySeries(limit=10_000)
    series.extend(values)
    summary = series.summary()

    assert summary["count"] == len(values)
    assert summary["exact"] is True
    assert summary["max"] == max(values)
    assert summary["p99"] == reference_rank(values, 99)
    assert summary["mean"] == pytest.approx(sum(values) / len(values))


def test_reservoir_keeps_totals_exact_and_percentiles_close() -> None:
    """Past the limit count/mean/max stay exact and p50 stays within bound."""
    rng = random.Random(7)
    values = [rng.uniform(0, 1000) for _ in range(40_000)]
    limit = 4_000
    series = LatencySeries(limit=limit)
    series.extend(values)
    summary = series.summary()
    ordered = sorted(values)
    # Three standard errors of a quantile's rank in a uniform sample.
    slack = 3 * math.sqrt(0.5 * 0.5 / limit) * len(values)
    low = ordered[int(len(values) * 0.5 - slack)]
    high = ordered[int(len(values) * 0.5 + slack)]

    assert summary["exact"] is False
    assert summary["count"] == len(values)
    assert summary["max"] == max(values)
    assert summary["mean"] == pytest.approx(sum(values) / len(values))
    assert low <= summary["p50"] <= high  # type: ignore[operator]


def test_merged_reservoirs_keep_totals_exact() -> None:
    """Merging two sampled series keeps count, mean and max exact."""
    rng = random.Random(11)
    first = [rng.uniform(0, 100) for _ in range(30_000)]
    second = [rng.uniform(100, 200) for _ in range(10_000)]
    left, right = LatencySeries(limit=4_000), LatencySeries(limit=4_000)
    left.extend(first)
    right.extend(second)

    left.merge(right)
    summary = left.summary()

    assert summary["count"] == 40_000
    assert summary["max"] == max(second)
    assert summary["mean"] == pytest.approx(sum(first + second) / 40_000)
    # Three quarters of the samples lie below 100: the median does too.
    assert summary["p50"] < 100 < summary["p95"]  # type: ignore[operator]


def test_small_series_merge_exactly() -> None:
    """Below the limit a merge is a concatenation."""
    left, right = LatencySeries(), LatencySeries()
    left.extend([3.0, 1.0])
    right.extend([2.0])

    left.merge(right)

    assert left.summary()["p50"] == 2.0
    assert left.exact
