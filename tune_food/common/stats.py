"""The statistics a leaderboard stands on, each with its source.

* :func:`wilson_interval`: the 95 % interval of a per-image accuracy (Wilson 1927, score
  interval of a binomial proportion; ``scipy.stats.binomtest(...).proportion_ci``).
* :func:`mcnemar_exact`: are two classifiers different on the same images? (McNemar
  1947, exact form: a two-sided binomial test of the discordant images,
  ``scipy.stats.binomtest``).
* :func:`t_half_width`: the half-width of the t-interval of a mean over seeds
  (Student 1908; ``scipy.stats.t``); :func:`t_interval` the interval of one sample's mean.
* :func:`paired_t_test`: do two configurations differ over the same seeds? (Student
  1908, the paired t-test: a one-sample t-test of the per-seed differences,
  ``scipy.stats.ttest_rel``). It fits a confirmation (``--confirm``): each seed is an
  independent replication of the training randomness (initialisation, batch order) on
  the same train, validation and test images, and each configuration runs with the same
  seeds, so the pairs share whatever a seed does alike to both; unlike the resampled
  t-test Dietterich (1998, "Approximate statistical tests for comparing supervised
  classification learning algorithms", Neural Computation 10(7)) warns against, no two
  replications share training images differently, so the differences are independent.
  What it answers: would the difference survive another seed, on these images. Whether
  it survives other images is the per-image question McNemar's test answers.

:data:`ALPHA` is the level at which a trial counts as indistinguishable from the best
(``p >= ALPHA``) and :data:`CONFIDENCE` the level of every interval; both are stated only
here, and the leaderboard, its summary line and its plot read them.
"""

from __future__ import annotations

from typing import Sequence

import math

from scipy.stats import binomtest, ttest_rel
from scipy.stats import t as student_t

ALPHA = 0.05          # McNemar: p >= ALPHA is "indistinguishable from the best"
CONFIDENCE = 0.95     # Wilson and t-intervals


def wilson_interval(correct: int, total: int,
                    confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``correct / total``.

    On 75 test images one image is 1.3 points; 70/75 gives (0.853, 0.971).

    Returns:
        ``(low, high)`` in [0, 1].

    Raises:
        ValueError: ``total < 1`` or ``correct`` outside ``[0, total]``.
    """
    if total < 1 or not 0 <= correct <= total:
        raise ValueError(f"need 0 <= correct <= total and total >= 1, got {correct}/{total}")
    ci = binomtest(int(correct), int(total)).proportion_ci(confidence_level=confidence,
                                                          method="wilson")
    return float(ci.low), float(ci.high)


def mcnemar_exact(best: Sequence[bool], other: Sequence[bool]) -> float:
    """Two-sided exact McNemar test of two classifiers on the same images.

    Args:
        best, other: per image, whether each classifier got it right (same order).

    Returns:
        The p-value: a two-sided binomial test (p = 0.5) of the discordant images,
        b = images only ``best`` gets right against c = images only ``other`` gets
        right; 1.0 when b + c = 0.
    """
    b = sum(1 for x, y in zip(best, other) if x and not y)
    c = sum(1 for x, y in zip(best, other) if y and not x)
    # mutmut: `b - c == 0` is equivalent (b == c gives p = 1.0 from binomtest too), and
    # so is dropping 0.5 (binomtest's default p)
    return 1.0 if b + c == 0 else float(binomtest(min(b, c), b + c, 0.5).pvalue)  # pragma: no mutate


def t_half_width(std, n, confidence: float = CONFIDENCE):
    """Half-width of the t-interval of a mean: ``t((1 + confidence) / 2, n - 1) * std /
    sqrt(n)``; NaN where ``n < 2`` (one seed has no spread). ``std`` and ``n`` may be
    pandas Series (element-wise)."""
    # mutmut: n >= 1 is equivalent: one seed has no std (NaN), so no interval either
    return student_t.ppf((1 + confidence) / 2, (n - 1).where(n > 1)) * std / n.pow(0.5)  # pragma: no mutate


def t_interval(values: Sequence[float],
               confidence: float = CONFIDENCE) -> tuple[float, float, float, float]:
    """Mean, sample standard deviation (``ddof=1``) and t-interval of the mean of
    ``values`` (one figure per seed): ``mean -/+ t((1 + confidence) / 2, n - 1) * std /
    sqrt(n)`` (Student 1908; ``scipy.stats.t``).

    Returns:
        ``(mean, std, low, high)``; std, low and high are NaN for fewer than 2 values;
        an interval of zero width where every value is the same.

    Raises:
        ValueError: no values.
    """
    n = len(values)
    if n < 1:
        raise ValueError("t_interval needs at least one value")
    mean = math.fsum(values) / n
    if n < 2:
        return mean, math.nan, math.nan, math.nan
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(student_t.ppf((1 + confidence) / 2, n - 1)) * std / math.sqrt(n)
    return mean, std, mean - half, mean + half


def paired_t_test(best: Sequence[float], other: Sequence[float]) -> float:
    """Two-sided paired t-test of two configurations' figures over the same seeds
    (``scipy.stats.ttest_rel``; why it fits repeated seeds: the module's docstring).

    Args:
        best, other: one figure per seed, the same seeds in the same order.

    Returns:
        The p-value; 1.0 where every difference is zero (no evidence of any), NaN for
        fewer than 2 pairs.

    Raises:
        ValueError: the two differ in length.
    """
    if len(best) != len(other):
        raise ValueError(f"paired figures differ in length: {len(best)} and {len(other)}")
    if len(best) < 2:
        return math.nan
    diffs = [b - o for b, o in zip(best, other)]
    if all(d == 0 for d in diffs):
        return 1.0
    if len(set(diffs)) == 1:   # the same nonzero difference each seed: no spread, p = 0
        return 0.0             # (scipy says so too, with a RuntimeWarning of precision loss)
    return float(ttest_rel(best, other).pvalue)
