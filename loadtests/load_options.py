"""The load test's own command-line options (``--memlayer-*``), and reading them.

Registered on Locust's parser when the locustfile imports this module, on every process
(master, workers, a single local one); each also reads an environment variable, so a
docker compose service sets them without a command line.
"""

from __future__ import annotations

from typing import Any

from locust import events
from locust.env import Environment


@events.init_command_line_parser.add_listener
def _add_options(parser: Any, **_: Any) -> None:
    # On the parser itself: its argument groups lack Locust's web-UI keywords.
    parser.add_argument(
        "--memlayer-credentials",
        default="loadtests/credentials.csv",
        env_var="MEMLAYER_LOCUST_CREDENTIALS",
        help="CSV of seeded users (email,password,user_id) for ReturningUser.",
    )
    parser.add_argument(
        "--memlayer-zipf",
        type=float,
        default=1.1,
        env_var="MEMLAYER_LOCUST_ZIPF",
        help="Popularity skew of returning users: 0 is uniform, ~1 is web-like.",
    )
    parser.add_argument(
        "--memlayer-turns",
        type=int,
        default=3,
        env_var="MEMLAYER_LOCUST_TURNS",
        help="Chat turns per returning-user session.",
    )
    parser.add_argument(
        "--memlayer-turn-timeout",
        type=float,
        default=30.0,
        env_var="MEMLAYER_LOCUST_TURN_TIMEOUT",
        help="Seconds a WebSocket turn may take before it counts as failed.",
    )
    parser.add_argument(
        "--memlayer-scrape-interval",
        type=float,
        default=5.0,
        env_var="MEMLAYER_LOCUST_SCRAPE_INTERVAL",
        help="Seconds between readings of the service's /api/v1/ops/summary (0 turns them off).",
    )
    parser.add_argument(
        "--memlayer-report",
        default="",
        env_var="MEMLAYER_LOCUST_REPORT",
        include_in_web_ui=False,
        help="Write a JSON summary (memory sources per persona, hit ratio, db q/s) on quit.",
    )


def option(environment: Environment, name: str, default: Any) -> Any:
    """An option's value; run_single_user and bare Environments may not have parsed any."""
    options = environment.parsed_options
    value = getattr(options, name, None) if options is not None else None
    return default if value is None else value
