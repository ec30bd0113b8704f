"""The alert rules (deploy/prometheus/alerts.yml) against their unit tests, with
Debian's `promtool`: each alert fires when it should and not in the healthy case."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.promtool import binary

pytestmark = pytest.mark.unit

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy/prometheus"


def _yaml(name: str) -> Any:
    return yaml.safe_load((PROMETHEUS / name).read_text())


def _promtool(*args: str) -> str:
    done = subprocess.run(
        [binary("promtool"), *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done.stdout


def test_the_rules_are_valid_and_loaded_by_prometheus_yml() -> None:
    assert "SUCCESS" in _promtool("check", "rules", "alerts.yml")
    assert "alerts.yml" in _yaml("prometheus.yml")["rule_files"]


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    assert "SUCCESS" in _promtool("test", "rules", "alerts_test.yml")


def test_every_alert_has_a_case_where_it_fires_and_one_where_it_does_not() -> None:
    alerts = {rule["alert"] for group in _yaml("alerts.yml")["groups"] for rule in group["rules"]}
    cases = [case for test in _yaml("alerts_test.yml")["tests"] for case in test["alert_rule_test"]]
    fired = {case["alertname"] for case in cases if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    assert alerts - fired == set(), "alerts never shown firing"
    assert alerts - quiet == set(), "alerts never shown quiet"
    assert (fired | quiet) - alerts == set(), "tests of alerts that do not exist"
