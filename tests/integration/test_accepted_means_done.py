"""Accepted means done, as a property (issue 8).

Hypothesis generates short sequences of API calls with the extreme values a client
can send: the largest and smallest numbers, ids past int64, long and odd Unicode
text (NUL included), times with and without an offset, far past and far future.
Against the four services running together (tests/support/whole_stack.py):

- no call answers 5xx; a refused call (4xx) is problem+json and publishes nothing;
- after every accepted call the system reaches a state a person can see within a
  bound: a job (move, removal, deletion of a list) terminal, scheduled, or running with
  progress; a batch running; every pushed point counted (aggregated in its minute, or
  late); a list readable (under its new name after a rename, gone after its deletion);
- after every sequence: no dead letter in any stream and nothing at WARNING or
  above in any service's log.

The number of examples is bounded (CONVEYOR_PROPERTY_EXAMPLES, default 60) so that
`make test` stays short; raise it locally to search harder.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from contracts import streams
from contracts.runtime.settings import Settings
from gateway.catalog import demo as seed
from tests.support.keys import WRITE
from tests.support.whole_stack import WholeStack, whole_stack

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("CONVEYOR_PROPERTY_EXAMPLES", "60"))
VISIBLE_WITHIN_S = 30.0
MY_LIST, LIKED, IGNORE = str(seed.MY_LIST), str(seed.LIKED), str(seed.IGNORE)
FINISHED = {"completed", "failed", "cancelled"}
PUSH_BATCH = "pushed-only"  # runs for the whole module: pushes meet a running batch

# --- values at the edges of what JSON can carry --------------------------------------

big_ints = st.sampled_from([0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 10**20])
company_ids = st.one_of(st.integers(1, 1_000), st.integers(1, 1_200), big_ints)
numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        [0.0, -0.0, 5e-324, 1e15, -1e15, 1e15 + 2, 1e308, -1e308, 1.7976931348623157e308]
    ),
    st.integers(-(10**16), 10**16).map(float),
)
odd_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "\x00", "a\x00b", "%", "_", "\\", "Ω≈ç√", "🙂" * 60, "x" * 300]),
)
instants = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30))


@st.composite
def times(draw: st.DrawFn) -> str:
    """RFC 3339-ish strings: with an offset, with Z, or naive; near now or far away."""
    near = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=draw(st.integers(-600, 600)))
    moment = draw(st.one_of(st.just(near), instants))
    form = draw(st.sampled_from(["Z", "+05:30", "-08:00", "naive"]))
    text = moment.isoformat()
    return text if form == "naive" else text + ("Z" if form == "Z" else form)


# An hour from now: a job that stays scheduled, for cancel and retry to meet.
later = st.builds(lambda: (datetime.now(UTC) + timedelta(hours=1)).isoformat())


def move_call() -> st.SearchStrategy[dict[str, Any]]:
    def selection(ids: st.SearchStrategy[int]) -> st.SearchStrategy[object]:
        return st.one_of(
            st.lists(ids, min_size=1, max_size=5),
            st.fixed_dictionaries({"all": st.just(True), "exclude": st.lists(ids, max_size=5)}),
        )

    def body(
        sources: list[str],
        targets: list[str],
        ids: st.SearchStrategy[int],
        priority: st.SearchStrategy[int],
        attempts: st.SearchStrategy[int],
    ) -> st.SearchStrategy[dict[str, Any]]:
        return st.fixed_dictionaries(
            {
                "source": st.sampled_from(sources),
                "target": st.sampled_from(targets),
                "mode": st.sampled_from(["copy", "move"]),
                "selection": selection(ids),
            },
            optional={
                "priority": priority,
                "max_attempts": attempts,
                "not_before": st.one_of(st.none(), times(), later),
            },
        )

    # What a person would send (ids of My List's 500, so that moves have rows to move,
    # take time and can be scheduled), and the extremes.
    plausible = body([MY_LIST], ["new"], st.integers(1, 500), st.integers(1, 5), st.integers(1, 10))
    extreme = body(
        [MY_LIST, LIKED, IGNORE],
        [LIKED, IGNORE, "new", str(uuid.UUID(int=7))],
        company_ids,
        st.integers(-1, 6),
        st.integers(-1, 11),
    )
    return st.tuples(st.just("move"), st.one_of(plausible, extreme)).map(
        lambda t: {"op": t[0], "body": t[1]}
    )


def removal_call() -> st.SearchStrategy[dict[str, Any]]:
    """POST /removals: from the demo lists, a list of this sequence, or one that is not;
    what a person would send (ids that exist, bounds kept) and the extremes."""

    def body(
        sources: list[str],
        ids: st.SearchStrategy[int],
        priority: st.SearchStrategy[int],
        attempts: st.SearchStrategy[int],
        not_before: st.SearchStrategy[str | None],
    ) -> st.SearchStrategy[dict[str, Any]]:
        selection = st.one_of(
            st.lists(ids, min_size=1, max_size=5),
            st.fixed_dictionaries({"all": st.just(True), "exclude": st.lists(ids, max_size=5)}),
        )
        return st.fixed_dictionaries(
            {"source": st.sampled_from(sources), "selection": selection},
            optional={"priority": priority, "max_attempts": attempts, "not_before": not_before},
        )

    plausible = body(
        [LIKED, IGNORE, "made"], st.integers(1, 600), st.integers(1, 5), st.integers(1, 10),
        st.one_of(st.none(), later),
    )  # fmt: skip
    extreme = body(
        [LIKED, IGNORE, "made", str(uuid.UUID(int=7))], company_ids, st.integers(0, 6),
        st.integers(0, 11), st.one_of(st.none(), times(), later),
    )  # fmt: skip
    return st.one_of(plausible, extreme).map(lambda b: {"op": "removal", "body": b})


def rename_call() -> st.SearchStrategy[dict[str, Any]]:
    return odd_text.map(lambda name: {"op": "rename", "body": {"name": name}})


def delete_call() -> st.SearchStrategy[dict[str, Any]]:
    """DELETE /collections/{id}: of a list this sequence made (maybe the target of one of
    its moves), or of one that does not exist."""
    return st.sampled_from(["made", str(uuid.UUID(int=7))]).map(
        lambda which: {"op": "delete", "which": which}
    )


def batch_call() -> st.SearchStrategy[dict[str, Any]]:
    body = st.fixed_dictionaries(
        {"rate": st.sampled_from([0, 0, 0, 1, 5])},
        optional={
            "distribution": st.sampled_from(["uniform_int", "uniform", "normal"]),
            "low": numbers,
            "high": numbers,
            "mean": numbers,
            "stddev": numbers,
        },
    )
    return body.map(lambda b: {"op": "batch", "body": b})


def points_call() -> st.SearchStrategy[dict[str, Any]]:
    # Mostly points a producer would send (so that pushes get accepted), some extremes.
    key = st.one_of(st.floats(-1e15, 1e15), st.integers(-(10**15), 10**15), numbers)
    ts = st.one_of(st.builds(lambda: datetime.now(UTC).isoformat()), times())
    point = st.fixed_dictionaries({"key": key}, optional={"ts": ts})
    return st.fixed_dictionaries(
        {
            "op": st.just("points"),
            "body": st.lists(point, min_size=1, max_size=6),
            "to_unknown": st.integers(0, 7).map(lambda n: n == 0),
        }
    )


def list_call() -> st.SearchStrategy[dict[str, Any]]:
    return odd_text.map(lambda name: {"op": "list", "body": {"name": name}})


def search_call() -> st.SearchStrategy[dict[str, Any]]:
    return odd_text.map(lambda q: {"op": "search", "q": q})


def job_call() -> st.SearchStrategy[dict[str, Any]]:
    return st.sampled_from(["cancel", "retry"]).map(lambda verb: {"op": verb})


calls = st.lists(
    st.one_of(
        move_call(),
        removal_call(),
        rename_call(),
        delete_call(),
        batch_call(),
        points_call(),
        list_call(),
        search_call(),
        job_call(),
    ),
    min_size=1,
    max_size=6,
)

# --- the stack and the checks ------------------------------------------------------------


@pytest.fixture(scope="module")
def stack() -> Iterator[WholeStack]:
    from tests.support.keys import API_KEYS
    from tests.support.services import service_urls

    with service_urls() as urls:
        base = Settings(
            redis_url=urls.redis_url,
            database_url=urls.database_url,
            claim_idle_ms=1_000,
            max_deliveries=3,
            shutdown_grace_s=5.0,
            poll_ms=100,
            db_pool_max=10,
            api_keys=API_KEYS,
            rate_limit_per_s=100_000.0,
            rate_limit_burst=100_000,
        )
        with whole_stack(base) as running:
            with httpx.Client(base_url=running.url, headers=WRITE, timeout=15) as client:
                r = client.put(f"/batches/{PUSH_BATCH}", json={"rate": 0})
                assert r.status_code == 201, r.text
            running.pushed[PUSH_BATCH] = 0
            yield running


def eventually(probe: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + VISIBLE_WITHIN_S
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"not visible within {VISIBLE_WITHIN_S}s: {what}; last: {last!r}")


class Session:
    """One example's calls against the stack, with what each accepted call must lead to."""

    def __init__(self, stack: WholeStack, client: httpx.Client) -> None:
        self.stack, self.client = stack, client
        self.jobs = stack.jobs  # every job of the run: cancel and retry pick the latest
        self.batches: dict[str, int] = {}  # batch id -> points pushed and accepted
        self.pushed = stack.pushed  # the same for the module's push-only batch
        self.lists: list[str] = []  # lists this sequence made, newest last

    def run(self, call: dict[str, Any]) -> None:
        op = call["op"]
        published_before = self._published(op)
        response = getattr(self, f"_{op}")(call)
        if response is None:
            return
        assert response.status_code < 500, f"{op} {call}: {response.status_code} {response.text}"
        event(f"{op} {response.status_code}")
        if response.status_code >= 400:
            assert response.headers["content-type"].startswith("application/problem+json")
            assert self._published(op) == published_before, f"{op} refused but published: {call}"
            return
        self._visible(op, response)

    def _published(self, op: str) -> int:
        """Entries the gateway would publish for `op` (producers and the outbox publish
        on their own, so only the stream and the kind of entry `op` makes count)."""
        if op in ("move", "removal", "delete"):
            return self.stack.stream_length(streams.MOVER_COMMANDS)
        if op == "batch":
            return self.stack.stream_length(streams.INGEST_COMMANDS)
        if op == "points":
            return self.stack.pushed_points()
        return 0

    # --- the calls

    def _move(self, call: dict[str, Any]) -> httpx.Response:
        body = dict(call["body"])
        if body["target"] == "new":
            body["target"] = self._new_list()
        return self.client.post("/moves", json=body)

    def _new_list(self) -> str:
        r = self.client.post("/collections", json={"name": f"target {uuid.uuid4().hex}"})
        assert r.status_code == 201, r.text
        self.lists.append(str(r.json()["id"]))
        return self.lists[-1]

    def _made(self) -> str:
        """The newest list this sequence made, or a new one."""
        return self.lists[-1] if self.lists else self._new_list()

    def _removal(self, call: dict[str, Any]) -> httpx.Response:
        body = dict(call["body"])
        if body["source"] == "made":
            body["source"] = self._made()
        return self.client.post("/removals", json=body)

    def _rename(self, call: dict[str, Any]) -> httpx.Response:
        return self.client.patch(f"/collections/{self._made()}", json=call["body"])

    def _delete(self, call: dict[str, Any]) -> httpx.Response:
        which = self._made() if call["which"] == "made" else call["which"]
        return self.client.delete(f"/collections/{which}")

    def _batch(self, call: dict[str, Any]) -> httpx.Response:
        body = {"batch_id": f"p{uuid.uuid4().hex[:10]}", **call["body"]}
        return self.client.post("/batches", json=body)

    def _points(self, call: dict[str, Any]) -> httpx.Response | None:
        """To a batch of this sequence, else the module's push-only batch, else (1 in 8)
        to one that does not exist."""
        unknown = f"nobatch{uuid.uuid4().hex[:6]}" if call["to_unknown"] else PUSH_BATCH
        pushed_to = next(iter(self.batches), unknown)
        r = self.client.post(f"/batches/{pushed_to}/points", json=call["body"])
        if r.status_code == 202:
            counts = self.batches if pushed_to in self.batches else self.pushed
            counts[pushed_to] += int(r.json()["accepted"])
        return r

    def _list(self, call: dict[str, Any]) -> httpx.Response:
        return self.client.post("/collections", json=call["body"])

    def _search(self, call: dict[str, Any]) -> httpx.Response:
        return self.client.get("/companies", params={"q": call["q"]})

    def _cancel(self, call: dict[str, Any]) -> httpx.Response | None:
        job_id = self._newest("scheduled") or self._newest("running") or self._last()
        return self.client.post(f"/jobs/{job_id}/cancel") if job_id else None

    def _retry(self, call: dict[str, Any]) -> httpx.Response | None:
        job_id = self._newest("cancelled") or self._newest("failed") or self._last()
        return self.client.post(f"/jobs/{job_id}/retry") if job_id else None

    def _newest(self, status: str) -> str | None:
        """The newest job in `status` (so that cancel and retry meet jobs they apply to)."""
        page = self.client.get("/jobs", params={"status": status, "limit": 1}).json()
        return str(page["items"][0]["id"]) if page["items"] else None

    def _last(self) -> str | None:
        return self.jobs[-1] if self.jobs else None

    # --- what an accepted call must lead to

    def _visible(self, op: str, response: httpx.Response) -> None:
        if op in ("move", "removal", "delete", "cancel", "retry"):
            job_id = response.json()["id"]
            if op in ("move", "removal", "delete"):
                self.jobs.append(job_id)
            eventually(lambda: self._job_moves_on(job_id), f"job {job_id} after {op}")
            if op == "delete" and self.client.get(f"/jobs/{job_id}").json()["status"] == (
                "completed"
            ):
                deleted = response.json()["source"]
                assert self.client.get(f"/collections/{deleted}").status_code == 404
        elif op == "rename":
            renamed = response.json()
            shown = self.client.get(f"/collections/{renamed['id']}").json()
            assert shown["name"] == renamed["name"], (shown, renamed)
        elif op == "batch" and response.status_code == 201:
            batch_id = response.json()["batch_id"]
            self.batches[batch_id] = 0
            eventually(
                lambda: self._batch_view(batch_id)["status"] == "running", f"batch {batch_id}"
            )
        elif op == "points":
            for batch_id, pushed in {**self.pushed, **self.batches}.items():
                eventually(
                    lambda b=batch_id, n=pushed: self._batch_view(b)["points"] >= n,
                    f"{pushed} points of {batch_id} counted",
                )
        elif op == "list":
            list_id = response.json()["id"]
            assert self.client.get(f"/collections/{list_id}").status_code == 200

    def _job_moves_on(self, job_id: str) -> dict[str, Any] | None:
        job = self.client.get(f"/jobs/{job_id}").json()
        if job["status"] in FINISHED or job["status"] == "scheduled":
            return dict(job)
        if job["status"] == "running" and job["done"] > 0:
            return dict(job)
        return None

    def _batch_view(self, batch_id: str) -> dict[str, Any]:
        r = self.client.get(f"/batches/{batch_id}")
        return dict(r.json()) if r.status_code == 200 else {"status": r.status_code, "points": -1}

    def close(self) -> None:
        for batch_id in self.batches:
            r = self.client.post(f"/batches/{batch_id}/stop")
            assert r.status_code == 200, r.text


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
@given(program=calls)
def test_every_accepted_call_ends_somewhere_visible(
    stack: WholeStack, program: list[dict[str, Any]]
) -> None:
    logged_before = len(stack.records)
    with httpx.Client(base_url=stack.url, headers=WRITE, timeout=15) as client:
        session = Session(stack, client)
        try:
            for call in program:
                session.run(call)
        finally:
            session.close()
    eventually(stack.drained, "every stream read and acknowledged by every group")
    assert stack.dead_letters() == {}, msgspec.json.encode(program).decode()
    logged = stack.problems_logged()[logged_before:]
    assert logged == [], "\n".join(logged)
