"""How tutorlane's processes log: one line per record, libraries' chatter left out."""

from __future__ import annotations

import logging


def configure_logging(verbose: bool = False) -> None:
    """Log to stderr at INFO (DEBUG when `verbose`), libraries at WARNING."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # One line per HTTP request, and Alembic's set-up lines whenever a process
    # opens the database, are noise in a terminal chat and in service logs.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
