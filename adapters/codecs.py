"""Compact binary forms of sessions, events and outgoing replies (MessagePack)."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec

from tutorlane.commands.ports import (
    BusMessage,
    DeliveredEvent,
    OutboxEntry,
    UnreadableEvent,
)
from tutorlane.domain.events import EVENT_TYPES, Event, UnknownEvent, upcast
from tutorlane.domain.messages import Reply
from tutorlane.domain.session import Session

# A session is stored as a MessagePack array, field values in declaration order after
# a format number: no field names repeated in every key, which keeps Redis small.
# New fields go at the end with a default, so older sessions still decode.
SESSION_FORMAT = 1
_SESSION_FIELDS = tuple(field.name for field in dataclasses.fields(Session))
# Counters a session adds to: far below where one more would overflow an int64.
_COUNTERS = ("version", "seq", "attempts", "hints", "answered", "correct", "horizon")
MAX_COUNTER = 2**53

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()
_json_encoder = msgspec.json.Encoder()
_json_decoder = msgspec.json.Decoder()
_envelope_decoder = msgspec.json.Decoder(list[msgspec.Raw])
# NOTE: typed, so that a reply entry of the wrong shape fails here, as unreadable.
_reply_decoder = msgspec.msgpack.Decoder(tuple[str, str, tuple[str, ...], float])


class CorruptRecord(ValueError):
    """Stored bytes cannot be read back; the message says which record and why."""


class NewerFormat(CorruptRecord):
    """Stored bytes are in a format a newer release wrote: not damaged, not ours."""


def encode_session(session: Session) -> bytes:
    """Return the stored form of a session."""
    values = [getattr(session, name) for name in _SESSION_FIELDS]
    return _encoder.encode([SESSION_FORMAT, *values])


def decode_session(data: bytes) -> Session:
    """Read a stored session back; raise CorruptRecord if it cannot be."""
    try:
        values = _decoder.decode(data)
    except msgspec.DecodeError as ex:
        raise CorruptRecord(f"session is not msgpack ({ex})") from None
    if not isinstance(values, list) or not values:
        raise CorruptRecord(f"session is a {type(values).__name__}, not a list")
    found = values[0]
    if type(found) is int and found > SESSION_FORMAT:
        raise NewerFormat(f"session format {found} is newer than {SESSION_FORMAT}")
    if found != SESSION_FORMAT:
        raise CorruptRecord(f"session format {found!r} is not {SESSION_FORMAT}")
    fields = dict(zip(_SESSION_FIELDS, values[1:], strict=False))
    try:
        # NOTE: checks every field's type too: one written by hand must fail here,
        # not halfway through a student's message.
        session = msgspec.convert(fields, Session)
    except msgspec.ValidationError as ex:
        raise CorruptRecord(f"session fields do not fit ({ex})") from None
    for name in _COUNTERS:
        if not 0 <= getattr(session, name) < MAX_COUNTER:
            raise CorruptRecord(
                f"session {name} {getattr(session, name)} is out of range"
            )
    return session


def event_to_dict(event: Event) -> dict[str, Any]:
    """Return an event as plain data, tagged with its type and version."""
    # NOTE: msgspec's to_builtins is several times faster than dataclasses.asdict.
    fields: dict[str, Any] = msgspec.to_builtins(event)
    return {"type": event.TYPE, "v": event.VERSION, **fields}


def event_from_dict(data: dict[str, Any]) -> Event:
    """Read an event back from plain data, upcasting an older version."""
    fields = dict(data)
    type_name = str(fields.pop("type", None))
    version = fields.pop("v", 1)
    if not isinstance(version, int):
        raise CorruptRecord(f"{type_name} event has version {version!r}")
    try:
        fields = upcast(type_name, version, fields)
        return msgspec.convert(fields, EVENT_TYPES[type_name])
    except UnknownEvent as ex:
        raise CorruptRecord(str(ex)) from None
    except msgspec.ValidationError as ex:
        raise CorruptRecord(f"{type_name} event is malformed: {ex}") from None


def event_to_json(event: Event) -> bytes:
    """Return an event as JSON, as the bus carries it and the event store keeps it."""
    return _json_encoder.encode(event_to_dict(event))


def event_from_json(data: bytes) -> Event:
    """Read an event back from JSON."""
    try:
        fields = _json_decoder.decode(data)
    except msgspec.DecodeError as ex:
        raise CorruptRecord(f"event is not JSON: {ex}") from None
    if not isinstance(fields, dict):
        raise CorruptRecord("event is not a JSON object")
    return event_from_dict(fields)


def encode_envelope(events: list[bytes]) -> bytes:
    """Return one bus message carrying several JSON events, in order."""
    return b"[" + b",".join(events) + b"]"


def decode_envelope(data: bytes) -> list[bytes]:
    """Return the JSON events a bus message carries, in order."""
    # Raw keeps each event's bytes as they came: no decoding and encoding again.
    try:
        items = _envelope_decoder.decode(data)
    except msgspec.ValidationError:
        raise CorruptRecord("bus message is not a JSON list of events") from None
    except msgspec.DecodeError as ex:
        raise CorruptRecord(f"bus message is not JSON: {ex}") from None
    return [bytes(item) for item in items]


def _check_storable(event: Event, raw: bytes) -> None:
    """Refuse an event the event store could not keep, before it blocks a batch."""
    if not 0 < len(event.student) <= MAX_STUDENT_CHARS:
        raise CorruptRecord(f"student must be 1 to {MAX_STUDENT_CHARS} characters")
    if not 1 <= event.seq < 2**53:
        raise CorruptRecord(f"seq must be from 1 to 2**53, not {event.seq}")
    if len(raw) > MAX_EVENT_BYTES:
        raise CorruptRecord(f"event of {len(raw)} bytes is over {MAX_EVENT_BYTES}")
    if not 0 <= event.occurred_at < _LATEST_TIME:
        raise CorruptRecord(f"occurred_at {event.occurred_at} is not a time")
    # NOTE: a value the read models cannot hold would stop every projection at
    # this event, batch after batch: it is parked here instead.
    for field in dataclasses.fields(event):
        value = getattr(event, field.name)
        limit = _TEXT_COLUMNS.get(field.name)
        if limit is not None and len(value) > limit:
            raise CorruptRecord(f"{field.name} is over {limit} characters")
        if field.name in _KEY_COLUMNS and value != value.strip():
            # NOTE: the read models' keys compare with trailing spaces ignored:
            # 'ana' and 'ana ' would be one row, and the second insert would fail.
            raise CorruptRecord(f"{field.name} {value!r} has spaces at an end")
        if (
            type(value) is int
            and field.name != "seq"
            and not -_INT_COLUMN < value < _INT_COLUMN
        ):
            raise CorruptRecord(f"{field.name} {value} is out of range")


def event_topic(event: Event) -> str:
    """Return the event store topic of an event: its type and version."""
    return f"{event.TYPE}/v{event.VERSION}"


def encode_events(events: tuple[Event, ...]) -> bytes:
    """Return the outbox form of the events of one message."""
    return _encoder.encode([event_to_dict(event) for event in events])


def decode_events(data: bytes) -> list[Event]:
    """Read the events of one outbox entry back."""
    return [event_from_dict(item) for item in _decoder.decode(data)]


@dataclasses.dataclass(frozen=True, slots=True)
class OutgoingReply:
    """A reply waiting in the outbox: who gets it and what it says."""

    to: str
    reply: Reply
    created_at: float


def encode_reply(outgoing: OutgoingReply) -> bytes:
    """Return the outbox form of a reply."""
    reply = outgoing.reply
    return _encoder.encode(
        [outgoing.to, reply.text, reply.buttons, outgoing.created_at]
    )


def decode_reply(data: bytes) -> OutgoingReply:
    """Read an outbox reply back."""
    try:
        to, text, buttons, created_at = _reply_decoder.decode(data)
    except msgspec.DecodeError as ex:
        raise CorruptRecord(f"outbox reply cannot be read: {ex}") from None
    return OutgoingReply(to, Reply(text, buttons), created_at)


def outbox_entry(entry_id: str, payload: bytes) -> OutboxEntry:
    """Read an event outbox entry into bus messages, without building events.

    The relay only moves events; the worker checks each against its schema.
    """
    try:
        items = _decoder.decode(payload)
        messages = tuple(
            BusMessage(
                str(item["event_id"]),
                str(item["student"]),
                int(item["seq"]),
                _json_encoder.encode(item),
            )
            for item in items
        )
    except Exception as ex:
        problem = f"outbox entry {entry_id} unreadable: {type(ex).__name__}: {ex}"
        return OutboxEntry(entry_id, (), payload, problem)
    return OutboxEntry(entry_id, messages, payload)


def read_envelope(body: bytes) -> list[DeliveredEvent | UnreadableEvent]:
    """Read a bus message into its events, each checked and upcast, or why not."""
    try:
        raw_events = decode_envelope(body)
    except CorruptRecord as ex:
        return [UnreadableEvent(body, str(ex))]
    return [_delivered(raw) for raw in raw_events]


def read_parked(body: bytes) -> list[DeliveredEvent | UnreadableEvent]:
    """Read a dead-lettered message: a whole bus message, or one event of one."""
    # NOTE: the worker parks single events (the one unreadable part of a message);
    # RabbitMQ dead-letters whole messages; the relay parks raw outbox entries.
    if body.lstrip()[:1] == b"{":
        return [_delivered(body)]
    return read_envelope(body)


MAX_EVENT_BYTES = 64 * 1024
MAX_STUDENT_CHARS = 64
# The widest text each read model's column holds (adapters/sql_projections.py).
_TEXT_COLUMNS = {
    "event_id": 36,
    "course": 64,
    "node": 64,
    "skill": 64,
    "remediation_node": 64,
    "answer": 512,
    "trigger": 32,
    "misconception": 512,
    "evidence": 512,
    "model": 128,
}
_KEY_COLUMNS = frozenset({"student", "course", "node", "skill", "remediation_node"})
_LATEST_TIME = 4_102_444_800.0  # 2100-01-01: beyond it no real event lies
_INT_COLUMN = 2**31


def _delivered(raw: bytes) -> DeliveredEvent | UnreadableEvent:
    try:
        fields = _json_decoder.decode(raw)
        if not isinstance(fields, dict):
            raise CorruptRecord("event is not a JSON object")
        event = event_from_dict(fields)
        _check_storable(event, raw)
    except (CorruptRecord, msgspec.DecodeError) as ex:
        return UnreadableEvent(raw, str(ex))
    except Exception as ex:
        # NOTE: anything else wrong with one event must park it, never stall the
        # worker on a message it can neither record nor settle.
        return UnreadableEvent(raw, f"event unreadable: {type(ex).__name__}: {ex}")
    # NOTE: stored as it came, under the version it was written with; reading it
    # back upcasts it again, so the log never changes.
    topic = f"{event.TYPE}/v{fields.get('v', 1)}"
    return DeliveredEvent(event.student, event.seq, topic, raw, event.event_id)
