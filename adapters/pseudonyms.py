"""Students' pseudonyms: a keyed hash of the phone number, never the number itself."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

KEY_BYTES = 32


class Pseudonymiser:
    """Turns phone numbers into stable pseudonyms with a secret key (HMAC-SHA256)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the pseudonym key must be at least 16 bytes long")
        self._key = key

    def __call__(self, phone: str) -> str:
        """Return the pseudonym of a phone number (16 URL-safe characters)."""
        normalised = "+" + phone.strip().lstrip("+")
        digest = hmac.new(self._key, normalised.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:12]).decode()


def load_or_create_key(path: Path) -> bytes:
    """Read the key kept at `path`, creating it (readable by its owner only) once."""
    if path.exists():
        return bytes.fromhex(path.read_text().strip())
    path.parent.mkdir(parents=True, exist_ok=True)

    # Write the whole key to a file of our own, then link it into place: link fails
    # if another process got there first, and nobody ever reads a half-written key.
    key = secrets.token_bytes(KEY_BYTES)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(key.hex())
    try:
        os.link(draft, path)
    except FileExistsError:
        return bytes.fromhex(path.read_text().strip())
    finally:
        draft.unlink()
    return key
