"""The SwiftChat wire format: inbound webhook bodies and outbound message bodies."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import msgspec

from tutorlane.domain.messages import Inbound, Kind, Reply

MAX_TEXT = 4096
_PHONE = re.compile(r"\+?[0-9]{6,20}")
_MEDIA_TYPES = frozenset({"image", "audio", "video", "document", "sticker"})


class BadPayload(ValueError):
    """A webhook body is not a SwiftChat message; the message says what is wrong."""


class _Envelope(msgspec.Struct, frozen=True):
    # NOTE: `from` is a Python keyword, hence the rename.
    sender: str = msgspec.field(name="from")
    type: str = msgspec.field()
    message_id: str = msgspec.field()
    timestamp: int | float | str = msgspec.field()
    conversation_id: str | None = None
    conversation_initiated_by: str | None = None


class _Body(msgspec.Struct, frozen=True):
    body: str


class _Button(msgspec.Struct, frozen=True):
    body: str
    button_index: int | str | None = None


class _Menu(msgspec.Struct, frozen=True):
    body: str
    id: int | str | None = None


_envelope_decoder = msgspec.json.Decoder(_Envelope)
_raw_decoder = msgspec.json.Decoder(dict[str, Any])


def parse_inbound(body: bytes) -> tuple[str, Inbound]:
    """Read a webhook body into the sender's phone and the message, or raise."""
    try:
        raw = _decode_json(body)
        envelope = msgspec.convert(raw, _Envelope)
    except msgspec.ValidationError as ex:
        raise BadPayload(f"not a SwiftChat message: {ex}") from None
    except msgspec.DecodeError as ex:
        raise BadPayload(f"body is not valid JSON: {ex}") from None
    except RecursionError:
        raise BadPayload(
            "body is nested too deeply to be a SwiftChat message"
        ) from None

    if not _PHONE.fullmatch(envelope.sender):
        raise BadPayload("`from` must be a phone number such as +919800000001")
    if not envelope.message_id.strip() or len(envelope.message_id) > 256:
        raise BadPayload("`message_id` must be a non-empty id of at most 256 chars")
    sent_at = _seconds(envelope.timestamp)

    # NOTE: type names are lower case on the wire; accept "TEXT" all the same.
    kind = envelope.type.strip().lower()
    payload = raw.get(envelope.type, raw.get(kind))
    message = _read_payload(kind, envelope.message_id, payload)
    return envelope.sender, replace(message, sent_at=sent_at)


def _decode_json(body: bytes) -> dict[str, Any]:
    try:
        decoded: dict[str, Any] = _raw_decoder.decode(body)
        return decoded
    except msgspec.DecodeError:
        # NOTE: a sender that cut an emoji in half at its length limit leaves a
        # lone surrogate escape, which msgspec refuses and Python's json reads.
        try:
            lenient = json.loads(body)
        except (ValueError, RecursionError):
            lenient = None
        if not isinstance(lenient, dict):
            raise
        return _without_lone_surrogates(lenient)  # type: ignore[no-any-return]


def _without_lone_surrogates(value: Any) -> Any:
    """Return `value` with each half of a broken character replaced by U+FFFD."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, dict):
        return {
            _without_lone_surrogates(key): _without_lone_surrogates(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_without_lone_surrogates(item) for item in value]
    return value


def _seconds(timestamp: int | float | str) -> int:
    try:
        seconds = float(timestamp)
    except (ValueError, OverflowError):
        seconds = -1.0
    if not 0 <= seconds < 2**32:
        raise BadPayload("`timestamp` must be Unix seconds, as a number or a string")
    return int(seconds)


def _read_payload(kind: str, message_id: str, payload: Any) -> Inbound:
    try:
        if kind == "text":
            text = msgspec.convert(payload, _Body).body
            return Inbound(message_id, Kind.TEXT, text[:MAX_TEXT])
        if kind == "button_response":
            text = msgspec.convert(payload, _Button).body
            return Inbound(message_id, Kind.BUTTON, text[:MAX_TEXT])
        if kind == "multi_select_button_response":
            choices = msgspec.convert(payload, list[_Button])
            text = ", ".join(choice.body for choice in choices)
            return Inbound(message_id, Kind.MULTI_SELECT, text[:MAX_TEXT])
        if kind == "persistent_menu_response":
            text = msgspec.convert(payload, _Menu).body
            return Inbound(message_id, Kind.MENU, text[:MAX_TEXT])
    except msgspec.ValidationError as ex:
        raise BadPayload(f"`{kind}` payload is malformed: {ex}") from None

    # Media, locations, dates, ratings and types SwiftChat adds later are accepted:
    # they get a gentle reply rather than a retry storm.
    return Inbound(message_id, Kind.MEDIA if kind in _MEDIA_TYPES else Kind.OTHER)


def render_reply(to: str, reply: Reply) -> dict[str, Any]:
    """Return the send-message body for `reply` addressed to `to`."""
    if not reply.buttons:
        return {"to": to, "type": "text", "text": {"body": reply.text}}
    buttons = [
        {"type": "solid", "body": label, "reply": label} for label in reply.buttons
    ]
    return {
        "to": to,
        "type": "button",
        "button": {
            "body": {"type": "text", "text": {"body": reply.text}},
            "buttons": buttons,
            "allow_custom_response": True,
        },
    }
