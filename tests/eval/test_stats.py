"""The bootstrap intervals of eval.stats, against distributions worked out by hand."""

from __future__ import annotations

import pytest

from eval.stats import bootstrap_mean, paired_bootstrap, percentile, ratio_interval


def test_paired_interval_of_three_problems_is_the_hand_computed_one():
    # after - before per problem = (0, 0, 1). The 27 equally likely resamples have k/3 for k ones,
    # k ~ Binomial(3, 1/3): P(0) = 8/27, P(1/3) = 12/27, P(2/3) = 6/27, P(1) = 1/27.
    # CDF: 0.296, 0.741, 0.963, 1. 95%: low = first value with CDF >= 0.025 = 0,
    # high = first with CDF >= 0.975 = 1. 90%: high = first with CDF >= 0.95 = 2/3.
    before, after = [0.5, 0.2, 0.0], [0.5, 0.2, 1.0]
    iv = paired_bootstrap(before, after)
    assert (iv.estimate, iv.low, iv.high, iv.n, iv.resamples, iv.exact) == (
        pytest.approx(1 / 3),
        0.0,
        1.0,
        3,
        27,
        True,
    )
    iv90 = paired_bootstrap(before, after, confidence=0.90)
    assert (iv90.low, iv90.high) == (0.0, pytest.approx(2 / 3))
    assert not iv.excludes_zero()


def test_a_gain_on_every_problem_excludes_zero():
    iv = paired_bootstrap([0.0] * 4, [0.1, 0.2, 0.3, 0.4])
    # 4**4 = 256 resamples, all enumerated; the smallest possible mean is 0.1, the largest 0.4
    assert iv.exact and iv.resamples == 256
    assert iv.low > 0 and iv.excludes_zero()
    assert iv.estimate == pytest.approx(0.25)
    assert 0.1 <= iv.low < 0.25 < iv.high <= 0.4


def test_large_samples_are_drawn_with_a_seed():
    values = [float(i % 7) / 7 for i in range(80)]
    a, b = bootstrap_mean(values, seed=3), bootstrap_mean(values, seed=3)
    assert a == b and not a.exact and a.resamples == 10_000
    assert a.low < a.estimate < a.high


def test_percentile_is_the_inverted_cdf():
    import numpy as np

    values = np.array([0.0, 0.5, 0.5, 1.0])  # two problems (0, 1): resample means
    assert (percentile(values, 0.025), percentile(values, 0.25), percentile(values, 0.26)) == (0.0, 0.0, 0.5)
    assert percentile(values, 0.975) == 1.0


def test_mismatched_pairs_and_empty_input_are_refused():
    with pytest.raises(ValueError, match="pair them by problem"):
        paired_bootstrap([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_mean([])


def test_ratio_is_none_when_the_base_scored_nothing():
    assert ratio_interval([0.0, 0.0], [0.2, 0.4]) is None
    iv = ratio_interval([0.1] * 10, [0.3] * 10)
    assert (iv.estimate, iv.low, iv.high) == (pytest.approx(3.0), pytest.approx(3.0), pytest.approx(3.0))
