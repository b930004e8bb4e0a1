"""The Analyst on Anthropic's Messages API, through the `anthropic` SDK.

The SDK retries 408, 409, 429 and 5xx (529 "overloaded" included) and lost
connections with exponential backoff, honouring `retry-after`; `timeout` bounds each
attempt. On top of it: an overall deadline over all attempts (a long `retry-after`
must not hold a consumer for minutes) and a circuit breaker, so that while the API
keeps failing the Analyst is skipped at once instead of costing every trigger its
retries.
"""

from __future__ import annotations

import asyncio
import logging

import anthropic

from tutorlane.adapters.circuit_breaker import CircuitBreaker
from tutorlane.commands.ports import AnalystUnavailable
from tutorlane.domain.analysis import AnalysisRequest, render_prompt

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "claude-haiku-4-5"
MAX_OUTPUT_TOKENS = 400


class AnthropicAnalyst:
    """Asks a Claude model through the Messages API; returns its text unchecked."""

    def __init__(
        self,
        api_key: str,
        model: str = DEFAULT_MODEL,
        base_url: str | None = None,
        timeout: float = 20.0,
        max_retries: int = 2,
        deadline: float = 60.0,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.model = model
        self.deadline = deadline
        self.breaker = breaker or CircuitBreaker("anthropic")
        self.client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
        )

    async def analyse(self, request: AnalysisRequest) -> str:
        """Return the model's text for `request`, or raise `AnalystUnavailable`."""
        if not self.breaker.allow():
            raise AnalystUnavailable("the Anthropic API kept failing; circuit open")

        system, user = render_prompt(request)
        try:
            async with asyncio.timeout(self.deadline):
                message = await self.client.messages.create(
                    model=self.model,
                    max_tokens=MAX_OUTPUT_TOKENS,
                    system=system,
                    messages=[{"role": "user", "content": user}],
                )
        except asyncio.CancelledError:
            self.breaker.abandoned()
            raise
        except (anthropic.APIError, TimeoutError, ValueError) as ex:
            # ValueError: a response body that is not JSON.
            self.breaker.failed()
            raise AnalystUnavailable(_describe(ex)) from ex
        except BaseException:
            self.breaker.abandoned()
            raise

        text = _text_of(message)
        if text is None:
            self.breaker.failed()
            raise AnalystUnavailable("the Anthropic API's response has no text content")
        self.breaker.succeeded()
        return text

    async def close(self) -> None:
        """Close the HTTP connections."""
        await self.client.close()


def _text_of(message: object) -> str | None:
    """Return the text blocks of a response joined, or None if it has no such shape.

    The SDK builds its response objects without validating them, so a broken body
    can arrive here with any shape.
    """
    content = getattr(message, "content", None)
    if not isinstance(content, list):
        return None
    texts = [
        getattr(block, "text", None)
        for block in content
        if getattr(block, "type", None) == "text"
    ]
    if not texts or not all(isinstance(text, str) for text in texts):
        return None
    return "".join(str(text) for text in texts)


def _describe(ex: BaseException) -> str:
    """Say what went wrong, without the request (it may hold a student's text)."""
    if isinstance(ex, anthropic.APIStatusError):
        return f"Anthropic API answered HTTP {ex.status_code} ({type(ex).__name__})"
    if isinstance(ex, anthropic.APITimeoutError | TimeoutError):
        return "Anthropic API did not answer in time"
    if isinstance(ex, ValueError):
        return "Anthropic API answered a body that is not JSON"
    return f"Anthropic API unreachable ({type(ex).__name__})"
