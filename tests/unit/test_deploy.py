"""The deployment files say what the service needs, and say it consistently.

No Docker engine or Prometheus server runs in CI, so these tests read the files: the compose
stack, the Prometheus config and alerts, the Grafana provisioning and dashboard, the runbook.
They check the wiring between them (mounted files exist, alert links land on runbook
sections, every expression names a metric the service exports). The last tests hand the
rules to ``promtool``, the only thing that evaluates PromQL; see ``promtool`` below.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS = ROOT / "deploy/prometheus/prometheus.yml"
ALERTS = ROOT / "deploy/prometheus/alerts.yml"
ALERT_TESTS = ROOT / "deploy/prometheus/alerts_test.yml"
DASHBOARD = ROOT / "deploy/grafana/dashboards/memlayer.json"
GRAFANA_DATASOURCE = ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml"
GRAFANA_DASHBOARDS = ROOT / "deploy/grafana/provisioning/dashboards/memlayer.yml"
RUNBOOK = ROOT / "docs/runbook.md"

# The service's metric contract (api/ exports these; prometheus-fastapi-instrumentator and
# prometheus_client add the http_* and process_* families).
COUNTERS = {
    "memlayer_cache_requests_total",
    "memlayer_cache_fills_total",
    "memlayer_cache_lease_waits_total",
    "memlayer_db_queries_total",
    "memlayer_memory_writes_total",
    "memlayer_cache_write_through_total",
    "memlayer_cache_consistency_checks_total",
    "memlayer_cache_outbox_drained_total",
    "memlayer_cache_outbox_acked_total",
    "memlayer_cache_outbox_failures_total",
    "memlayer_cache_turnovers_total",
    "memlayer_near_cache_evictions_total",
    "memlayer_near_cache_drops_total",
    "memlayer_near_cache_fills_total",
    "memlayer_near_cache_rechecks_total",
    "memlayer_near_cache_rechecks_skipped_total",
    "memlayer_near_cache_invalidated_keys_total",
    "memlayer_near_cache_link_events_total",
    "http_requests_total",
    "process_cpu_seconds_total",
}
GAUGES = {
    "memlayer_cache_breaker_open",
    "memlayer_ws_sessions_active",
    "memlayer_cache_outbox_backlog",
    "memlayer_cache_outbox_oldest_age_seconds",
    "memlayer_api_workers",
    "memlayer_near_cache_entries",
    "memlayer_near_cache_bytes",
    "memlayer_near_cache_links_up",
    "up",
}
HISTOGRAMS = {
    "memlayer_memory_load_seconds",
    "memlayer_cache_consistency_staleness_seconds",
    "memlayer_near_cache_invalidation_lag_seconds",
    "http_request_duration_seconds",
}
KNOWN_METRICS = (
    COUNTERS
    | GAUGES
    | {f"{h}_{suffix}" for h in HISTOGRAMS for suffix in ("bucket", "sum", "count")}
)
METRIC_NAME = re.compile(r"\b(?:memlayer|http|process)_[a-z0-9_]+\b|\bup(?=\s*\{)")

REQUIRED_SERVICES = {"postgres", "redis", "api", "prometheus", "grafana"}
LOAD_SERVICES = {"locust-master", "locust-worker"}


def read_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return read_yaml(COMPOSE)


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in read_yaml(ALERTS)["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def metric_names(expr: str) -> set[str]:
    return set(METRIC_NAME.findall(expr))


def dashboard_targets(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (panel["title"], target.get("expr", ""))
        for panel in dashboard["panels"]
        if panel["type"] != "row"
        for target in panel.get("targets", [])
    ]


def runbook_anchors() -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    anchors = set()
    for line in RUNBOOK.read_text().splitlines():
        if match := re.match(r"^#{1,6}\s+(.*)$", line):
            slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
            anchors.add(slug)
    return anchors


# --- compose --------------------------------------------------------------------------------


def test_compose_has_every_service_of_the_stack(services):
    assert REQUIRED_SERVICES | LOAD_SERVICES <= set(services)


def test_stores_are_the_pinned_majors_and_report_health(services):
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"], f"{name} has no healthcheck"


def test_api_is_built_from_the_repo_and_waits_for_healthy_stores(services):
    api = services["api"]
    assert api["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (ROOT / api["build"]["context"] / api["build"]["dockerfile"]).is_file()
    assert {name: dep["condition"] for name, dep in api["depends_on"].items()} == {
        "postgres": "service_healthy",
        "redis": "service_healthy",
    }
    command = " ".join(api["command"])
    assert "memlayer migrate && exec memlayer serve --host 0.0.0.0 --port 8000" in command
    env = api["environment"]
    assert env["MEMLAYER_DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert "@postgres:5432/" in env["MEMLAYER_DATABASE_URL"]
    assert env["MEMLAYER_REDIS_URL"].startswith("redis://redis:6379")
    assert "/readyz" in " ".join(api["healthcheck"]["test"])


def test_jwt_secret_and_passwords_come_from_the_environment_only(services):
    """Compose must refuse to start without them (``${VAR:?...}``), never default them."""
    assert services["api"]["environment"]["MEMLAYER_JWT_SECRET"].startswith(
        "${MEMLAYER_JWT_SECRET:?"
    )
    for name, service in services.items():
        env = service.get("environment") or {}
        assert isinstance(env, dict), f"{name}: use a mapping for environment"
        for key, value in env.items():
            if re.search(r"SECRET|PASSWORD|TOKEN|API_KEY", key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]*\}", str(value)), (
                    f"{name}.{key} must be `${{VAR:?message}}` from the environment, got {value!r}"
                )
            for password in re.findall(r"://[^:/@]+:([^@]+)@", str(value)):
                assert password.startswith("${") and ":-" not in password, (
                    f"{name}.{key} has a literal or defaulted password in its URL"
                )


def test_no_secret_literals_anywhere_in_the_deploy_files():
    texts = [COMPOSE.read_text()] + [
        p.read_text() for p in (ROOT / "deploy").rglob("*") if p.is_file()
    ]
    for text in texts:
        assert not re.search(
            r"(?i)(secret|password)\s*[:=]\s*['\"]?(?!\$\{)[A-Za-z0-9+/_-]{8,}", text
        )
        assert not re.search(r"\$\{[A-Z_]*(SECRET|PASSWORD)[A-Z_]*:-", text), "defaulted secret"


def test_ports_published_for_the_people_not_for_the_stores(services):
    published = {name: [str(p) for p in svc.get("ports", [])] for name, svc in services.items()}
    assert published["api"] == ["8000:8000"]
    assert published["prometheus"] == ["9090:9090"]
    assert published["grafana"] == ["3000:3000"]
    assert published["locust-master"] == ["8089:8089"]
    assert not published["postgres"] and not published["redis"]


def test_every_mounted_host_path_and_build_context_exists(services):
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume["source"]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
        build = service.get("build")
        if build:
            context = ROOT / build["context"]
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), name


def test_prometheus_and_grafana_mount_their_config(services):
    mounts = {
        name: {
            v.split(":")[0]: v.split(":")[1] for v in svc.get("volumes", []) if v.startswith(".")
        }
        for name, svc in services.items()
    }
    assert (
        mounts["prometheus"]["./deploy/prometheus/prometheus.yml"]
        == "/etc/prometheus/prometheus.yml"
    )
    assert mounts["prometheus"]["./deploy/prometheus/alerts.yml"] == "/etc/prometheus/alerts.yml"
    assert mounts["grafana"]["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    provider = read_yaml(GRAFANA_DASHBOARDS)["providers"][0]
    assert mounts["grafana"]["./deploy/grafana/dashboards"] == provider["options"]["path"]


def test_locust_runs_distributed_on_the_mounted_locustfile(services):
    master, worker = services["locust-master"], services["locust-worker"]
    assert "--master" in master["command"]
    assert master["command"][master["command"].index("--host") + 1] == "http://api:8000"
    command = worker["command"]
    assert "--worker" in command
    assert command[command.index("--master-host") + 1] == "locust-master"
    assert worker["deploy"]["replicas"] >= 2
    for service in (master, worker):
        locustfile = service["command"][service["command"].index("-f") + 1]
        mount = next(v for v in service["volumes"] if v.startswith("./loadtests:"))
        target = mount.split(":")[1]
        assert locustfile == f"{target}/locustfile.py"
        assert service["environment"]["MEMLAYER_LOCUST_CREDENTIALS"].startswith(target)
    assert (ROOT / "loadtests/locustfile.py").is_file()


def test_locust_image_installs_memlayer_from_the_repository(services):
    """The load test takes its hit ratio from memlayer.cache, so its image installs memlayer."""
    for name in LOAD_SERVICES:
        build = services[name]["build"]
        assert (build["context"], build["dockerfile"]) == (".", "deploy/locust/Dockerfile")
    dockerfile = (ROOT / "deploy/locust/Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.M)
    assert "[load]" in dockerfile
    assert re.search(r"^USER\s+\S+", dockerfile, re.M), "run as a non-root user"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(dep.startswith("locust") for dep in project["optional-dependencies"]["load"])
    # The build context is the repository: neither the venv nor seeded passwords go in.
    ignored = (ROOT / "deploy/locust/Dockerfile.dockerignore").read_text().splitlines()
    assert {".venv", "loadtests/credentials.csv"} <= set(ignored)


def test_api_image_is_slim_python_311_and_runs_migrate_then_serve():
    dockerfile = (ROOT / "deploy/Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.M)
    assert "pip install" in dockerfile
    assert "memlayer migrate && exec memlayer serve --host 0.0.0.0 --port 8000" in dockerfile
    instructions = [line for line in dockerfile.splitlines() if not line.lstrip().startswith("#")]
    assert not any("JWT_SECRET" in line for line in instructions), "secret baked into the image"
    assert re.search(r"^USER\s+\S+", dockerfile, re.M), "run as a non-root user"


# --- Prometheus -----------------------------------------------------------------------------


def test_prometheus_scrapes_the_api_every_5s_and_loads_the_alerts():
    config = read_yaml(PROMETHEUS)
    assert (PROMETHEUS.parent / config["rule_files"][0]) == ALERTS
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "memlayer-api")
    assert job["scrape_interval"] == "5s"
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job["static_configs"][0]["targets"] == ["api:8000"]


EXPECTED_ALERTS = {
    # alert -> metric its expression must use
    "MemlayerCacheHitRatioLow": "memlayer_cache_requests_total",
    "MemlayerCacheBreakerOpen": "memlayer_cache_breaker_open",
    "MemlayerCacheFillLeaseContention": "memlayer_cache_lease_waits_total",
    "MemlayerPostgresQuerySpike": "memlayer_db_queries_total",
    "MemlayerMemoryWriteFailures": "memlayer_memory_writes_total",
    "MemlayerNearCacheMissedInvalidation": "memlayer_cache_consistency_checks_total",
}


def test_each_failure_story_has_its_alert(alert_rules):
    by_name = {rule["alert"]: rule for rule in alert_rules if "alert" in rule}
    for alert, metric in EXPECTED_ALERTS.items():
        assert alert in by_name, f"missing alert {alert}"
        assert metric in metric_names(by_name[alert]["expr"]), alert


def test_hit_ratio_alert_waits_10m_below_90_percent_and_counts_bypass_as_not_served(alert_rules):
    # cache/stats.py: (near + hit) / (near + hit + miss + error + bypass).
    rule = next(r for r in alert_rules if r.get("alert") == "MemlayerCacheHitRatioLow")
    assert rule["for"] == "10m"
    assert "< 0.9" in rule["expr"]
    assert 'result=~"near|hit"' in rule["expr"]
    assert 'result=~"near|hit|miss|error|bypass"' in rule["expr"]


def test_alerts_explain_themselves_and_link_to_an_existing_runbook_section(alert_rules):
    anchors = runbook_anchors()
    for rule in alert_rules:
        annotations = rule["annotations"]
        assert annotations["summary"].strip() and annotations["description"].strip(), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}
        page, _, anchor = annotations["runbook_url"].partition("#")
        assert page == "docs/runbook.md", rule["alert"]
        assert anchor in anchors, f"{rule['alert']}: no runbook section #{anchor}"


def test_alert_expressions_use_only_exported_metrics(alert_rules):
    for rule in alert_rules:
        unknown = metric_names(rule["expr"]) - KNOWN_METRICS
        assert not unknown, f"{rule['alert']} uses unknown metrics {unknown}"


def test_alert_rules_have_unit_tests_for_every_alert(alert_rules):
    tested = {
        case["alertname"]
        for test in read_yaml(ALERT_TESTS)["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert {rule["alert"] for rule in alert_rules} <= tested


# --- Grafana --------------------------------------------------------------------------------


def test_grafana_datasource_points_at_the_compose_prometheus(dashboard):
    source = read_yaml(GRAFANA_DATASOURCE)["datasources"][0]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    uids = {
        target["datasource"]["uid"]
        for panel in dashboard["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    }
    assert uids == {source["uid"]}


def test_every_dashboard_panel_queries_an_exported_metric(dashboard):
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in panels:
        assert panel.get("targets"), f"panel {panel['title']!r} has no query"
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
    for title, expr in dashboard_targets(dashboard):
        assert expr.strip(), f"panel {title!r} has an empty query"
        names = metric_names(expr)
        assert names and names <= KNOWN_METRICS, f"panel {title!r}: {names - KNOWN_METRICS}"


@pytest.mark.parametrize(
    ("what", "pattern"),
    [
        (
            "hit ratio",
            r'memlayer_cache_requests_total\{result=~"near\|hit"\}.*/.*near\|hit\|miss\|error',
        ),
        ("near-cache share", r'memlayer_cache_requests_total\{result="near"\}.*/'),
        (
            "invalidation lag p99",
            r"histogram_quantile\(0\.99, sum by \(le\) "
            r"\(rate\(memlayer_near_cache_invalidation_lag_seconds_bucket",
        ),
        ("near-cache size", r"memlayer_near_cache_bytes"),
        ("near-cache re-checks", r"memlayer_near_cache_rechecks_total"),
        (
            "load p50 by source",
            r"histogram_quantile\(0\.5, sum by \(le, source\) "
            r"\(rate\(memlayer_memory_load_seconds_bucket",
        ),
        (
            "load p99 by source",
            r"histogram_quantile\(0\.99, sum by \(le, source\) "
            r"\(rate\(memlayer_memory_load_seconds_bucket",
        ),
        ("db queries by op", r"sum by \(op\) \(rate\(memlayer_db_queries_total"),
        ("workers with the breaker open", r"sum by \(instance\) \(memlayer_cache_breaker_open"),
        ("api workers", r"memlayer_api_workers"),
        ("write outcomes", r"sum by \(outcome\) \(rate\(memlayer_memory_writes_total"),
        ("websocket sessions", r"memlayer_ws_sessions_active"),
        ("http request rate", r"rate\(http_requests_total"),
    ],
)
def test_dashboard_shows(dashboard, what, pattern):
    assert any(re.search(pattern, expr) for _, expr in dashboard_targets(dashboard)), what


# --- runbook --------------------------------------------------------------------------------


def test_runbook_has_first_checks_and_load_test_instructions():
    text = RUNBOOK.read_text()
    for needle in (
        "memlayer cache stats",
        "redis-cli --latency",
        "/readyz",
        "/metrics",
        "memlayer cache warm --top",
        "memlayer cache invalidate --user",
        "-u 50",  # the smoke run
        "-u 300 -r 50 -t 60s",  # the 60 s x 300 users run
        "--master",
        "--worker --master-host",
        "memlayer seed",
    ):
        assert needle in text, needle


# --- promtool -------------------------------------------------------------------------------
#
# Parsing proves the files are well-formed YAML/JSON; only promtool proves the PromQL is
# valid and that each alert fires on the story in deploy/prometheus/alerts_test.yml. It is a
# declared test tool (Debian: `apt-get install prometheus`), so its absence fails loudly
# instead of skipping: a skipped check would look green while checking nothing.

PROMTOOL_MISSING = (
    "promtool is not on PATH: the alert rules and their unit tests cannot be checked. "
    "Install it (Debian/Ubuntu: `apt-get install --no-install-recommends prometheus`; "
    "or a Prometheus release tarball's promtool binary on PATH)."
)


@pytest.mark.external  # promtool (scripts/test-deps.sh installs it)
def test_promtool_is_on_path():
    assert shutil.which("promtool") is not None, PROMTOOL_MISSING


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(PROMTOOL_MISSING)
    return path


def run_promtool(promtool: str, *args: str) -> None:
    completed = subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


@pytest.mark.external  # promtool (scripts/test-deps.sh installs it)
def test_promtool_accepts_the_config_and_the_rules(promtool):
    run_promtool(promtool, "check", "config", str(PROMETHEUS))
    run_promtool(promtool, "check", "rules", str(ALERTS))


@pytest.mark.external  # promtool (scripts/test-deps.sh installs it)
def test_promtool_alert_unit_tests_pass(promtool):
    run_promtool(promtool, "test", "rules", str(ALERT_TESTS))


@pytest.mark.external  # promtool (scripts/test-deps.sh installs it)
def test_promtool_parses_every_dashboard_query(promtool, dashboard, tmp_path):
    rules = [
        {"record": f"dashboard:query_{i}", "expr": expr.replace("$__rate_interval", "1m")}
        for i, (_, expr) in enumerate(dashboard_targets(dashboard))
    ]
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run_promtool(promtool, "check", "rules", str(path))
