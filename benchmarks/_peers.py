"""Learners behind one small interface, for the benchmarks: ours and the peers.

Every learner has ``select(x) -> int`` (the arm served for context ``x``) and
``learn(x, arm, reward)``. Peers are used with the settings a user gets by
default:

* Vowpal Wabbit ``--cb_explore_adf`` (ε-greedy, ε = 0.05, VW's default) and
  ``--cb_explore_adf --squarecb`` (SquareCB, default γ schedule). The context goes in a
  shared namespace ``s``, each action line carries its identity in namespace ``a``
  and ``-q sa`` crosses them, which gives VW one linear model per arm — the same
  hypothesis class as disjoint LinUCB. VW minimises cost, so cost = −reward.
* MABWiser ``LearningPolicy.LinUCB()`` (α = 1, λ = 1), refitted online with
  ``partial_fit``. Until its first ``fit`` it cannot predict, so the first round
  serves a uniformly random arm.

The peers are optional (``pip install .[bench]``); importing this module does
not import them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from policy_store import Algorithm, AlgorithmConfig, ContextualBandit


class Learner(Protocol):
    name: str

    def select(self, x: np.ndarray) -> int: ...

    def learn(self, x: np.ndarray, arm: int, reward: float) -> None: ...


# -- ours ------------------------------------------------------------------------------------------
class Ours:
    """``policy_store.ContextualBandit`` (default config unless a config or algorithm is given)."""

    def __init__(
        self,
        n_arms: int,
        n_features: int,
        seed: int,
        config: AlgorithmConfig | Algorithm | None = None,
        name: str = "rl-commons ContextualBandit (default)",
    ) -> None:
        self.name = name
        self.bandit = ContextualBandit(n_arms, n_features, algorithm=config, seed=seed)

    def select(self, x: np.ndarray) -> int:
        return self.bandit.select_action(x)

    def learn(self, x: np.ndarray, arm: int, reward: float) -> None:
        self.bandit.update(x, arm, reward)


class Uniform:
    """Serves a uniformly random arm; the baseline every learner must beat."""

    def __init__(self, n_arms: int, n_features: int, seed: int) -> None:
        self.name = "uniform random"
        self.n_arms = n_arms
        self.rng = np.random.default_rng(seed)

    def select(self, x: np.ndarray) -> int:
        return int(self.rng.integers(self.n_arms))

    def learn(self, x: np.ndarray, arm: int, reward: float) -> None:
        pass


# -- Vowpal Wabbit ---------------------------------------------------------------------------------
def vw_shared_line(x: np.ndarray) -> str:
    return "shared |s " + " ".join(f"f{i}:{v:.6g}" for i, v in enumerate(x))


class VowpalWabbit:
    """VW ``--cb_explore_adf`` with ``extra`` arguments (e.g. ``--squarecb``)."""

    def __init__(self, n_arms: int, n_features: int, seed: int, extra: str = "") -> None:
        from vowpalwabbit import Workspace

        label = "squarecb" if "squarecb" in extra else "epsilon-greedy"
        self.name = f"VW --cb_explore_adf ({label})"
        self.args = f"--cb_explore_adf -q sa --quiet --random_seed {seed} {extra}".strip()
        self.vw = Workspace(self.args)
        self.n_arms = n_arms
        self.rng = np.random.default_rng(seed)
        self.actions = [f"|a a{k}" for k in range(n_arms)]
        self._last_pmf: list[float] | None = None

    def pmf(self, x: np.ndarray) -> list[float]:
        return self.vw.predict([vw_shared_line(x), *self.actions])

    def select(self, x: np.ndarray) -> int:
        pmf = self.pmf(x)
        self._last_pmf = pmf
        u = self.rng.random() * sum(pmf)
        acc = 0.0
        for k, p in enumerate(pmf):
            acc += p
            if u < acc:
                return k
        return len(pmf) - 1

    def learn(self, x: np.ndarray, arm: int, reward: float) -> None:
        pmf = self._last_pmf if self._last_pmf is not None else self.pmf(x)
        lines = [vw_shared_line(x)]
        for k, line in enumerate(self.actions):
            if k == arm:
                lines.append(f"0:{-reward:.6g}:{max(pmf[k], 1e-6):.6g} {line}")
            else:
                lines.append(line)
        self.vw.learn(lines)
        self._last_pmf = None

    def close(self) -> None:
        self.vw.finish()


# -- MABWiser --------------------------------------------------------------------------------------
class MABWiserLinUCB:
    """MABWiser ``LinUCB`` with its default α = 1 (or the given one)."""

    def __init__(self, n_arms: int, n_features: int, seed: int, alpha: float = 1.0) -> None:
        from mabwiser.mab import MAB, LearningPolicy

        self.name = "MABWiser LinUCB" + (" (default α=1)" if alpha == 1.0 else f" (α={alpha})")
        self.mab = MAB(
            arms=list(range(n_arms)), learning_policy=LearningPolicy.LinUCB(alpha=alpha), seed=seed
        )
        self.rng = np.random.default_rng(seed)
        self.n_arms = n_arms
        self.fitted = False

    def select(self, x: np.ndarray) -> int:
        if not self.fitted:
            return int(self.rng.integers(self.n_arms))
        return int(self.mab.predict(x.reshape(1, -1)))

    def learn(self, x: np.ndarray, arm: int, reward: float) -> None:
        args = ([arm], [reward], x.reshape(1, -1))
        if self.fitted:
            self.mab.partial_fit(*args)
        else:
            self.mab.fit(*args)
            self.fitted = True


Factory = Callable[[int, int, int], Learner]

PEERS: dict[str, Factory] = {
    "vw-squarecb": lambda K, d, s: VowpalWabbit(K, d, s, "--squarecb"),
    "vw-egreedy": lambda K, d, s: VowpalWabbit(K, d, s),
    "mabwiser-linucb": lambda K, d, s: MABWiserLinUCB(K, d, s),
}


# -- ParetoBandit (constrained benchmark) ----------------------------------------------------------
class ParetoBandit:
    """ParetoBandit's ``BanditRouter`` on precomputed feature vectors (bias moved last, as
    its ``FeatureService.for_precomputed`` expects), cold start (``priors="none"``: no
    offline priors exist for these providers) and list prices in its registry.

    With ``budget`` (dollars per request) its ``BudgetPacer`` (adaptive mode: hard cost
    ceiling + soft penalty, the dual variable driven by the realised cost, which is
    written into the routing log before ``process_feedback`` as its own experiments do)
    enforces the budget and the static cost penalty is 0, as in its budget experiments;
    without it the router keeps its default static cost penalty (0.3). Its reward is the
    quality. ``alpha`` is its exploration width: ``ExplorationRate.DEFAULT`` (0.1). The
    factory's own 0.01 assumes its warm-up priors and, on a cold start, locks onto the
    first arm that paid (measured: a tenth of the budget spent, quality 0.11 below the
    oracle's); ``ExplorationRate.BALANCED`` (1.0) spent the budget with lower quality
    (0.04 below the oracle's against 0.024 for 0.1, 2 worlds × 2 seeds, 4000 requests).
    """

    def __init__(
        self,
        prices: dict[str, tuple[float, float]],
        n_features: int,
        seed: int,
        budget: float | None = None,
        alpha: float = 0.1,
    ) -> None:
        import logging

        from pareto_bandit import BanditRouter, EphemeralContextStore, FeatureService
        from pareto_bandit.budget_pacer import BudgetPacer, PacingMode

        logging.getLogger("pareto_bandit").setLevel(logging.ERROR)  # per-request warnings
        registry = {
            name: {"input_cost_per_m": p_in, "output_cost_per_m": p_out}
            for name, (p_in, p_out) in prices.items()
        }
        pacer = None if budget is None else BudgetPacer(budget, mode=PacingMode.ADAPTIVE)
        self.name = "ParetoBandit " + (
            "(budget pacer)" if pacer is not None else "(default cost penalty 0.3)"
        )
        self.router = BanditRouter.create(
            model_registry=registry,
            feature_service=FeatureService.for_precomputed(n_features),
            context_store=EphemeralContextStore(),
            priors="none",
            alpha=alpha,
            cost_penalty=0.3 if pacer is None else 0.0,
            budget_pacer=pacer,
            bandit_seed=seed,
        )
        self.arms = list(prices)
        self._prices = dict(prices)
        self._log = None

    def set_prices(self, prices: dict[str, tuple[float, float]]) -> None:
        """Tell the router about new list prices (an operator would after a price change)."""
        for name, (p_in, p_out) in prices.items():
            if self._prices.get(name) != (p_in, p_out):
                self.router.update_model_pricing(
                    name, input_cost_per_m=p_in, output_cost_per_m=p_out
                )
        self._prices = dict(prices)

    def select(self, x: np.ndarray) -> int:
        model, self._log = self.router.route(np.concatenate((x[1:], x[:1])))
        return self.arms.index(model)

    def learn(self, quality: float, cost: float) -> None:
        log = self._log
        log.cost_usd = float(cost)
        self.router.process_feedback(log.request_id, reward=float(quality))
        self._log = None
