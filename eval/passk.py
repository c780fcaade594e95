"""The unbiased pass@k estimator (Chen et al. 2021, "Evaluating Large Language Models Trained on Code").

With n samples of which c pass, pass@k = 1 - C(n-c, k) / C(n, k): the probability that k samples drawn
without replacement from the n contain at least one that passes. Averaging it over problems gives an
unbiased estimate of the chance that k fresh samples solve a problem; the naive "any of the first k
passed" has a higher variance, and c/n ** k style formulas are biased.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """pass@k for one problem with `n` samples of which `c` pass; needs 0 <= c <= n and 1 <= k <= n.

    Computed with exact integers (math.comb) and one correctly rounded division, so n = k, c = 0 and
    c = n give exactly 1.0 or 0.0.
    """
    if n < 1 or not 0 <= c <= n:
        raise ValueError(f"pass_at_k: need n >= 1 and 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass_at_k: need 1 <= k <= n, got k={k} with n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def mean_pass_at_k(counts: Iterable[tuple[int, int]], k: int) -> tuple[float | None, int]:
    """Mean pass@k over problems given (n, c) pairs; problems with fewer than k samples are left out.

    Returns (mean or None when no problem has k samples, number of problems averaged).
    """
    values = [pass_at_k(n, c, k) for n, c in counts if n >= k]
    return (sum(values) / len(values) if values else None), len(values)


def parse_ks(text: str, where: str = "k") -> tuple[int, ...]:
    """'1,5,10' -> (1, 5, 10): sorted, unique, each >= 1; `where` names the setting in errors."""
    out: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isdigit() or int(part) < 1:
            raise ValueError(
                f"{where}={text!r}: expected positive integers separated by commas (e.g. 1,5,10)"
            )
        out.add(int(part))
    if not out:
        raise ValueError(f"{where}={text!r}: expected at least one k (e.g. 1,5,10)")
    return tuple(sorted(out))


def ks_up_to(ks: Sequence[int], n: int) -> tuple[int, ...]:
    """The requested ks that n samples per problem can estimate (k <= n)."""
    return tuple(k for k in ks if k <= n)
