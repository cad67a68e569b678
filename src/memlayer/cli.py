"""The ``memlayer`` console script: serve, migrate, seed, bench and cache commands."""

from __future__ import annotations

import argparse
import logging
import sys

from memlayer.settings import get_settings

log = logging.getLogger("memlayer")


def _migrate(_args: argparse.Namespace) -> int:
    from alembic import command

    from memlayer.migrations import alembic_config

    settings = get_settings()
    url = settings.resolved_database_url()
    if settings.embedded:
        log.warning("embedded mode: migrating the SQLite file %s (not for production)", url)
    command.upgrade(alembic_config(url), "head")
    print("memlayer migrate: database is at head")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from memlayer import multiproc
    from memlayer.api.serving import UVICORN_OPTIONS

    settings = get_settings()
    if args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    if args.workers > 1 and (settings.embedded or settings.redis_url is None):
        print(
            "error: --workers needs MEMLAYER_DATABASE_URL and MEMLAYER_REDIS_URL: the "
            "embedded mode's SQLite file and in-process Redis stand-in belong to one "
            "process. Configure the real services, or serve with one worker.",
            file=sys.stderr,
        )
        return 2
    # Workers inherit the directory through the environment; it must be set before they
    # import prometheus_client (uvicorn spawns them fresh).
    with multiproc.prepared_dir(args.workers) as metrics_dir:
        if metrics_dir is not None:
            log.info(
                "memlayer serve: %d worker(s), Prometheus multiprocess metrics in %s",
                args.workers,
                metrics_dir,
            )
        uvicorn.run(
            "memlayer.api.app:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=settings.log_level.lower(),
            **UVICORN_OPTIONS,
        )
    return 0


def _seed(args: argparse.Namespace) -> int:
    import asyncio
    from pathlib import Path

    from memlayer.seed import print_summary, seed

    result = asyncio.run(
        seed(
            get_settings(),
            users=args.users,
            memories=args.memories,
            credentials=Path(args.out) if args.out else None,
        )
    )
    print_summary(result)
    return 0


def _bench(args: argparse.Namespace) -> int:
    import asyncio

    from memlayer.bench import run_bench

    return asyncio.run(
        run_bench(
            get_settings(),
            users=args.users,
            memories=args.memories,
            concurrency=args.concurrency,
            loads=args.loads,
            runs=args.runs,
            stampede=args.stampede,
        )
    )


def _bench_store(args: argparse.Namespace) -> int:
    import asyncio

    from memlayer.bench_store import run_bench_store

    return asyncio.run(
        run_bench_store(
            get_settings(),
            namespaces=args.namespaces,
            items=args.items,
            concurrency=args.concurrency,
            reads=args.reads,
            runs=args.runs,
        )
    )


def _chaos(args: argparse.Namespace) -> int:
    import asyncio

    for noisy in ("httpx", "alembic"):  # a line per request, per plugin and migration step
        logging.getLogger(noisy).setLevel(logging.WARNING)

    from memlayer.chaos.faults import FaultKind
    from memlayer.chaos.run import ChaosOptions, run_chaos

    try:
        kinds = tuple(FaultKind(k.strip()) for k in args.faults.split(",") if k.strip())
    except ValueError:
        print(
            f"error: --faults takes a comma-separated list of {', '.join(FaultKind)}",
            file=sys.stderr,
        )
        return 2
    options = ChaosOptions(
        processes=args.processes,
        users=args.users,
        writers=args.writers,
        readers=args.readers,
        duration=args.duration,
        fault_every=args.fault_every,
        faults=kinds,
        partition_seconds=args.partition_seconds,
        progress_every=args.progress_every,
        bound=args.bound,
        seed=args.seed,
        keep=args.keep,
    )
    return asyncio.run(run_chaos(get_settings(), options))


def _bench_sessions(args: argparse.Namespace) -> int:
    import asyncio

    from memlayer.bench_sessions import run_bench_sessions

    return asyncio.run(
        run_bench_sessions(
            get_settings(),
            sessions=args.sessions,
            turns=args.turns,
            warmup_turns=args.warmup_turns,
            concurrency=args.concurrency,
            anonymous_share=args.anonymous_share,
            serve_command=args.serve_command,
        )
    )


def _bench_near_policy(args: argparse.Namespace) -> int:
    from memlayer.bench_near_policy import run_near_policy_bench

    return run_near_policy_bench(
        users=args.users,
        ops=args.ops,
        write_share=args.write_share,
        exponents=args.exponents,
        capacities=args.capacities,
        cost_ops=args.cost_ops,
    )


def _bench_invalidation(args: argparse.Namespace) -> int:
    import asyncio

    from memlayer.bench_invalidation import run_bench_invalidation

    return asyncio.run(
        run_bench_invalidation(
            get_settings(), writes=args.writes, interval_ms=args.interval_ms, modes=args.modes
        )
    )


def _cache(args: argparse.Namespace) -> int:
    import asyncio

    from memlayer import cachectl

    settings = get_settings()
    if args.cache_command == "stats":
        return asyncio.run(cachectl.stats(settings, args.server))
    if args.cache_command == "invalidate":
        return asyncio.run(cachectl.invalidate(settings, args.user))
    if args.cache_command == "verify":
        return asyncio.run(cachectl.verify(settings, sample=args.sample, every=args.all))
    return asyncio.run(cachectl.warm(settings, args.top))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="memlayer", description="Long-term memory layer for LLM chat backends."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API (uvicorn)")
    serve.add_argument("--host", default=get_settings().host)
    serve.add_argument("--port", type=int, default=get_settings().port)
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="uvicorn worker processes (needs Postgres and Redis when above 1); "
        "/metrics and the ops summary add up every worker",
    )
    serve.set_defaults(func=_serve)

    migrate = sub.add_parser("migrate", help="upgrade the configured database to head")
    migrate.set_defaults(func=_migrate)

    seed = sub.add_parser("seed", help="bulk-create users and memories for load tests")
    seed.add_argument("--users", type=int, default=1000)
    seed.add_argument("--memories", type=int, default=10, help="memories per user")
    seed.add_argument(
        "--out", default="loadtests/credentials.csv", help="CSV of email,password,user_id"
    )
    seed.set_defaults(func=_seed)

    bench = sub.add_parser(
        "bench", help="warm-cache vs database-only vs bare-Redis load latency and throughput"
    )
    bench.add_argument("--users", type=int, default=20_000)
    bench.add_argument("--memories", type=int, default=10)
    bench.add_argument("--concurrency", type=int, default=32)
    bench.add_argument("--loads", type=int, default=20_000, help="warm loads per run")
    bench.add_argument("--runs", type=int, default=3)
    bench.add_argument("--stampede", type=int, default=500)
    bench.set_defaults(func=_bench)
    bench_targets = bench.add_subparsers(dest="bench_target", required=False)
    store_bench = bench_targets.add_parser(
        "store",
        help="warm LangGraph store reads: memlayer's store vs AsyncPostgresStore vs bare Redis",
        description="Puts the same data into memlayer's store (Postgres + Redis) and "
        "AsyncPostgresStore (same Postgres), then measures warm aget and asearch(limit=5) "
        "through memlayer's store from its near-cache and from its Redis tier, through the "
        "peer (with and without its TTL refresh) and a bare Redis GET + decode, in "
        "interleaved slices; counts Postgres statements per 1,000 reads. With no "
        "configuration it creates the local memlayer_bench database.",
    )
    store_bench.add_argument("--namespaces", type=int, default=2000)
    store_bench.add_argument("--items", type=int, default=20, help="items per namespace")
    store_bench.add_argument("--concurrency", type=int, default=32)
    store_bench.add_argument(
        "--reads", type=int, default=20_000, help="reads per operation per run"
    )
    store_bench.add_argument("--runs", type=int, default=3)
    store_bench.set_defaults(func=_bench_store)

    chaos = sub.add_parser(
        "chaos",
        help="several serve processes under readers, writers and injected faults; "
        "checks every read against the acknowledged writes (exit 1 on a stale read)",
        description="Starts its own redis-server and --processes `memlayer serve` processes "
        "(a database of its own on MEMLAYER_DATABASE_URL's server, dropped afterwards), each "
        "behind TCP proxies it owns, and injects faults on a schedule. See docs/runbook.md.",
    )
    chaos.add_argument("--processes", type=int, default=3, help="serve processes")
    chaos.add_argument("--users", type=int, default=40)
    chaos.add_argument("--writers", type=int, default=4, help="writer tasks (own the users)")
    chaos.add_argument("--readers", type=int, default=8, help="reader tasks")
    chaos.add_argument("--duration", type=float, default=60.0, help="seconds")
    chaos.add_argument("--fault-every", type=float, default=10.0, help="seconds between faults")
    chaos.add_argument(
        "--faults",
        default="partition,kill,redis-restart,commit-failure",
        help="fault kinds, injected in this order, cycling ('' for none)",
    )
    chaos.add_argument("--partition-seconds", type=float, default=4.0)
    chaos.add_argument("--progress-every", type=float, default=5.0, help="seconds")
    chaos.add_argument(
        "--bound",
        type=float,
        default=None,
        help="staleness bound in seconds (default: MEMLAYER_COHERENCE_BOUND_MS)",
    )
    chaos.add_argument("--seed", type=int, default=None, help="for a repeatable schedule")
    chaos.add_argument("--keep", action="store_true", help="keep logs and Redis files")
    chaos.set_defaults(func=_chaos)

    sessions = sub.add_parser(
        "bench-sessions",
        help="server RSS and Postgres statements per turn under sustained chat traffic",
    )
    sessions.add_argument("--sessions", type=int, default=400)
    sessions.add_argument("--turns", type=int, default=4000, help="measured turns")
    sessions.add_argument("--warmup-turns", type=int, default=1000)
    sessions.add_argument("--concurrency", type=int, default=16)
    sessions.add_argument("--anonymous-share", type=float, default=0.5)
    sessions.add_argument(
        "--serve-command",
        default=None,
        help="the server to measure (default: this build's `memlayer serve`)",
    )
    sessions.set_defaults(func=_bench_sessions)

    policy = sub.add_parser(
        "bench-near-policy",
        help="near-cache eviction policies (LRU vs frequency-aware) on Zipf workloads",
    )
    policy.add_argument("--users", type=int, default=200_000)
    policy.add_argument("--ops", type=int, default=600_000, help="operations per workload")
    policy.add_argument("--write-share", type=float, default=0.05)
    policy.add_argument("--exponents", type=float, nargs="+", default=[0.8, 1.0, 1.2])
    policy.add_argument(
        "--capacities",
        type=float,
        nargs="+",
        default=[0.005, 0.025, 0.1],
        help="capacities as shares of the users",
    )
    policy.add_argument("--cost-ops", type=int, default=200_000)
    policy.set_defaults(func=_bench_near_policy)

    lag = sub.add_parser(
        "bench-invalidation",
        help="invalidation lag across processes: client tracking vs a published channel",
    )
    lag.add_argument("--writes", type=int, default=2000)
    lag.add_argument("--interval-ms", type=float, default=2.0, help="pause between writes")
    lag.add_argument(
        "--modes", nargs="+", choices=["tracking", "channel"], default=["tracking", "channel"]
    )
    lag.set_defaults(func=_bench_invalidation)

    cache = sub.add_parser("cache", help="inspect and manage the Redis cache")
    cache_sub = cache.add_subparsers(dest="cache_command", required=True)
    stats = cache_sub.add_parser("stats", help="hit ratio, keys, memory, breaker, generation")
    stats.add_argument(
        "--server",
        default=f"http://{get_settings().host}:{get_settings().port}",
        help="a serving memlayer whose hit ratio and breaker state to show",
    )
    invalidate = cache_sub.add_parser("invalidate", help="drop one user's cached context")
    invalidate.add_argument("--user", type=int, required=True)
    warm = cache_sub.add_parser("warm", help="load the most active users into the cache")
    warm.add_argument("--top", type=int, default=1000)
    verify = cache_sub.add_parser(
        "verify", help="audit cached versions against Postgres (stale past the bound?)"
    )
    scope = verify.add_mutually_exclusive_group()
    scope.add_argument("--sample", type=int, default=1000, help="users chosen at random")
    scope.add_argument("--all", action="store_true", help="every user, a page at a time")
    cache.set_defaults(func=_cache)
    return parser


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(
        level=get_settings().log_level.upper(), format="%(levelname)s [%(name)s] %(message)s"
    )
    args = build_parser().parse_args(argv)
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()
