"""SwiftChat's wire format: every sample payload reads, bad bodies say what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tutorlane.adapters.swiftchat_wire import BadPayload, parse_inbound, render_reply
from tutorlane.domain.messages import Kind, Reply

PAYLOADS = Path(__file__).resolve().parents[3] / "shared" / "swiftchat" / "payloads"
needs_payloads = pytest.mark.skipif(
    not PAYLOADS.is_dir(), reason=f"sample payloads not found at {PAYLOADS}"
)


def body(**fields: object) -> bytes:
    message: dict[str, object] = {
        "from": "+919800000001",
        "type": "text",
        "timestamp": "1733212800",
        "message_id": "m-1",
        "text": {"body": "5"},
    }
    message.update(fields)
    return json.dumps(message).encode()


@needs_payloads
@pytest.mark.parametrize(
    ("name", "kind", "text"),
    [
        ("text_answer.json", Kind.TEXT, "5"),
        ("text_start.json", Kind.TEXT, "hi"),
        ("button_answer.json", Kind.BUTTON, "12"),
        ("multi_select.json", Kind.MULTI_SELECT, "2, 3"),
        ("persistent_menu.json", Kind.MENU, "Start over"),
        ("image.json", Kind.MEDIA, ""),
        ("unknown_type.json", Kind.MEDIA, ""),
    ],
)
def test_every_sample_payload_reads(name: str, kind: Kind, text: str) -> None:
    phone, message = parse_inbound((PAYLOADS / name).read_bytes())

    assert phone.startswith("+91")
    assert (message.kind, message.text) == (kind, text)
    assert message.sent_at > 1_700_000_000


@needs_payloads
@pytest.mark.parametrize("name", ["send_text_reply.json", "send_button_reply.json"])
def test_replies_render_as_the_sample_send_bodies(name: str) -> None:
    sample = json.loads((PAYLOADS / name).read_text())
    if sample["type"] == "text":
        reply = Reply(sample["text"]["body"])
    else:
        labels = tuple(button["body"] for button in sample["button"]["buttons"])
        reply = Reply(sample["button"]["body"]["text"]["body"], labels)

    assert render_reply(sample["to"], reply) == sample


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "Expected `object`"),
        (body(message_id=None), "message_id"),
        (body(**{"from": "hello"}), "`from` must be a phone number"),
        (body(timestamp="yesterday"), "`timestamp` must be Unix seconds"),
        (body(timestamp=-5), "`timestamp` must be Unix seconds"),
        (body(timestamp=10**400), "`timestamp` must be Unix seconds"),
        (body(timestamp=float("nan")), "`timestamp` must be Unix seconds"),
        (body(text="5"), "`text` payload is malformed"),
        (body(text={"body": ["5"]}), "`text` payload is malformed"),
    ],
)
def test_a_body_that_is_not_a_swiftchat_message_is_refused_saying_why(
    raw: bytes, says: str
) -> None:
    with pytest.raises(BadPayload, match=says.replace("`", ".")):
        parse_inbound(raw)


def test_deeply_nested_json_is_refused_not_crashed_on() -> None:
    nested = b"[" * 5000 + b"]" * 5000
    raw = body(type="sticker").replace(
        b'"text": {"body": "5"}', b'"sticker": ' + nested
    )

    with pytest.raises(BadPayload, match="nested too deeply"):
        parse_inbound(raw)


def test_timestamps_come_as_numbers_strings_or_fractions() -> None:
    for stamp in (1733212800, "1733212800", 1733212800.5, "1733212800.5"):
        assert parse_inbound(body(timestamp=stamp))[1].sent_at == 1733212800


def test_type_names_are_read_whatever_their_case() -> None:
    _, message = parse_inbound(body(type="TEXT"))

    assert (message.kind, message.text) == (Kind.TEXT, "5")


def test_half_an_emoji_cut_at_a_length_limit_reads_as_a_replacement_character() -> None:
    cut = body(text={"body": "5 \ud83d"})  # json.dumps escapes the lone half
    whole = body(text={"body": "5 \U0001f600"})

    assert parse_inbound(cut)[1].text == "5 \ufffd"
    assert parse_inbound(whole)[1].text == "5 \U0001f600"
