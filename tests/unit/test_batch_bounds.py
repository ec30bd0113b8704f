"""The bounds of batch values (issue 8): one bound everywhere, producers within it,
pushed times normalised to UTC, and why the bound keeps every sum representable."""

from __future__ import annotations

import random
import sys
from datetime import UTC, datetime

import msgspec
import pytest

from contracts.messages import StartBatch
from contracts.runtime import batch_registry
from contracts.runtime.settings import Settings
from gateway.app import create_app
from gateway.batches.points import BadPoints, parse_points
from gateway.frontdoor import fields
from ingest.producers import draw
from tests.support.keys import API_KEYS

pytestmark = pytest.mark.unit

NOW = datetime(2024, 5, 1, 10, 11, 10, tzinfo=UTC)
INT64_MAX = 2**63 - 1


def test_the_gateway_and_the_producers_share_one_bound() -> None:
    assert batch_registry.MAX_ABS_VALUE == fields.MAX_ABS_VALUE


def test_the_bound_keeps_any_minute_sum_a_finite_double_and_integers_exact() -> None:
    # A minute's count is a bigint: even INT64_MAX points at the bound sum to < 1e34.
    assert fields.MAX_ABS_VALUE * INT64_MAX < 1e34 < sys.float_info.max
    assert fields.MAX_ABS_VALUE < 2**53


@pytest.mark.parametrize("distribution", ["uniform_int", "uniform", "normal"])
def test_producers_draw_within_the_bound_at_the_extremes(distribution: str) -> None:
    bound = batch_registry.MAX_ABS_VALUE
    start = StartBatch(
        id="r", batch_id="b", distribution=distribution,  # type: ignore[arg-type]
        low=-bound, high=bound, mean=bound, stddev=bound,
    )  # fmt: skip
    values = draw(start, random.Random(7), 2_000)
    assert all(-bound <= v <= bound for v in values)
    if distribution == "normal":
        assert max(values) == bound  # about half the draws are above the mean


def test_pushed_times_travel_in_utc_and_times_outside_utc_are_named() -> None:
    body = msgspec.json.encode([{"key": 1, "ts": "2024-05-01T12:10:00+02:00"}])
    (point,) = parse_points(body, now=NOW, limit=10)
    assert point.ts == datetime(2024, 5, 1, 10, 10, tzinfo=UTC)
    assert point.ts.utcoffset() is not None
    assert point.ts.tzinfo is UTC
    bad = msgspec.json.encode(
        [{"key": 1, "ts": "0001-01-01T00:00:00+14:00"}, {"key": 1e16}, {"key": -1e15}]
    )
    with pytest.raises(BadPoints) as raised:
        parse_points(bad, now=NOW, limit=10)
    assert [e["index"] for e in raised.value.errors] == [0, 1]


def test_the_openapi_schema_states_the_bounds() -> None:
    schema = create_app(Settings(api_keys=API_KEYS)).openapi_schema.to_schema()
    push = schema["paths"]["/batches/{batch_id}/points"]["post"]["requestBody"]
    item = push["content"]["application/json"]["schema"]["items"]
    assert (item["properties"]["key"]["minimum"], item["properties"]["key"]["maximum"]) == (
        -fields.MAX_ABS_VALUE,
        fields.MAX_ABS_VALUE,
    )
    options = schema["components"]["schemas"]["StartOptions"]["properties"]
    for name in ("low", "high", "mean"):
        assert options[name]["maximum"] == fields.MAX_ABS_VALUE, name
        assert options[name]["minimum"] == -fields.MAX_ABS_VALUE, name
    assert (options["stddev"]["minimum"], options["stddev"]["maximum"]) == (0, 1e15)
