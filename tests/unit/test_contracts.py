"""Contracts are data: tags, frozen structs, decoders per stream, schema evolution."""

from __future__ import annotations

import re

import msgspec
import pytest

from contracts import messages as m
from contracts import streams
from contracts.codec import encode

pytestmark = pytest.mark.unit


def all_message_types() -> list[type[m.Message]]:
    found: list[type[m.Message]] = []
    todo = list(m.Message.__subclasses__())
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return [c for c in found if c.__module__ == m.__name__]


def test_every_message_is_frozen_and_tagged_with_its_class_name() -> None:
    for cls in all_message_types():
        config = cls.__struct_config__
        assert config.frozen, cls
        assert config.tag_field == "type"
        assert config.tag == cls.__name__
        assert not config.forbid_unknown_fields, f"{cls.__name__} must accept newer messages"


def test_tags_are_unique() -> None:
    tags = [cls.__name__ for cls in all_message_types()]
    assert len(tags) == len(set(tags))


def test_stream_names_are_readable_and_unique() -> None:
    names = [s.name for s in streams.ALL]
    assert len(names) == len(set(names))
    for spec in streams.ALL:
        assert re.fullmatch(r"[a-z]+(\.[a-z]+)?", spec.name), spec.name
        assert spec.dlq == f"{spec.name}.dlq"
        assert spec.groups, f"{spec.name} has no reader"
        assert spec.retention_ms >= streams.MINUTE_MS


def test_stream_decoder_reads_its_messages_and_is_built_once() -> None:
    move = m.MoveCompanies(
        id=m.new_id(),
        job_id="j1",
        source="a",
        target="b",
        mode="copy",
        selection=m.Selection(all=True, exclude=[3]),
    )
    decoder = streams.MOVER_COMMANDS.decoder()
    assert decoder is streams.MOVER_COMMANDS.decoder()
    assert decoder.decode(encode(move)) == move
    with pytest.raises(msgspec.ValidationError):
        streams.POINTS.decoder().decode(encode(move))


def test_wire_format_is_plain_json_with_the_tag() -> None:
    cancel = m.CancelJob(id="abc", job_id="j9")
    wire = msgspec.json.decode(encode(cancel))
    assert wire["type"] == "CancelJob"
    assert wire["id"] == "abc"
    assert wire["job_id"] == "j9"


class StopBatchV2(m.Message, frozen=True, kw_only=True, tag="StopBatch"):
    """A later StopBatch with a new field (and its default), as the evolution rules allow."""

    batch_id: str
    run_id: str
    reason: str = "user"


def test_old_consumer_reads_a_message_with_a_new_field() -> None:
    newer = StopBatchV2(id="1", batch_id="b1", run_id="r1", reason="quota")
    old = streams.INGEST_COMMANDS.decoder().decode(encode(newer))
    assert old == m.StopBatch(id="1", batch_id="b1", run_id="r1", at=newer.at)


def test_new_consumer_reads_an_old_message() -> None:
    older = m.StopBatch(id="2", batch_id="b2", run_id="r2")
    newer = msgspec.json.Decoder(StopBatchV2).decode(encode(older))
    assert newer.reason == "user"
    assert newer.batch_id == "b2"


def test_ids() -> None:
    assert m.id_from_key("moves", "k1") == m.id_from_key("moves", "k1")
    assert m.id_from_key("moves", "k1") != m.id_from_key("batches", "k1")
    assert m.derived_id("p", 1) == m.derived_id("p", 1) != m.derived_id("p", 2)
    assert m.new_id() != m.new_id()
