"""``rl-commons demo``: start everything locally and watch the policy learn."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole loop locally with simulated providers and print the report",
        description=(
            "Start the embedded broker and Redis, create the topics and a policy, start a stream "
            "worker (and the dashboard), and drive a simulated LLM proxy: gpt-4, claude-3 and "
            "llama with task-dependent quality, token-priced cost and length-driven latency. The "
            "rollout starts at 10% and steps up while the learned cohort is non-inferior to the "
            "baseline rule; halfway llama gets worse. At the end: the cohort report, a learning "
            "curve PNG and summary.json in --out. Ctrl-C stops everything it started. With "
            "--objective quality-floor or budget: a world where gpt-4 is the best and most "
            "expensive provider, the baseline always calls it, the policy has that objective "
            "(baseline arm gpt-4), the rollout stays at 50% (quality-floor) or 90% (budget) "
            "and the report, over the requests after a warm-up, shows the constraint."
        ),
    )
    p.add_argument(
        "--requests",
        type=int,
        default=None,
        help="requests to send (3000; 6000 with --objective quality-floor or budget)",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds to spread them over (75; 100 with --objective quality-floor or budget)",
    )
    p.add_argument("--seed", type=int, default=7, help="seed of the simulated world (7)")
    p.add_argument("--no-plot", action="store_true", help="skip the learning-curve PNG")
    p.add_argument(
        "--out", type=Path, default=Path("demo-output"), help="output directory (demo-output)"
    )
    p.add_argument(
        "--baseline",
        default="priority",
        help="baseline cohort's routing: 'priority' (speed/cost → llama, else gpt-4) "
        "or a provider name to always call (default: priority)",
    )
    p.add_argument(
        "--change",
        choices=["llama-worse", "claude-cheaper", "none"],
        default=None,
        help="what changes in the world halfway (llama-worse; none with --objective "
        "quality-floor or budget)",
    )
    p.add_argument(
        "--objective",
        choices=["weighted", "quality-floor", "budget"],
        default="weighted",
        help="what the demo policy optimises: the weighted reward (default), the cheapest "
        "routing with quality within --quality-margin of gpt-4's, or the best quality for "
        "--max-cost dollars per request",
    )
    p.add_argument(
        "--quality-margin",
        type=float,
        default=0.01,
        metavar="M",
        help="quality-floor: allowed quality loss against gpt-4 (0.01 = one point)",
    )
    p.add_argument(
        "--max-cost",
        type=float,
        default=None,
        metavar="X",
        help="budget: mean dollars per request (below the demo's $0.10 cost cap, e.g. 0.01)",
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=None,
        metavar="N",
        help="requests at the start that the report leaves out (default: 500 with --objective "
        "quality-floor or budget, the learner's warm-up; 0 otherwise)",
    )
    p.add_argument("--no-dashboard", action="store_true", help="do not start the dashboard")
    p.add_argument(
        "--external",
        action="store_true",
        help="use the Kafka and Redis of the RL_COMMONS_* settings instead of embedded ones, "
        "and no local worker (for docker-compose)",
    )
    p.add_argument(
        "--setup-only",
        action="store_true",
        help="only create the topics and the demo policy, then exit (docker-compose init)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from policy_store import Settings
    from stream_app.dev.demo import Demo, DemoOptions, run_demo, size_defaults

    requests, duration = size_defaults(args.objective)
    opts = DemoOptions(
        requests=requests if args.requests is None else args.requests,
        duration=duration if args.duration is None else args.duration,
        seed=args.seed,
        plot=not args.no_plot,
        out=args.out,
        baseline=args.baseline,
        change=args.change,
        objective=args.objective,
        quality_margin=args.quality_margin,
        max_cost=args.max_cost,
        warmup=args.warmup,
        dashboard=not args.no_dashboard and not args.external,
        external=args.external or args.setup_only,
        start_worker=not (args.external or args.setup_only),
    )
    try:
        opts.validate()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.setup_only:
        from stream_app.dev.simulated import DEFAULT_PROFILES

        settings = Settings()
        Demo(opts).setup(settings, list(DEFAULT_PROFILES))
        print(
            f"topics with prefix {settings.topic_prefix!r} and policy {opts.policy!r} are ready",
            file=sys.stderr,
        )
        return 0
    result = run_demo(opts)
    return 0 if result.requests else 1
