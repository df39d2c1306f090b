"""The statistics the leaderboard stands on (:mod:`tune_food.common.stats`), against their
formulas computed here by hand: binomial sums with ``math.comb`` for McNemar, Wilson's
closed form, Student's t from a printed table."""

from __future__ import annotations

import math
import warnings
from statistics import NormalDist

import pandas as pd
import pytest

from tune_food.common.stats import ALPHA, CONFIDENCE, mcnemar_exact, t_half_width, wilson_interval


def test_the_levels():
    assert (ALPHA, CONFIDENCE) == (0.05, 0.95)


def exact_mcnemar_by_hand(b: int, c: int) -> float:
    """2 * P(X <= min(b, c)) for X ~ Binomial(b + c, 1/2), at most 1 (McNemar, exact)."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


@pytest.mark.parametrize("b,c", [(1, 6), (0, 8), (3, 3), (2, 9), (10, 4), (0, 0), (12, 30)])
def test_mcnemar_exact_equals_the_binomial_sum(b, c):
    same = 5
    best = [True] * same + [True] * b + [False] * c + [False] * 2
    other = [True] * same + [False] * b + [True] * c + [False] * 2
    assert mcnemar_exact(best, other) == pytest.approx(exact_mcnemar_by_hand(b, c), rel=1e-12)
    assert mcnemar_exact(other, best) == pytest.approx(exact_mcnemar_by_hand(b, c), rel=1e-12)


def test_mcnemar_known_values():
    # 2 * (1 + 7) / 128 and 2 / 256, as statsmodels' mcnemar(exact=True) gives them
    assert mcnemar_exact([1, 0, 0, 0, 0, 0, 0], [0, 1, 1, 1, 1, 1, 1]) == pytest.approx(0.125)
    assert mcnemar_exact([True] * 8, [False] * 8) == pytest.approx(0.0078125)


def wilson_by_hand(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize("k,n,conf", [(70, 75, 0.95), (0, 10, 0.95), (10, 10, 0.95),
                                      (1, 3, 0.95), (37, 75, 0.9), (211, 211, 0.99),
                                      (1, 1, 0.95), (0, 1, 0.95)])
def test_wilson_interval_is_the_wilson_interval(k, n, conf):
    low, high = wilson_interval(k, n, conf)
    exp_low, exp_high = wilson_by_hand(k, n, conf)
    assert low == pytest.approx(max(0.0, exp_low), abs=1e-12)
    assert high == pytest.approx(min(1.0, exp_high), abs=1e-12)


def test_wilson_interval_known_values():
    low, high = wilson_interval(70, 75)
    assert (round(low, 3), round(high, 3)) == (0.853, 0.971)   # as the docstring says
    # 0 of 10: [0, z^2 / (n + z^2)] with z = 1.959964
    assert wilson_interval(0, 10) == pytest.approx((0.0, 3.841459 / 13.841459), abs=1e-6)
    with pytest.raises(ValueError, match="0 <= correct <= total"):
        wilson_interval(3, 2)
    with pytest.raises(ValueError, match="total >= 1"):
        wilson_interval(0, 0)


def test_t_half_width_is_students_interval():
    # t(0.975, 1) = 12.706, t(0.975, 2) = 4.303 (printed tables); one seed: no interval
    n, std = pd.Series([2, 3, 1]), pd.Series([0.05, 0.05, float("nan")])
    half = t_half_width(std, n)
    assert half[0] == pytest.approx(12.7062 * 0.05 / math.sqrt(2), rel=1e-4)
    assert half[1] == pytest.approx(4.3027 * 0.05 / math.sqrt(3), rel=1e-4)
    assert math.isnan(half[2])
    assert t_half_width(std, n, 0.9)[1] == pytest.approx(2.9200 * 0.05 / math.sqrt(3), rel=1e-4)


# ------------------------------------------------------------------ a confirmation's statistics


def test_t_interval_is_the_mean_with_students_t_from_a_printed_table():
    from tune_food.common.stats import t_interval

    # t(0.975, 2) = 4.302653 and t(0.975, 4) = 2.776445 (printed tables)
    mean, std, low, high = t_interval([0.9, 0.92, 0.95])
    sd = math.sqrt(((0.9 - 0.9233333) ** 2 + (0.92 - 0.9233333) ** 2 + (0.95 - 0.9233333) ** 2) / 2)
    assert (mean, std) == pytest.approx((0.9233333, sd), abs=1e-6)
    assert (low, high) == pytest.approx((mean - 4.302653 * sd / math.sqrt(3),
                                         mean + 4.302653 * sd / math.sqrt(3)), abs=1e-6)
    mean, std, low, high = t_interval([1, 2, 3, 4, 5])
    assert (mean, std) == pytest.approx((3, math.sqrt(2.5)))
    assert high - mean == pytest.approx(2.776445 * math.sqrt(2.5) / math.sqrt(5), abs=1e-6)
    assert t_interval([0.5, 0.5]) == (0.5, 0.0, 0.5, 0.5)          # no spread: no width
    assert all(math.isnan(x) for x in t_interval([0.7])[1:])        # one seed: no spread
    with pytest.raises(ValueError, match="^t_interval needs at least one value$"):
        t_interval([])


def test_the_paired_t_test_over_seeds_by_hand():
    from tune_food.common.stats import paired_t_test

    # differences 0.1, 0.2, 0.3: t = 0.2 / (0.1 / sqrt 3); with 2 degrees of freedom
    # Student's t has a closed form: two-sided p = 1 - t / sqrt(2 + t^2)
    t = 0.2 / (0.1 / math.sqrt(3))
    best, other = [0.9, 0.9, 0.9], [0.8, 0.7, 0.6]
    assert paired_t_test(best, other) == pytest.approx(1 - t / math.sqrt(2 + t * t), abs=1e-9)
    assert paired_t_test(other, best) == paired_t_test(best, other)
    assert paired_t_test([0.9, 0.8], [0.9, 0.8]) == 1.0       # no difference at all
    with warnings.catch_warnings():   # and no RuntimeWarning of scipy's for it
        warnings.simplefilter("error")
        assert paired_t_test([1.0, 0.5], [0.75, 0.25]) == 0.0     # the same difference every seed
    assert paired_t_test([0.5, 1.0, 0.5], [0.25, 0.75, 0.5]) < 0.5   # not all the same
    assert math.isnan(paired_t_test([0.9], [0.8]))            # one pair: no test
    with pytest.raises(ValueError, match="^paired figures differ in length: 2 and 1$"):
        paired_t_test([0.9, 0.8], [0.8])
