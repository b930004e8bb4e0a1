"""The circuit breaker: opens after failures, lets one trial through, closes again."""

from __future__ import annotations

import pytest

from tutorlane.adapters.circuit_breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def breaker(clock: Clock) -> CircuitBreaker:
    return CircuitBreaker("test", failure_threshold=3, reset_seconds=30, clock=clock)


def state(breaker: CircuitBreaker) -> BreakerState:
    """Read the state afresh (a property mypy would otherwise keep narrowed)."""
    return breaker.state


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        assert breaker.allow()
        breaker.failed()


def test_failures_below_the_threshold_keep_it_closed(breaker: CircuitBreaker) -> None:
    fail(breaker, 2)
    breaker.succeeded()
    fail(breaker, 2)

    assert state(breaker) is BreakerState.CLOSED and breaker.allow()


def test_it_opens_at_the_threshold_and_refuses_calls(breaker: CircuitBreaker) -> None:
    fail(breaker, 3)

    assert state(breaker) is BreakerState.OPEN
    assert not breaker.allow()


def test_after_the_pause_one_trial_goes_through_and_success_closes(
    breaker: CircuitBreaker, clock: Clock
) -> None:
    fail(breaker, 3)
    clock.now += 30

    assert state(breaker) is BreakerState.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()  # only one trial at a time
    breaker.succeeded()
    assert state(breaker) is BreakerState.CLOSED and breaker.allow()


def test_a_failed_trial_opens_it_for_another_pause(
    breaker: CircuitBreaker, clock: Clock
) -> None:
    fail(breaker, 3)
    clock.now += 30
    fail(breaker, 1)

    assert state(breaker) is BreakerState.OPEN
    clock.now += 29
    assert not breaker.allow()
    clock.now += 1
    assert breaker.allow()


def test_an_abandoned_trial_lets_the_next_one_through(
    breaker: CircuitBreaker, clock: Clock
) -> None:
    fail(breaker, 3)
    clock.now += 30
    assert breaker.allow()

    breaker.abandoned()

    assert breaker.allow()
