"""How surprising is a count? Tail probabilities under a negative binomial.

Crossings are counts: at a quiet post 0 against 20 expected is already damning, while at
a busy one 4,100 against 4,000 is noise. A negative binomial with mean ``mu`` and
coefficient of variation ``cv`` (variance ``mu + (cv*mu)^2``) covers both ends: Poisson
at low volume, proportional day-to-day swings at high volume. The score an alert carries
is ``-log10`` of the tail probability, signed: +6 is a surge that normal days reach once
in a million, -6 the same for a drop.
"""

from __future__ import annotations

import math

#: The largest score reported (probabilities below 1e-99 are all "impossible").
MAX_SCORE = 99.0


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 5000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-12:
            break
    return h


def _log_betainc(a: float, b: float, x: float) -> float:
    """log of the regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return -math.inf
    if x >= 1.0:
        return 0.0
    front = a * math.log(x) + b * math.log1p(-x) + math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    if x < (a + 1.0) / (a + b + 2.0):
        return front + math.log(_betacf(a, b, x)) - math.log(a)
    # Symmetry: I_x(a, b) = 1 - I_{1-x}(b, a).
    other = math.exp(front + math.log(_betacf(b, a, 1.0 - x)) - math.log(b))
    return math.log1p(-min(other, 1.0)) if other < 1.0 else -math.inf


def log_cdf(k: int, mu: float, cv: float) -> float:
    """log P(X <= k) for X ~ NB(mean mu, variance mu + (cv*mu)^2)."""
    if k < 0:
        return -math.inf
    if mu <= 0:
        return 0.0
    r = 1.0 / max(cv * cv, 1e-9)
    p = r / (r + mu)
    return _log_betainc(r, k + 1.0, p)


def log_sf(k: int, mu: float, cv: float) -> float:
    """log P(X >= k)."""
    if k <= 0:
        return 0.0
    if mu <= 0:
        return -math.inf
    r = 1.0 / max(cv * cv, 1e-9)
    p = r / (r + mu)
    # P(X >= k) = 1 - I_p(r, k) = I_{1-p}(k, r)
    return _log_betainc(float(k), r, 1.0 - p)


def tail_score(observed: int, expected: float, cv: float) -> float:
    """Signed surprise: ``-log10 P(X >= observed)`` above the expectation, ``+log10 P(X <=
    observed)`` below it (so drops are negative), 0 in between."""
    if observed > expected:
        value = -log_sf(observed, expected, cv) / math.log(10)
        return min(value, MAX_SCORE)
    if observed < expected:
        value = -log_cdf(observed, expected, cv) / math.log(10)
        return -min(value, MAX_SCORE)
    return 0.0


def band(expected: float, cv: float, z: float = 2.0) -> tuple[float, float]:
    """A plain-words normal range: expected +- z standard deviations, never below zero."""
    sd = math.sqrt(max(expected, 0.0) + (cv * expected) ** 2)
    return max(0.0, expected - z * sd), expected + z * sd


def share_tail_score(own: int, total: int, share: float, extra_cv: float = 0.0) -> float:
    """Signed surprise of ``own`` crossings of one group out of ``total``, where the group
    usually makes ``share`` of them: ``-log10`` of the binomial tail (``+`` above ``total *
    share``, ``-`` below). Judging a group against the others of the same day makes the
    day's level and shape cancel; what is left is binomial noise and the mix's own
    day-to-day wobble ``extra_cv`` (relative spread of the share), taken in as a design
    effect: the counts are divided by ``1 + extra_cv**2 * total * share / (1 - share)``,
    i.e. the variance ``total*share*(1-share)`` grows by ``(extra_cv * total * share)**2``."""
    if total <= 0 or not 0.0 < share < 1.0:
        return 0.0
    mean = total * share
    if own == mean:
        return 0.0
    design = 1.0 + extra_cv * extra_cv * total * share / (1.0 - share)
    k, n = own / design, total / design
    if own > mean:
        # P(X >= k) = I_share(k, n - k + 1)
        value = -_log_betainc(k, n - k + 1.0, share) / math.log(10)
        return min(value, MAX_SCORE)
    # P(X <= k) = I_{1-share}(n - k, k + 1)
    value = -_log_betainc(n - k, k + 1.0, 1.0 - share) / math.log(10)
    return -min(value, MAX_SCORE)
