"""A circuit breaker: after repeated failures, stop calling a service for a while.

Closed, calls go through. After `failure_threshold` failures in a row it opens: calls
are refused at once, without touching the service, for `reset_seconds`. Then it is
half open: one trial call goes through; success closes it, failure opens it again.
Single event loop only (asyncio, no threads), like everything that uses it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import StrEnum

logger = logging.getLogger(__name__)


class BreakerState(StrEnum):
    """Where a circuit breaker is."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    """Counts failures of one service and refuses calls while it is failing."""

    def __init__(
        self,
        name: str,
        failure_threshold: int = 5,
        reset_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or reset_seconds <= 0:
            raise ValueError("failure_threshold must be >= 1 and reset_seconds > 0")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_seconds = reset_seconds
        self.clock = clock
        self.failures = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> BreakerState:
        """Return the state now (open turns half open once its time is up)."""
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self.clock() - self._opened_at < self.reset_seconds:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def allow(self) -> bool:
        """Tell whether a call may go now; when half open, let one trial through."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._trial_running:
            self._trial_running = True
            return True
        return False

    def succeeded(self) -> None:
        """Record a call that worked: the breaker closes."""
        if self._opened_at is not None:
            logger.info("circuit %s closed again", self.name)
        self.failures = 0
        self._opened_at = None
        self._trial_running = False

    def abandoned(self) -> None:
        """Record a call given up by its caller (cancelled): it counts for nothing."""
        self._trial_running = False

    def failed(self) -> None:
        """Record a call that failed; open the breaker at the threshold."""
        self.failures += 1
        trial = self._trial_running
        self._trial_running = False
        if trial or self.failures >= self.failure_threshold:
            if self._opened_at is None or trial:
                logger.warning(
                    "circuit %s opened for %.0f s after %d failures",
                    self.name,
                    self.reset_seconds,
                    self.failures,
                )
            self._opened_at = self.clock()
