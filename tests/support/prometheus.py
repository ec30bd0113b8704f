"""A real Prometheus (Debian's binary) for a test, and what the deployment asks of it:
every query of every dashboard panel and every alert rule.

`config_for(targets, key_file)` is deploy/prometheus/prometheus.yml with its targets
replaced by the test's processes (same jobs, labels, relabelling, bearer key by file,
rule files), scraping every second. `PrometheusServer` runs it on a free port with
its data in the test's directory. `missing(api, expr)` says why a query returns no
series: which metric is not scraped at all, which label it does not have, or which
label value none of its series carry.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.processes import free_port
from tests.support.promql import Selector, selectors
from tests.support.promtool import binary

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
# What Grafana's built-in interval variables become (scrapes are 1 s apart here, so a
# minute holds many samples).
GRAFANA_INTERVALS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m"}
_LABEL_VALUES = re.compile(r"^label_values\((?P<expr>.+),\s*(?P<label>[a-zA-Z_][a-zA-Z0-9_]*)\)$")


@dataclass(frozen=True)
class Query:
    where: str  # "overview.json: Is anything stuck?" or "alert ConveyorServiceDown"
    expr: str


def config_for(targets: dict[str, list[str]], key_file: Path) -> dict[str, Any]:
    """The deployed prometheus.yml for `targets` (service name -> host:port list)."""
    config: dict[str, Any] = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    config["global"] |= {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(DEPLOY / "prometheus" / name) for name in config["rule_files"]]
    for job in config["scrape_configs"]:
        service = job["job_name"].removeprefix("conveyor-")
        labels = {
            k: v for static in job.get("static_configs", []) for k, v in static["labels"].items()
        }
        job.pop("dns_sd_configs", None)
        job["static_configs"] = [{"targets": targets[service], "labels": labels}]
        if "authorization" in job:
            job["authorization"]["credentials_file"] = str(key_file)
    return config


class PrometheusServer:
    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "prometheus.log"
        path = workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    binary("prometheus"),
                    f"--config.file={path}",
                    f"--storage.tsdb.path={workdir / 'prometheus-data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=out,
                stderr=out,
            )


class PrometheusApi:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """The series `expr` returns now; AssertionError with Prometheus's reason if it errs."""
        response = await self.client.get("/api/v1/query", params={"query": expr})
        body = response.json()
        assert body["status"] == "success", f"{expr}\n  -> {body.get('error')}"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    async def series(self, selector: str) -> list[dict[str, str]]:
        response = await self.client.get("/api/v1/series", params={"match[]": selector})
        body = response.json()
        assert body["status"] == "success", f"{selector}\n  -> {body.get('error')}"
        found: list[dict[str, str]] = body["data"]
        return found

    async def missing(self, expr: str) -> list[str]:
        """Why `expr` may return nothing: per selector, what no scraped series has."""
        return [why for s in selectors(expr) for why in await self._why(s)]

    async def _why(self, selector: Selector) -> list[str]:
        if await self.series(str(selector)):
            return []
        found = await self.series(selector.metric)
        if not found:
            return [f"{selector.metric}: no such metric is scraped (gone, or renamed?)"]
        out = []
        for m in selector.matchers:
            values = sorted({s[m.label] for s in found if m.label in s})
            if not values:
                labels = sorted({k for s in found for k in s} - {"__name__"})
                out.append(f"{selector.metric} has no label {m.label!r}; its labels: {labels}")
            elif m.op in ("=", "=~") and not await self.series(f"{selector.metric}{{{m}}}"):
                out.append(f"{selector.metric}{{{m}}}: no series; {m.label} is one of {values}")
        return out or [f"{selector}: no series with all of these matchers together"]


def dashboard_queries() -> list[Query]:
    """Every panel target and every variable query of every dashboard, with Grafana's
    variables replaced by what Prometheus would get (a variable: its "All" value)."""
    out = []
    for path in sorted((DEPLOY / "grafana/dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        variables = {
            f"${v['name']}": v.get("allValue") or ".*" for v in board["templating"]["list"]
        }
        for variable in board["templating"]["list"]:
            expr = _variable_query(variable)
            out.append(Query(f"{path.name}: variable ${variable['name']}", expr))
        for panel in _panels(board["panels"]):
            for target in panel["targets"]:
                expr = _replace(target["expr"], GRAFANA_INTERVALS | variables)
                out.append(Query(f"{path.name}: {panel['title']}", expr))
    return out


def alert_rules() -> list[tuple[str, str]]:
    """(alert name, expression) of every rule in alerts.yml."""
    rules = yaml.safe_load((DEPLOY / "prometheus/alerts.yml").read_text())
    return [(r["alert"], r["expr"]) for group in rules["groups"] for r in group["rules"]]


def _variable_query(variable: dict[str, Any]) -> str:
    query = variable["query"]
    text = query["query"] if isinstance(query, dict) else query
    match = _LABEL_VALUES.match(text.strip())
    if match is None:
        raise ValueError(f"variable ${variable['name']}: only label_values(...) is read: {text}")
    return f"count by ({match['label']}) ({match['expr']})"


def _replace(expr: str, values: dict[str, str]) -> str:
    # Longest names first, so that $stream never eats the start of $streams.
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace(name, values[name])
    assert "$" not in expr, f"a Grafana variable the test does not know in {expr}"
    return expr


def _panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for panel in panels:
        out += _panels(panel.get("panels", [])) if panel.get("type") == "row" else [panel]
    return out
