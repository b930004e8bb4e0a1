"""What a student sent and what the tutor answers, free of any wire format."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """The kinds of inbound message the tutor tells apart."""

    TEXT = "text"
    BUTTON = "button_response"
    MULTI_SELECT = "multi_select_button_response"
    MENU = "persistent_menu_response"
    MEDIA = "media"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Inbound:
    """One message of a student: its id for dedupe, its kind and any text it holds."""

    message_id: str
    kind: Kind
    text: str = ""
    sent_at: int = 0  # SwiftChat's timestamp, Unix seconds

    @property
    def is_readable(self) -> bool:
        """Tell whether the message carries text the tutor can read as an answer."""
        return self.kind not in (Kind.MEDIA, Kind.OTHER) and bool(self.text.strip())


@dataclass(frozen=True, slots=True)
class Reply:
    """A message the tutor sends back: text, and quick-reply buttons if any."""

    text: str
    buttons: tuple[str, ...] = ()
