"""Routing worlds for the benchmarks: LLM providers with quality, cost (dollars) and
latency (ms) per request, seeded, with exact expected values and exact oracles.

A request has a kind (chat, code, summarise, reasoning) and a prompt length in
tokens (lognormal per kind). Its feature vector, what a learner sees, is
``[1, is_code, is_summarise, is_reasoning, log-length, tokens / 10k]`` (d = 6).
Per provider and request:

* quality ~ Beta with mean ``quality[kind] − long_drop[kind] · n / (n + 3000)``
  (n = prompt tokens) and concentration ``concentration``: a request-type ×
  provider × length interaction that saturates, which a per-arm linear model in
  the features above cannot represent (it is exact when ``long_drop`` is zero);
* cost = (price_in · billed input + price_out · output tokens) / 1e6 dollars, the
  output tokens uniform within ±50 % of their mean (per kind × provider verbosity);
  with ``cache_tokens`` the billed input saturates, ``c · (1 − e^(−n/c))`` (prompt
  caching), so cost is concave in the prompt length;
* latency ~ lognormal ms, median ``latency_ms`` × kind factor × (1 + n / 20k),
  log-sd ``latency_sigma`` (1.0 is a heavy tail: the mean is 1.65 × the median).

A world may drift: a ``Change`` at a fraction of the stream scales a provider's
prices (a price cut) or shifts its quality per kind (a silent regression).

Every expected value is exact, so regret and the constrained oracles are too:
``lagrangian_oracle`` maximises a mean value subject to a mean spend, by the
per-request argmax of value − λ·spend with λ found by bisection and a randomised
mix of the two policies at the boundary (optimal for the linear programme over
per-request arm distributions). ``quality_floor_oracle`` and ``budget_oracle`` are
its two uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from policy_store import RewardSpec
from policy_store.simulator import Stream

KINDS = ("chat", "code", "summarise", "reasoning")
KIND_MIX = (0.4, 0.25, 0.2, 0.15)
PROMPT_MEDIAN = (400.0, 1500.0, 4000.0, 800.0)  # tokens
OUTPUT_MEAN = (250.0, 500.0, 200.0, 700.0)  # tokens, for a provider of verbosity 1
LATENCY_FACTOR = (0.8, 1.3, 1.2, 2.0)
MAX_TOKENS = 20_000
N_FEATURES = 6
COST_CAP = 0.3  # dollars: above any request's cost, so normalising never clips
LATENCY_CAP_MS = 10_000.0


@dataclass(frozen=True)
class Provider:
    """One LLM provider: prices ($ per 1M tokens), quality per kind, latency."""

    name: str
    price_in: float
    price_out: float
    quality: tuple[float, float, float, float]
    long_drop: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    verbosity: float = 1.0
    latency_ms: float = 1000.0
    latency_sigma: float = 0.3
    cache_tokens: float | None = None


@dataclass(frozen=True)
class Change:
    """From ``at`` (a fraction of the stream) on, ``provider``'s prices are multiplied
    by ``price_factor`` and ``quality_delta`` is added to its quality per kind."""

    at: float
    provider: str
    price_factor: float = 1.0
    quality_delta: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Draw:
    """T pre-drawn requests: every provider's outcome and its exact expectation.

    ``quality``/``cost``/``latency`` (T, K) are the outcomes each provider would
    give (only the served one's is revealed); ``eq``/``ec`` are exact expected
    quality and dollars, ``el`` the exact E[min(latency / cap, 1)].
    """

    kinds: np.ndarray
    tokens: np.ndarray
    contexts: np.ndarray
    quality: np.ndarray
    cost: np.ndarray
    latency: np.ndarray
    eq: np.ndarray
    ec: np.ndarray
    el: np.ndarray

    def __len__(self) -> int:
        return int(self.contexts.shape[0])

    def request(self, t: int) -> dict:
        """Request ``t`` as a proxy sees it (``features`` turns it into the context)."""
        return {"kind": KINDS[int(self.kinds[t])], "tokens": float(self.tokens[t])}

    def stream(self, spec: RewardSpec) -> Stream:
        """The scalar-reward view for ``bench_learning``: observed and exact expected reward
        of every provider under ``spec`` (in [0, 1]; the caps never clip cost)."""
        wq, wc, wl = spec.quality_weight, spec.cost_weight, spec.latency_weight
        cap_c, cap_l = spec.cost_cap or 1.0, spec.latency_cap_ms or 1.0
        observed = (
            wq * self.quality
            + wc * (1.0 - np.minimum(self.cost / cap_c, 1.0))
            + wl * (1.0 - np.minimum(self.latency / cap_l, 1.0))
        )
        expected = wq * self.eq + wc * (1.0 - self.ec / cap_c) + wl * (1.0 - self.el)
        return Stream(self.contexts, observed, expected)


def features(request: dict) -> tuple[float, ...]:
    """The feature vector of a request ``{"kind": ..., "tokens": ...}`` (d = 6)."""
    k = KINDS.index(request["kind"])
    n = float(request["tokens"])
    return (1.0, float(k == 1), float(k == 2), float(k == 3), math.log(n / 1000.0) / 1.5, n / 1e4)


def _phi(z: np.ndarray) -> np.ndarray:
    erf = np.vectorize(math.erf, otypes=[float])
    return 0.5 * (1.0 + erf(z / math.sqrt(2.0)))


def clipped_lognormal_mean(median: np.ndarray, sigma: float, cap: float) -> np.ndarray:
    """E[min(L / cap, 1)] for L lognormal with ``median`` and log-sd ``sigma``."""
    mu = np.log(median)
    c = math.log(cap)
    below = np.exp(mu + sigma**2 / 2) * _phi((c - mu - sigma**2) / sigma)
    return (below + cap * (1.0 - _phi((c - mu) / sigma))) / cap


@dataclass(frozen=True)
class World:
    """Providers, traffic and changes; ``baseline`` is what the static rule serves."""

    name: str
    description: str
    providers: tuple[Provider, ...]
    baseline: str
    changes: tuple[Change, ...] = ()
    concentration: float = 12.0
    prompt_sigma: float = 0.9
    kind_mix: tuple[float, ...] = field(default=KIND_MIX)

    @property
    def arms(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.providers)

    @property
    def n_arms(self) -> int:
        return len(self.providers)

    @property
    def n_features(self) -> int:
        return N_FEATURES

    def reward_spec(self) -> RewardSpec:
        """The default weights with this world's caps (dollars, milliseconds)."""
        return RewardSpec(cost_cap=COST_CAP, latency_cap_ms=LATENCY_CAP_MS)

    def providers_at(self, t: int, rounds: int) -> tuple[Provider, ...]:
        """The providers as they are at round ``t`` of ``rounds`` (changes applied)."""
        out = list(self.providers)
        for ch in self.changes:
            if t >= int(ch.at * rounds):
                i = self.arms.index(ch.provider)
                p = out[i]
                q = tuple(a + b for a, b in zip(p.quality, ch.quality_delta, strict=True))
                out[i] = replace(
                    p,
                    price_in=p.price_in * ch.price_factor,
                    price_out=p.price_out * ch.price_factor,
                    quality=q,
                )
        return tuple(out)

    def prices_at(self, t: int, rounds: int) -> dict[str, tuple[float, float]]:
        """List prices ($ per 1M input, output tokens) of every provider at round ``t``."""
        return {p.name: (p.price_in, p.price_out) for p in self.providers_at(t, rounds)}

    def budget(self, share: float = 0.3, rounds: int = 20_000, seed: int = 12_345) -> float:
        """A budget in dollars per request, ``share`` of the way from the cheapest routing
        to the best-quality routing of the initial traffic (two significant digits)."""
        draw = replace(self, changes=()).draw(rounds, seed)
        rows = np.arange(rounds)
        cheapest = float(draw.ec.min(axis=1).mean())
        best = float(draw.ec[rows, draw.eq.argmax(axis=1)].mean())
        value = cheapest + share * (best - cheapest)
        return float(f"{value:.2g}")

    def draw(self, rounds: int, seed: int) -> Draw:
        """Draw ``rounds`` requests and every provider's outcome (seeded)."""
        rng = np.random.default_rng(seed)
        kinds = rng.choice(len(KINDS), size=rounds, p=np.asarray(self.kind_mix))
        median = np.asarray(PROMPT_MEDIAN)[kinds]
        tokens = np.clip(
            np.round(median * np.exp(self.prompt_sigma * rng.standard_normal(rounds))),
            20,
            MAX_TOKENS,
        )
        contexts = np.array(
            [features({"kind": KINDS[k], "tokens": n}) for k, n in zip(kinds, tokens, strict=True)]
        )
        K = self.n_arms
        eq, cin, cout, el, med = (np.empty((rounds, K)) for _ in range(5))
        sigma = np.empty(K)
        bounds = sorted({0, rounds, *(min(int(c.at * rounds), rounds) for c in self.changes)})
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            rows = slice(lo, hi)
            for a, p in enumerate(self.providers_at(lo, rounds)):
                eq[rows, a], cin[rows, a], cout[rows, a], med[rows, a] = _means(
                    p, kinds[rows], tokens[rows]
                )
                sigma[a] = p.latency_sigma
        for a in range(K):
            el[:, a] = clipped_lognormal_mean(med[:, a], sigma[a], LATENCY_CAP_MS)
        eq = np.clip(eq, 0.02, 0.98)
        kappa = self.concentration
        quality = rng.beta(eq * kappa, (1.0 - eq) * kappa)
        cost = cin + cout * rng.uniform(0.5, 1.5, size=(rounds, K))
        latency = med * np.exp(sigma * rng.standard_normal((rounds, K)))
        return Draw(kinds, tokens, contexts, quality, cost, latency, eq, cin + cout, el)

    def stream(self, rounds: int, seed: int) -> Stream:
        """The scalar-reward stream (``bench_learning``'s interface)."""
        return self.draw(rounds, seed).stream(self.reward_spec())


def _means(p: Provider, kinds: np.ndarray, tokens: np.ndarray) -> tuple[np.ndarray, ...]:
    """Expected quality, input and output dollars, median latency of ``p`` per request."""
    drop = np.asarray(p.long_drop)[kinds] * tokens / (tokens + 3000.0)
    quality = np.asarray(p.quality)[kinds] - drop
    billed = (
        tokens if p.cache_tokens is None else p.cache_tokens * -np.expm1(-tokens / p.cache_tokens)
    )
    out = np.asarray(OUTPUT_MEAN)[kinds] * p.verbosity
    latency = p.latency_ms * np.asarray(LATENCY_FACTOR)[kinds] * (1.0 + tokens / 20_000.0)
    return quality, p.price_in * billed / 1e6, p.price_out * out / 1e6, latency


# -- oracles ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Optimum:
    """The best per-request arm distribution ``probs`` (T, K) under a constraint on the
    traffic, its mean ``quality`` and ``cost``, the multiplier ``dual`` and whether the
    constraint could be met at all (if not: the policy closest to meeting it)."""

    quality: float
    cost: float
    dual: float
    probs: np.ndarray
    feasible: bool


def _policy(value: np.ndarray, spend: np.ndarray, lam: float) -> np.ndarray:
    """Per-request argmax of value − λ·spend; ties go to the lower spend."""
    score = value - lam * spend
    best = score.max(axis=1, keepdims=True)
    tied = score >= best - 1e-12 * (1.0 + np.abs(best))
    return np.where(tied, spend, np.inf).argmin(axis=1)


def lagrangian_oracle(
    value: np.ndarray, spend: np.ndarray, limit: float, *, iterations: int = 100
) -> tuple[np.ndarray, float, bool]:
    """Maximise the mean of ``value`` subject to mean ``spend`` ≤ ``limit`` over the rows
    (requests) of the (T, K) arrays, choosing a distribution over arms per row.

    Returns (probs (T, K), λ, feasible). The policy is the argmax of value − λ·spend,
    λ the smallest multiplier whose policy meets the limit (bisection), mixed with
    the policy just below λ so that the spend equals the limit exactly: both
    maximise the Lagrangian at λ, so the mix is optimal for the linear programme.

    >>> v = np.array([[1.0, 0.0], [1.0, 0.0]]); s = np.array([[1.0, 0.0], [1.0, 0.0]])
    >>> probs, lam, ok = lagrangian_oracle(v, s, 0.25)
    >>> float((probs * s).sum(axis=1).mean()), ok
    (0.25, True)
    """
    T, K = value.shape
    rows = np.arange(T)

    def mean_spend(arms: np.ndarray) -> float:
        return float(spend[rows, arms].mean())

    def onehot(arms: np.ndarray) -> np.ndarray:
        out = np.zeros((T, K))
        out[rows, arms] = 1.0
        return out

    lo_arms = _policy(value, spend, 0.0)
    if mean_spend(lo_arms) <= limit:
        return onehot(lo_arms), 0.0, True
    hi = 1.0
    while mean_spend(_policy(value, spend, hi)) > limit:
        hi *= 2.0
        if hi > 1e12:  # cannot be met: the least-spending policy (ties to the best value)
            arms = _policy(-spend, -value, 0.0)
            return onehot(arms), math.inf, False
    lo = 0.0
    for _ in range(iterations):
        mid = (lo + hi) / 2
        if mean_spend(_policy(value, spend, mid)) > limit:
            lo = mid
        else:
            hi = mid
    lo_arms, hi_arms = _policy(value, spend, lo), _policy(value, spend, hi)
    s_lo, s_hi = mean_spend(lo_arms), mean_spend(hi_arms)
    p = 1.0 if s_lo <= s_hi else min(max((s_lo - limit) / (s_lo - s_hi), 0.0), 1.0)
    return p * onehot(hi_arms) + (1.0 - p) * onehot(lo_arms), hi, True


def _optimum(eq: np.ndarray, ec: np.ndarray, probs: np.ndarray, lam: float, ok: bool) -> Optimum:
    q = float((probs * eq).sum(axis=1).mean())
    c = float((probs * ec).sum(axis=1).mean())
    return Optimum(q, c, lam, probs, ok)


def quality_floor_oracle(eq: np.ndarray, ec: np.ndarray, floor: float) -> Optimum:
    """Least mean cost with mean quality ≥ ``floor`` (expected values, (T, K))."""
    probs, lam, ok = lagrangian_oracle(-ec, -eq, -floor)
    return _optimum(eq, ec, probs, lam, ok)


def budget_oracle(eq: np.ndarray, ec: np.ndarray, budget: float) -> Optimum:
    """Best mean quality with mean cost ≤ ``budget`` (expected values, (T, K))."""
    probs, lam, ok = lagrangian_oracle(eq, ec, budget)
    return _optimum(eq, ec, probs, lam, ok)


def weighted_oracle(expected: np.ndarray) -> np.ndarray:
    """The best arm of every request for a scalar expected reward (T, K)."""
    return expected.argmax(axis=1)


# -- the worlds ------------------------------------------------------------------------------------
def _fleet(*, drops: bool, sigma: float, caching: bool) -> tuple[Provider, ...]:
    """Five providers; the first is the best and most expensive (the static rule's choice).

    Without ``drops`` quality depends on the kind only (linear in the features); with them
    long prompts hurt the smaller models, and more on summaries and reasoning.
    """

    def drop(*v: float) -> tuple[float, float, float, float]:
        return v if drops else (0.0, 0.0, 0.0, 0.0)  # type: ignore[return-value]

    cache = 6000.0 if caching else None
    table = [  # name, $/1M in, $/1M out, quality per kind, long-prompt drop, verbosity, ms
        ("frontier", 10.0, 30.0, (0.92, 0.92, 0.91, 0.93), (0, 0, 0.02, 0.02), 1.2, 2500),
        ("mid", 3.0, 15.0, (0.91, 0.90, 0.90, 0.86), (0.01, 0.03, 0.04, 0.08), 1.0, 1500),
        ("coder", 0.9, 2.7, (0.84, 0.91, 0.78, 0.78), (0.04, 0.02, 0.10, 0.10), 1.1, 1000),
        ("small", 0.4, 1.6, (0.90, 0.76, 0.89, 0.68), (0.03, 0.10, 0.10, 0.16), 0.8, 600),
        ("open", 0.15, 0.6, (0.87, 0.70, 0.87, 0.60), (0.06, 0.12, 0.16, 0.20), 0.9, 800),
    ]
    return tuple(
        Provider(n, pi, po, q, drop(*d), v, ms, sigma, cache if n in ("mid", "small") else None)
        for n, pi, po, q, d, v, ms in table
    )


_MISSPECIFIED = _fleet(drops=True, sigma=1.0, caching=True)

#: The benchmark worlds: one near-linear, one misspecified, two drifting (at 40 % of
#: the stream, so the second half measures behaviour after the change).
WORLDS: dict[str, World] = {
    w.name: w
    for w in (
        World(
            "linear",
            "quality per request kind only, cost linear in tokens, light-tailed latency",
            _fleet(drops=False, sigma=0.3, caching=False),
            "frontier",
        ),
        World(
            "interactions",
            "kind × length × provider quality, prompt caching (saturating cost), "
            "heavy-tailed latency (lognormal σ = 1)",
            _MISSPECIFIED,
            "frontier",
        ),
        World(
            "price-cut",
            "the interactions world; at 40 % of the stream `mid` cuts its prices by 70 %",
            _MISSPECIFIED,
            "frontier",
            changes=(Change(0.4, "mid", price_factor=0.3),),
        ),
        World(
            "regression",
            "the interactions world; at 40 % of the stream `small` silently loses 0.12 "
            "quality on chat and summaries",
            _MISSPECIFIED,
            "frontier",
            changes=(Change(0.4, "small", quality_delta=(-0.12, 0.0, -0.12, 0.0)),),
        ),
    )
}
