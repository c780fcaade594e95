"""Confidence intervals for evaluation results: the bootstrap over problems.

The unit of resampling is the problem, not the sample: the samples of one problem are correlated (the
same prompt, the same difficulty), so treating 80 problems x 4 samples as 320 independent draws would
give intervals that are far too narrow. For a before/after comparison the bootstrap is *paired*: each
resample draws problems and takes both models' values on the same problems, so the problems' shared
difficulty cancels out of the difference.

Intervals are percentile intervals. With `n` problems there are n**n equally likely resamples; when
that is at most `resamples` they are all enumerated (the exact bootstrap distribution, no randomness),
otherwise `resamples` of them are drawn with a seeded generator, so a report is reproducible.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

DEFAULT_RESAMPLES = 10_000
DEFAULT_CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap interval, and what it was computed from."""

    estimate: float
    low: float
    high: float
    n: int  # problems
    confidence: float
    resamples: int  # resamples used (n**n when exact)
    exact: bool  # True: every resample was enumerated

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict:
        return asdict(self)


def percentile(sorted_values: np.ndarray, q: float) -> float:
    """The smallest value v of the (sorted) distribution with P(X <= v) >= q (the inverted CDF)."""
    n = len(sorted_values)
    index = max(0, math.ceil(q * n - 1e-9) - 1)
    return float(sorted_values[min(index, n - 1)])


def _resample_means(values: np.ndarray, resamples: int, seed: int) -> tuple[np.ndarray, bool]:
    """Means of bootstrap resamples of `values` (exact enumeration when n**n <= resamples)."""
    n = len(values)
    if n**n <= resamples:
        means = np.array([values[list(idx)].mean() for idx in itertools.product(range(n), repeat=n)])
        return np.sort(means), True
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, 1000):  # chunks keep memory at 1000 x n indices
        stop = min(resamples, start + 1000)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = values[idx].mean(axis=1)
    return np.sort(means), False


def bootstrap_mean(
    values: Sequence[float],
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """The mean of per-problem `values` and its percentile bootstrap interval."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or len(arr) == 0:
        raise ValueError("bootstrap_mean: need a non-empty list of per-problem values")
    if not 0 < confidence < 1:
        raise ValueError(f"bootstrap_mean: confidence must be in (0, 1), got {confidence}")
    means, exact = _resample_means(arr, resamples, seed)
    alpha = (1 - confidence) / 2
    return Interval(
        estimate=float(arr.mean()),
        low=percentile(means, alpha),
        high=percentile(means, 1 - alpha),
        n=len(arr),
        confidence=confidence,
        resamples=len(means),
        exact=exact,
    )


def paired_bootstrap(
    before: Sequence[float],
    after: Sequence[float],
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """The mean of after - before over problems (same order in both) and its paired interval."""
    if len(before) != len(after):
        raise ValueError(
            f"paired_bootstrap: {len(before)} values before but {len(after)} after; pair them by problem"
        )
    diffs = np.asarray(after, dtype=float) - np.asarray(before, dtype=float)
    return bootstrap_mean(diffs, confidence=confidence, resamples=resamples, seed=seed)


def ratio_interval(
    before: Sequence[float],
    after: Sequence[float],
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval | None:
    """mean(after) / mean(before) with a paired bootstrap interval; None when before's mean is 0.

    Resamples whose `before` mean is 0 have no ratio and are left out (the count is in `resamples`).
    """
    b, a = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    if len(b) != len(a) or len(b) == 0:
        raise ValueError("ratio_interval: need two non-empty lists of the same length, paired by problem")
    if b.mean() == 0:
        return None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(b), size=(resamples, len(b)))
    mb, ma = b[idx].mean(axis=1), a[idx].mean(axis=1)
    keep = mb > 0
    ratios = np.sort(ma[keep] / mb[keep])
    alpha = (1 - confidence) / 2
    return Interval(
        estimate=float(a.mean() / b.mean()),
        low=percentile(ratios, alpha),
        high=percentile(ratios, 1 - alpha),
        n=len(b),
        confidence=confidence,
        resamples=int(keep.sum()),
        exact=False,
    )
