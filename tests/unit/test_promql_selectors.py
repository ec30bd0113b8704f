"""The selector reader the real-Prometheus test uses to say which metric a query lacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.support.promql import Matcher, Selector, selectors

pytestmark = pytest.mark.unit
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_names_matchers_and_what_is_not_a_selector() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, stream) (rate(x_bucket{group="mover", a!~"b"}[5m])))'
        " / on () group_left () max(claim_seconds offset 10m) > 0.5 and up == bool 1e3"
    )
    assert selectors(expr) == [
        Selector("x_bucket", (Matcher("group", "=", "mover"), Matcher("a", "!~", "b"))),
        Selector("claim_seconds"),
        Selector("up"),
    ]


def test_braces_alone_and_quotes_with_braces_inside() -> None:
    found = selectors('count({__name__=~"conveyor_.+"}) + sum(m{path="/jobs/{job_id}"})')
    assert found == [
        Selector("", (Matcher("__name__", "=~", "conveyor_.+"),)),
        Selector("m", (Matcher("path", "=", "/jobs/{job_id}"),)),
    ]


def test_loosened_keeps_the_labels_a_selector_needs() -> None:
    selector = Selector("m", (Matcher("status_code", "=~", "5.."), Matcher("x", "!=", "y")))
    assert str(selector.loosened()) == 'm{status_code=~".+"}'


def test_what_it_cannot_read_fails() -> None:
    with pytest.raises(ValueError, match="string outside"):
        selectors('label_replace(up, "a", "b", "c", "d")')
    with pytest.raises(ValueError, match="unbalanced"):
        selectors("sum(rate(m[5m])")


def test_every_dashboard_and_alert_query_can_be_read() -> None:
    exprs = [
        target["expr"]
        for path in (DEPLOY / "grafana/dashboards").glob("*.json")
        for panel in json.loads(path.read_text())["panels"]
        for target in panel["targets"]
    ]
    rules = yaml.safe_load((DEPLOY / "prometheus/alerts.yml").read_text())
    exprs += [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    for expr in exprs:
        found = selectors(expr)
        assert found, expr
        assert all(s.metric for s in found), expr
