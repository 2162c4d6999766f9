"""Learning quality: regret per round of the default ContextualBandit against peers.

Every learner faces exactly the same streams (contexts and every arm's noisy
reward are drawn up front), over several seeds, in two groups of settings: the
linear simulator (``policy_store.simulator.LinearSimulator``: linear, stationary)
and routing worlds (``benchmarks/_worlds.py``: five LLM providers, reward = the
default weights of quality, cost and latency, in [0, 1]; misspecified for a linear
model — request type × provider × length interactions, saturating cost,
heavy-tailed latency — and drifting: a price cut, a quality regression). Regret of
a round = best expected reward for its context − expected reward of the served
arm; "reward" below is the expected reward of the served arm (noise removed, so
numbers are comparable).

    python benchmarks/bench_learning.py                     # default comparison
    python benchmarks/bench_learning.py --out docs/learning.md
    python benchmarks/bench_learning.py --sweep             # how the defaults were chosen

Peers (``pip install .[bench]``): Vowpal Wabbit ``--cb_explore_adf`` (SquareCB
and ε-greedy) and MABWiser LinUCB, all with their default settings (see
``benchmarks/_peers.py``).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _output import emit  # noqa: E402
from _peers import PEERS, Factory, Ours, Uniform  # noqa: E402
from _worlds import WORLDS, World  # noqa: E402

from policy_store import AlgorithmConfig, LinearThompson, LinUCB, make_algorithm  # noqa: E402
from policy_store.simulator import LinearSimulator, Stream  # noqa: E402


@dataclass(frozen=True)
class Setting:
    """One simulator configuration."""

    name: str
    n_arms: int
    n_features: int
    noise: float
    spread: float = 0.2
    clip: bool = False
    correlation: float = 0.0

    def stream(self, rounds: int, seed: int) -> Stream:
        sim = LinearSimulator(
            self.n_arms,
            self.n_features,
            noise=self.noise,
            spread=self.spread,
            clip=self.clip,
            correlation=self.correlation,
            seed=seed,
        )
        return sim.stream(rounds)


def _settings() -> dict[str, Setting]:
    base = [
        # (arms, features, noise sd, clip to [0, 1])
        (5, 12, 0.1, False),
        (3, 8, 0.2, True),
        (5, 16, 0.3, True),
    ]
    out = {}
    for K, d, noise, clip in base:
        for rho in (0.0, 0.5):
            name = f"K{K}-d{d}-noise{noise}{'-clip' if clip else ''}-rho{rho}"
            out[name] = Setting(name, K, d, noise, clip=clip, correlation=rho)
    return out


@dataclass(frozen=True)
class WorldSetting:
    """A routing world (``_worlds``) as a setting: the scalar reward of its default spec."""

    name: str
    world: World

    @property
    def n_arms(self) -> int:
        return self.world.n_arms

    @property
    def n_features(self) -> int:
        return self.world.n_features

    def stream(self, rounds: int, seed: int) -> Stream:
        return self.world.stream(rounds, seed)


AnySetting = Setting | WorldSetting

#: Three sizes and noise levels, each with independent arms (rho=0) and with arms
#: whose context effects are correlated (rho=0.5, as LLM providers' are).
LINEAR: dict[str, Setting] = _settings()
#: The routing worlds: near-linear, misspecified, and two drifting ones.
ROUTING: dict[str, WorldSetting] = {
    f"routing-{name}": WorldSetting(f"routing-{name}", world) for name, world in WORLDS.items()
}
SETTINGS: dict[str, AnySetting] = {**LINEAR, **ROUTING}
GROUPS = {"Linear simulator": LINEAR, "Routing worlds": ROUTING}


def run(learner, stream: Stream) -> np.ndarray:
    """Play the stream; returns the served arm of every round."""
    served = np.empty(len(stream), dtype=int)
    for t in range(len(stream)):
        x = stream.contexts[t]
        a = learner.select(x)
        served[t] = a
        learner.learn(x, a, float(stream.rewards[t, a]))
    close = getattr(learner, "close", None)
    if close is not None:
        close()
    return served


@dataclass
class Result:
    name: str
    regret: list[float]  # regret per round, one number per (setting, seed)
    reward: list[float]
    seconds: float = 0.0

    @property
    def mean_regret(self) -> float:
        return float(np.mean(self.regret))


_FACTORIES: dict[str, Factory] = {}


def _run_task(
    task: tuple[AnySetting, int, int],
) -> list[tuple[str, str, float, float, float]]:
    setting, seed, rounds = task
    stream = setting.stream(rounds, seed)
    rows = np.arange(len(stream))
    out = []
    for key, factory in _FACTORIES.items():
        t0 = time.perf_counter()
        learner = factory(setting.n_arms, setting.n_features, 10_000 + seed)
        served = run(learner, stream)
        seconds = time.perf_counter() - t0
        regret = float(stream.regret(served).mean())
        reward = float(stream.expected[rows, served].mean())
        out.append((key, learner.name, regret, reward, seconds))
    return out


def evaluate(
    factories: dict[str, Factory],
    settings: list[AnySetting],
    seeds: list[int],
    rounds: int,
    jobs: int = 1,
) -> dict[str, Result]:
    """Regret and reward of every learner on every (setting, seed) stream.

    With ``jobs`` > 1 the streams are spread over forked worker processes; the
    numbers do not depend on ``jobs``.
    """
    _FACTORIES.clear()
    _FACTORIES.update(factories)
    tasks = [(setting, seed, rounds) for setting in settings for seed in seeds]
    if jobs > 1:
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            outputs = pool.map(_run_task, tasks, chunksize=1)
    else:
        outputs = [_run_task(t) for t in tasks]
    results = {key: Result(key, [], []) for key in factories}
    for output in outputs:  # in task order: setting-major, then seed
        for key, name, regret, reward, seconds in output:
            res = results[key]
            res.name = name
            res.regret.append(regret)
            res.reward.append(reward)
            res.seconds += seconds
    return results


def per_setting_table(
    results: dict[str, Result], settings: list[AnySetting], seeds: list[int]
) -> str:
    """Regret per round of every learner in every setting (mean over seeds)."""
    n = len(seeds)
    lines = [
        "| setting | " + " | ".join(r.name for r in results.values()) + " |",
        "|---|" + "---|" * len(results),
    ]
    for i, setting in enumerate(settings):
        cells = [f"{np.mean(r.regret[i * n : (i + 1) * n]):.4f}" for r in results.values()]
        lines.append(f"| {setting.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def comparison_table(results: dict[str, Result], ours_key: str = "ours") -> str:
    ours = results[ours_key].mean_regret
    peers = [r for k, r in results.items() if k not in (ours_key, "uniform")]
    best_peer = min(peers, key=lambda r: r.mean_regret) if peers else None
    lines = [
        "| learner | avg reward | regret / round (mean ± sd over runs) | vs ours | seconds |",
        "|---|---|---|---|---|",
    ]
    for res in sorted(results.values(), key=lambda r: r.mean_regret):
        sd = float(np.std(res.regret, ddof=1)) if len(res.regret) > 1 else 0.0
        lines.append(
            f"| {res.name} | {np.mean(res.reward):.4f} | {res.mean_regret:.4f} ± {sd:.4f} "
            f"| {res.mean_regret / ours:.2f}× | {res.seconds:.1f} |"
        )
    if best_peer is not None:
        gain = 1.0 - ours / best_peer.mean_regret
        lines.append("")
        side = "below" if gain >= 0 else "above"
        lines.append(
            f"Default ContextualBandit regret per round is {100 * abs(gain):.0f}% {side} the best "
            f"peer ({best_peer.name}: {best_peer.mean_regret:.4f} vs {ours:.4f})."
        )
        wins = sum(o < p for o, p in zip(results[ours_key].regret, best_peer.regret, strict=True))
        lines.append(
            f"Ours has lower regret than that peer in {wins} of {len(best_peer.regret)} runs."
        )
    return "\n".join(lines)


# -- sweep -----------------------------------------------------------------------------------------
SWEEP_GRID: dict[str, dict[str, list]] = {
    "linucb": {
        "alpha": [0.1, 0.2, 0.3, 0.5, 1.0],
        "epsilon": [0.0, 0.005, 0.01, 0.02],
        "pooled": [True, False],
    },
    "ts": {"scale": [0.05, 0.1, 0.2, 0.3], "epsilon": [0.01], "pooled": [True, False]},
}


def sweep_factories(ridges: list[float]) -> dict[str, Factory]:
    out: dict[str, Factory] = {}
    classes = {"linucb": LinUCB, "ts": LinearThompson}
    for name, grid in SWEEP_GRID.items():
        keys = list(grid)
        for values in itertools.product(*(grid[k] for k in keys), ridges):
            params = dict(zip(keys, values[:-1], strict=True))
            params["ridge"] = values[-1]
            label = f"{name} " + " ".join(f"{k}={v}" for k, v in params.items())

            def factory(K, d, s, name=name, params=params, label=label):
                return Ours(K, d, s, classes[name](**params), name=label)

            out[label] = factory
    return out


def sweep_table(results: dict[str, Result], settings: list[AnySetting], seeds: list[int]) -> str:
    n = len(seeds)
    head = " | ".join(s.name for s in settings)
    lines = [
        f"| config | mean regret / round | {head} |",
        "|---|---|" + "---|" * len(settings),
    ]
    default = AlgorithmConfig()
    for res in sorted(results.values(), key=lambda r: r.mean_regret)[:25]:
        per = [np.mean(res.regret[i * n : (i + 1) * n]) for i in range(len(settings))]
        cells = " | ".join(f"{v:.4f}" for v in per)
        mark = ""
        if res.name.startswith(default.name) and _is_default(res.name, default):
            mark = " **(default)**"
        lines.append(f"| {res.name}{mark} | {res.mean_regret:.4f} | {cells} |")
    return "\n".join(lines)


def _is_default(label: str, cfg: AlgorithmConfig) -> bool:
    algo = make_algorithm(cfg)
    fields = dict(part.split("=") for part in label.split()[1:])
    return all(str(getattr(algo, k)) == v for k, v in fields.items())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3000, help="rounds per stream (default 3000)")
    ap.add_argument("--seeds", type=int, default=3, help="seeds per setting (default 3)")
    ap.add_argument(
        "--settings",
        help=f"comma-separated settings, from {', '.join(SETTINGS)} (default: all; "
        "with --sweep: the linear simulator's)",
    )
    ap.add_argument("--sweep", action="store_true", help="grid-search our hyperparameters")
    ap.add_argument("--ridges", default="1.0", help="ridge values for --sweep (comma-separated)")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--out", type=Path, help="also write the markdown to this file")
    args = ap.parse_args(argv)

    names = args.settings.split(",") if args.settings else (LINEAR if args.sweep else SETTINGS)
    settings = [SETTINGS[s] for s in names]
    seeds = list(range(args.seeds))
    if args.sweep:
        factories = sweep_factories([float(r) for r in args.ridges.split(",")])
        seeds = [100 + s for s in seeds]  # tune on other seeds than the comparison uses
    else:
        factories = {
            "ours": lambda K, d, s: Ours(K, d, s),
            **PEERS,
            "uniform": lambda K, d, s: Uniform(K, d, s),
        }
    t0 = time.perf_counter()
    if args.sweep:
        results = evaluate(factories, settings, seeds, args.rounds, args.jobs)
        body = sweep_table(results, settings, seeds)
    else:
        parts = []
        for group, members in GROUPS.items():
            chosen = [s for s in settings if s.name in members]
            if not chosen:
                continue
            results = evaluate(factories, chosen, seeds, args.rounds, args.jobs)
            parts.append(
                f"# {group}\n\n"
                + comparison_table(results)
                + "\n\nRegret per round by setting (mean over seeds):\n\n"
                + per_setting_table(results, chosen, seeds)
            )
        body = "\n\n".join(parts)
    elapsed = time.perf_counter() - t0
    cmd = "python benchmarks/bench_learning.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    header = (
        f"Command: `{cmd.strip()}`  \n"
        f"Settings: {', '.join(s.name for s in settings)}; seeds {seeds[0]}..{seeds[-1]}; "
        f"{args.rounds} rounds per stream; {elapsed:.0f} s in total.\n"
    )
    text = header + "\n" + body + "\n"
    return emit(text, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
