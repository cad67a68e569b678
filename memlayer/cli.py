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

    uvicorn.run(
        "memlayer.api.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        log_level=get_settings().log_level.lower(),
        proxy_headers=True,
        ws_max_size=64 * 1024,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="memlayer", description="Long-term memory layer for LLM chat backends."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API (uvicorn)")
    serve.add_argument("--host", default=get_settings().host)
    serve.add_argument("--port", type=int, default=get_settings().port)
    serve.set_defaults(func=_serve)

    migrate = sub.add_parser("migrate", help="upgrade the configured database to head")
    migrate.set_defaults(func=_migrate)
    return parser


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(
        level=get_settings().log_level.upper(), format="%(levelname)s [%(name)s] %(message)s"
    )
    args = build_parser().parse_args(argv)
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()
