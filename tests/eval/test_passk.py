"""The unbiased pass@k estimator: exact values, edge cases, and agreement with brute-force enumeration."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import pytest

from eval.passk import ks_up_to, mean_pass_at_k, parse_ks, pass_at_k


def brute_force(n: int, c: int, k: int) -> Fraction:
    """Share of the k-subsets of n samples (c of them correct) that hold at least one correct sample."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return Fraction(sum(any(samples[i] for i in s) for s in subsets), len(subsets))


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (10, 3, 1, 0.3),
        (10, 3, 5, 1 - 21 / 252),  # 1 - C(7,5)/C(10,5)
        (10, 1, 10, 1.0),
        (5, 2, 2, 1 - 3 / 10),  # 1 - C(3,2)/C(5,2)
        (200, 10, 100, 1 - math.comb(190, 100) / math.comb(200, 100)),
    ],
)
def test_exact_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_edges():
    for n in (1, 2, 7, 20):
        assert pass_at_k(n, 0, 1) == 0.0  # c = 0: never
        assert pass_at_k(n, n, 1) == 1.0  # c = n: always
        assert pass_at_k(n, 0, n) == 0.0  # n = k, none correct
        assert pass_at_k(n, 1, n) == 1.0  # n = k, one correct: the whole set holds it
        assert pass_at_k(n, n, n) == 1.0
    assert pass_at_k(4, 1, 1) == 0.25  # k = 1 is c / n


def test_matches_brute_force_on_small_n():
    for n in range(1, 9):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(float(brute_force(n, c, k)), abs=1e-12), (n, c, k)


def test_invalid_arguments():
    for n, c, k in ((0, 0, 1), (3, 4, 1), (3, -1, 1), (3, 1, 0), (3, 1, 4)):
        with pytest.raises(ValueError):
            pass_at_k(n, c, k)


def test_mean_over_problems_skips_those_with_too_few_samples():
    value, used = mean_pass_at_k([(2, 1), (2, 0), (1, 1)], 2)
    assert used == 2 and value == pytest.approx(0.5)  # (1.0 + 0.0) / 2; the n=1 problem cannot give pass@2
    assert mean_pass_at_k([(1, 1)], 2) == (None, 0)


def test_parse_ks():
    assert parse_ks("10, 1,5,5") == (1, 5, 10)
    assert ks_up_to((1, 5, 10), 5) == (1, 5)
    for bad in ("", "0", "1,x", "-1"):
        with pytest.raises(ValueError, match="EVAL_K"):
            parse_ks(bad, "EVAL_K")
