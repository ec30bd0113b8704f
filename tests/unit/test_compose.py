"""Static checks of the deployment files: compose.yaml, Prometheus, Grafana, Dockerfile, Procfile.

There is no Docker engine on the CI machine, so these catch the mistakes that
`docker compose up` would otherwise only show at start-up.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = ("gateway", "ingest", "mover", "aggregator")
STACK_SERVICES = (*APP_SERVICES, "redis", "postgres", "prometheus", "grafana")
DASHBOARD_METRICS = (
    "litestar_requests_total",
    "litestar_request_duration_seconds_bucket",
    "conveyor_messages_total",
    "conveyor_message_duration_seconds_bucket",
    "conveyor_stream_pending",
    "conveyor_stream_lag",
    "conveyor_stream_length",
    "conveyor_dead_letters_total",
    "conveyor_reclaimed_total",
    "conveyor_jobs_total",
    "conveyor_sse_clients",
)


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    compose = _yaml(ROOT / "compose.yaml")
    return {name: spec or {} for name, spec in compose["services"].items()}


def _depends_on(spec: dict[str, Any]) -> dict[str, str]:
    deps = spec.get("depends_on", {})
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (cond or {}).get("condition", "service_started") for name, cond in deps.items()}


def _ports(spec: dict[str, Any]) -> list[tuple[int | None, int]]:
    """(published host port or None, container port) for each entry of `ports`."""
    out: list[tuple[int | None, int]] = []
    for entry in spec.get("ports", []):
        if isinstance(entry, dict):
            published = entry.get("published")
            out.append((int(published) if published else None, int(entry["target"])))
            continue
        parts = str(entry).split("/")[0].rsplit(":", 2)
        host = parts[-2] if len(parts) >= 2 else None
        out.append((int(host) if host else None, int(parts[-1])))
    return out


def test_the_whole_stack_is_defined(services: dict[str, dict[str, Any]]) -> None:
    assert set(STACK_SERVICES) <= set(services)


def test_depends_on_names_existing_services_with_valid_conditions(
    services: dict[str, dict[str, Any]],
) -> None:
    valid = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, spec in services.items():
        for dep, condition in _depends_on(spec).items():
            assert dep in services, f"{name} depends on undefined service {dep}"
            assert condition in valid, f"{name} -> {dep}: unknown condition {condition}"
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits on {dep}, no healthcheck"


def test_app_services_wait_for_their_stores_and_the_migrations(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in APP_SERVICES:
        deps = _depends_on(services[name])
        assert deps.get("redis") == "service_healthy", name
        assert deps.get("postgres") == "service_healthy", name
        assert deps.get("migrate") == "service_completed_successfully", name
    assert "conveyor migrate" in " ".join(services["migrate"]["command"])


def test_published_ports_are_unique(services: dict[str, dict[str, Any]]) -> None:
    published = [host for spec in services.values() for host, _ in _ports(spec) if host]
    assert published, "compose publishes no port at all"
    assert len(published) == len(set(published)), sorted(published)


def test_prometheus_scrapes_every_app_service(services: dict[str, dict[str, Any]]) -> None:
    config = _yaml(ROOT / "deploy/prometheus/prometheus.yml")
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    for name in APP_SERVICES:
        ports = _ports(services[name])
        assert ports, f"compose gives {name} no port"
        assert {f"{name}:{port}" for _, port in ports} & targets, f"{name} is not scraped"
    for target in targets:
        assert target.split(":")[0] in services, f"scrape target {target} is not a service"


def test_bind_mounted_files_exist(services: dict[str, dict[str, Any]]) -> None:
    mounts = [
        volume.split(":")[0]
        for spec in services.values()
        for volume in spec.get("volumes", [])
        if isinstance(volume, str) and volume.startswith(".")
    ]
    assert mounts
    for source in mounts:
        assert (ROOT / source).exists(), source


def _panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Panels, with the ones nested in collapsed rows."""
    out = []
    for panel in panels:
        out += _panels(panel.get("panels", [])) if panel.get("type") == "row" else [panel]
    return out


def test_dashboards_parse_and_every_panel_has_a_query() -> None:
    datasources = _yaml(ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml")
    uids = {source["uid"] for source in datasources["datasources"]}
    files = sorted((ROOT / "deploy/grafana/dashboards").glob("*.json"))
    assert files
    exprs = []
    for path in files:
        panels = _panels(json.loads(path.read_text())["panels"])
        assert panels, path.name
        for panel in panels:
            assert panel["datasource"]["uid"] in uids, f"{path.name}: {panel['title']}"
            panel_exprs = [target.get("expr", "").strip() for target in panel.get("targets", [])]
            assert panel_exprs, f"{path.name}: {panel['title']} has no target"
            assert all(panel_exprs), f"{path.name}: {panel['title']} has an empty expr"
            exprs += panel_exprs
    used = {name for expr in exprs for name in re.findall(r"[a-z_]+", expr)}
    assert set(DASHBOARD_METRICS) - used == set()


def test_grafana_loads_the_dashboards_compose_mounts(services: dict[str, dict[str, Any]]) -> None:
    provider = _yaml(ROOT / "deploy/grafana/provisioning/dashboards/conveyor.yml")
    path = provider["providers"][0]["options"]["path"]
    mounted = {v.split(":")[1] for v in services["grafana"]["volumes"]}
    assert path in mounted


def test_dockerfile_builds_one_image_for_the_services(services: dict[str, dict[str, Any]]) -> None:
    dockerfile = ROOT / "deploy/Dockerfile"
    text = dockerfile.read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert "uv sync --frozen --no-dev" in text
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users, "the image runs as root"
    assert users[-1] not in {"root", "0"}
    for name in APP_SERVICES:
        build = services[name]["build"]
        assert (ROOT / build["context"] / build["dockerfile"]).resolve() == dockerfile


def test_procfile_runs_the_four_services() -> None:
    lines = (ROOT / "Procfile").read_text().splitlines()
    entries = dict(line.split(":", 1) for line in lines if line.strip() and line[0] != "#")
    assert set(entries) == set(APP_SERVICES)
    for name, command in entries.items():
        assert re.search(rf"-m {name}\b", command), command


def test_secrets_are_declared_and_the_gateway_gets_its_keys_from_one(
    services: dict[str, dict[str, Any]],
) -> None:
    declared = _yaml(ROOT / "compose.yaml").get("secrets", {})
    for name, spec in services.items():
        for secret in spec.get("secrets", []):
            assert secret in declared, f"{name} uses undeclared secret {secret}"
    gateway = services["gateway"]
    assert gateway["environment"]["CONVEYOR_API_KEYS_FILE"] == "/run/secrets/api_keys"
    assert "api_keys" in gateway["secrets"]
    scrape = _yaml(ROOT / "deploy/prometheus/prometheus.yml")["scrape_configs"]
    gateway_job = next(j for j in scrape if "gateway:8000" in str(j["static_configs"]))
    assert gateway_job["authorization"]["credentials_file"] == "/run/secrets/prometheus_key"
    assert "prometheus_key" in services["prometheus"]["secrets"]
