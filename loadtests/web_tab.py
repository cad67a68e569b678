"""The "memlayer" tab of Locust's web UI, and its numbers as JSON at ``/memlayer``.

Locust's UI shows extra tables from ``extended_tabs``/``extended_tables`` and fills them
from the ``extended_stats`` of its ``/stats/requests`` poll; the rows come from the
service watcher (:mod:`service_watch`) on every poll.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask import Response, jsonify, request
from locust.web import WebUI

TAB = "memlayer"


def add_memlayer_tab(
    web_ui: WebUI,
    rows: Callable[[], list[dict[str, str]]],
    summary: Callable[[], dict[str, Any]],
) -> None:
    web_ui.template_args["extended_tabs"] = [{"title": TAB, "key": TAB}]
    web_ui.template_args["extended_tables"] = [
        {
            "key": TAB,
            "structure": [
                {"key": "metric", "title": "Metric"},
                {"key": "value", "title": "Value"},
            ],
        }
    ]

    @web_ui.app.after_request
    def _add_memlayer_rows(response: Response) -> Response:
        if request.path != "/stats/requests" or not response.is_json:
            return response
        body = response.get_json()
        body["extended_stats"] = [{"key": TAB, "data": rows()}]
        response.set_data(json.dumps(body))
        return response

    @web_ui.app.route(f"/{TAB}")
    def _memlayer_summary() -> Response:
        return jsonify(summary())
