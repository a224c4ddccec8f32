"""How a remote generator backend is called: retries, a per-attempt timeout, a circuit breaker.

One `RemoteCall` per backend (`openai`, `http`). A *call* is one logical request
(`call(operation)` or `post_json(...)`); it is made of up to `retries + 1` *attempts*:

- each attempt runs under its own timeout (`timeout_s`); an attempt that takes longer is
  abandoned and counts as a `timeout`;
- an attempt that fails with a transport error (connection refused, reset, dropped in the
  middle of the reply), a timeout, a 5xx or a 429 is tried again after an exponential
  backoff with full jitter (tenacity's `wait_random_exponential`: a random wait in
  [0, min(backoff_max_s, backoff_s * 2**n))); any other status (4xx, 3xx) and a reply that
  is not what the contract promises (`BadReply`) are not: asking again gets the same answer;
- the circuit breaker (purgatory) counts *calls*, after their retries: `breaker_failures`
  consecutive failed calls open it; while open, a call raises `BackendUnavailable` at once,
  with `retry_after_s` the time left, and touches no network. After `breaker_reset_s` one
  call is let through as a probe (half-open; others are still refused while it runs): its
  success closes the breaker, its failure opens it again for another `breaker_reset_s`.
  A client error (non-429 4xx) is an answer, not an outage: it does not count as a failure
  (and, as any answer, ends a run of consecutive failures). A cancelled call counts as a
  failure only when it was the half-open probe.

Failures surface as `RemoteCallFailed` (a `BackendFailed`) whose message names the backend,
what went wrong and how many attempts were made; it never carries the request, its headers
or any of the `secrets` given (the API key): every text taken from the wire is redacted,
and the httpx exception is not chained.

Metrics (`loopai_generator_*`, on the registry given):
- `calls_total{backend, outcome}`: outcome `ok`, `failed` (after retries), `client_error`
  (4xx answer), `unavailable` (refused by the breaker), `cancelled`;
- `call_latency_seconds{backend}`: wall time of the calls that reached the network,
  retries and backoff included;
- `failures_total{backend, kind}`: each failed *attempt*, kind `timeout`, `connect`
  (could not connect, or the connection broke), `http_5xx`, `http_4xx` (429 included, and
  any non-2xx below 500), `bad_reply`;
- `breaker_state{backend}`: 0 closed, 1 half-open (including an open breaker whose reset
  time has passed: the next call probes), 2 open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import msgspec
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from loopai.core.generation.base import BackendFailed, BackendUnavailable

if TYPE_CHECKING:
    from purgatory.domain.messages import Event
    from purgatory.service._async.circuitbreaker import AsyncCircuitBreaker

    from loopai.config import Settings

log = logging.getLogger("loopai.generation")

T = TypeVar("T")

CALL_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0,
                        300.0)
FAILURE_KINDS = ("timeout", "connect", "http_5xx", "http_4xx", "bad_reply")
BREAKER_CLOSED, BREAKER_HALF_OPEN, BREAKER_OPEN = 0, 1, 2
_SNIPPET = 200
"""Characters of an error reply's body kept in a failure's message."""


class BadReply(Exception):
    """The backend answered 2xx but not with what its contract promises (not JSON, a field
    missing). Raised by a call's operation; not retried, counts against the breaker."""


class RemoteCallFailed(BackendFailed):
    """A remote call that failed after its retries, or was answered with a client error."""

    def __init__(self, message: str, *, failure_kind: str, attempts: int,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.failure_kind = failure_kind
        """One of FAILURE_KINDS: what the last attempt ran into."""
        self.attempts = attempts
        self.status = status


class _AttemptFailed(Exception):
    """One attempt's failure, classified (internal: never leaves RemoteCall)."""

    def __init__(self, kind: str, detail: str, *, retryable: bool, counts: bool = True,
                 status: int | None = None) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.retryable = retryable
        self.counts = counts
        """Whether the breaker counts it as the backend failing (a 400 does not)."""
        self.status = status
        self.attempts = 1


class GeneratorMetrics:
    """The `loopai_generator_*` metrics; one set per registry, shared by every backend."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.calls = Counter("loopai_generator_calls", "Remote generator backend calls",
                             ["backend", "outcome"], registry=registry)
        self.latency = Histogram("loopai_generator_call_latency_seconds",
                                 "Wall time of a remote generator call, retries included",
                                 ["backend"], buckets=CALL_LATENCY_BUCKETS, registry=registry)
        self.failures = Counter("loopai_generator_failures",
                                "Failed attempts of remote generator calls, by kind",
                                ["backend", "kind"], registry=registry)
        self.breaker_state = Gauge("loopai_generator_breaker_state",
                                   "Circuit breaker of a generator backend: 0 closed, "
                                   "1 half-open, 2 open", ["backend"], registry=registry)


_metrics_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, GeneratorMetrics] = (
    weakref.WeakKeyDictionary())


def generator_metrics(registry: CollectorRegistry) -> GeneratorMetrics:
    """The registry's generator metrics, registered on first use."""
    metrics = _metrics_by_registry.get(registry)
    if metrics is None:
        metrics = _metrics_by_registry[registry] = GeneratorMetrics(registry)
    return metrics


class RemoteCall:
    """Retries, per-attempt timeout, circuit breaker and metrics around one backend's calls."""

    def __init__(self, backend: str, *, timeout_s: float, retries: int,
                 breaker_failures: int, breaker_reset_s: float,
                 registry: CollectorRegistry | None = None, secrets: Iterable[str] = (),
                 backoff_s: float = 0.5, backoff_max_s: float = 8.0) -> None:
        if timeout_s <= 0 or retries < 0 or breaker_failures < 1 or breaker_reset_s <= 0:
            raise ValueError("timeout_s and breaker_reset_s must be positive, retries >= 0, "
                             "breaker_failures >= 1")
        self.backend = backend
        self.timeout_s = timeout_s
        self.retries = retries
        self.breaker_failures = breaker_failures
        self.breaker_reset_s = breaker_reset_s
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self._secrets = tuple(s for s in secrets if s)
        self._metrics = generator_metrics(registry if registry is not None
                                          else CollectorRegistry(auto_describe=True))
        self._factory = AsyncCircuitBreakerFactory(
            default_threshold=breaker_failures, default_ttl=breaker_reset_s,
            exclude=[(_AttemptFailed, lambda exc: not exc.counts),
                     (asyncio.CancelledError, lambda exc: not self._probing)])
        self._factory.add_listener(self._on_breaker_event)
        self._breaker: AsyncCircuitBreaker | None = None
        self._probing = False
        self._metrics.breaker_state.labels(backend).set_function(self._state_value)
        for outcome in ("ok", "failed", "client_error", "unavailable"):
            self._metrics.calls.labels(backend, outcome)
        for kind in FAILURE_KINDS:
            self._metrics.failures.labels(backend, kind)

    @classmethod
    def from_settings(cls, backend: str, settings: Settings,
                      registry: CollectorRegistry | None = None, *,
                      secrets: Iterable[str] = (), **overrides: Any) -> RemoteCall:
        options: dict[str, Any] = {
            "timeout_s": settings.generator_timeout_s, "retries": settings.generator_retries,
            "breaker_failures": settings.generator_breaker_failures,
            "breaker_reset_s": settings.generator_breaker_reset_s}
        options.update(overrides)
        return cls(backend, registry=registry, secrets=secrets, **options)

    # --- state

    @property
    def state(self) -> str:
        """`closed`, `half-open` or `open` (an open breaker past its reset time: half-open)."""
        return ("closed", "half-open", "open")[int(self._state_value())]

    def retry_after_s(self) -> float | None:
        """Seconds an open breaker still refuses for; None when a call may go (closed, or
        half-open with a probe allowed)."""
        breaker = self._breaker
        if breaker is None or breaker.context.state == "closed":
            return None
        if self._state_value() != BREAKER_OPEN:
            return None
        return self._retry_after(breaker.context.opened_at)

    def _state_value(self) -> float:
        breaker = self._breaker
        if breaker is None:
            return BREAKER_CLOSED
        ctx = breaker.context
        if ctx.state == "closed":
            return BREAKER_CLOSED
        if ctx.state == "half-opened" or self._retry_after(ctx.opened_at) <= 0:
            return BREAKER_HALF_OPEN
        return BREAKER_OPEN

    def _retry_after(self, opened_at: float | None) -> float:
        if opened_at is None:
            return 0.0
        return max(0.0, opened_at + self.breaker_reset_s - time.time())

    def _on_breaker_event(self, circuit: str, name: str, event: Event) -> None:
        if name == "state_changed":
            state = getattr(event, "state", "?")
            level = logging.WARNING if state == "opened" else logging.INFO
            log.log(level, "generator %s: circuit breaker %s", self.backend, state)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text

    # --- calls

    async def call(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Runs `operation` (one attempt: it raises httpx errors or BadReply) with retries,
        under the breaker; raises BackendUnavailable or RemoteCallFailed."""
        if self._breaker is None:
            self._breaker = await self._factory.get_breaker(self.backend)
        breaker = self._breaker
        if self._probing:
            self._metrics.calls.labels(self.backend, "unavailable").inc()
            raise BackendUnavailable(f"generator backend {self.backend!r} is being probed "
                                     f"after an outage; try again shortly",
                                     retry_after_s=min(self.breaker_reset_s, self.timeout_s))
        started = time.monotonic()
        outcome = "failed"
        probe = False
        try:
            async with breaker:
                probe = breaker.context.state == "half-opened"
                self._probing = probe
                result = await self._with_retries(operation)
            outcome = "ok"
            return result
        except OpenedState as opened:
            # purgatory raises the same OpenedState object on every refused call: drop the
            # traceback each raise would otherwise add to it.
            opened.__traceback__ = None
            outcome = "unavailable"
            retry_after = self._retry_after(opened.opened_at)
            raise BackendUnavailable(
                f"generator backend {self.backend!r} is unavailable: its circuit breaker "
                f"opened after {self.breaker_failures} failed calls in a row; retry in "
                f"{retry_after:.1f}s", retry_after_s=retry_after) from None
        except _AttemptFailed as failed:
            outcome = "failed" if failed.counts else "client_error"
            tries = (f" (after {failed.attempts} attempts)" if failed.attempts > 1 else "")
            raise RemoteCallFailed(f"generator backend {self.backend!r}: {failed.detail}{tries}",
                                   failure_kind=failed.kind, attempts=failed.attempts,
                                   status=failed.status) from None
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            if probe:
                self._probing = False
            self._metrics.calls.labels(self.backend, outcome).inc()
            if outcome != "unavailable":
                self._metrics.latency.labels(self.backend).observe(time.monotonic() - started)

    async def post_json(self, client: httpx.AsyncClient, url: str, body: Any,
                        headers: Mapping[str, str] | None = None,
                        parse: Callable[[Any], Any] | None = None) -> Any:
        """POSTs `body` as JSON, through `call`; returns the decoded JSON reply, or what
        `parse` makes of it (`parse` raises BadReply for a reply outside the contract,
        which then counts as such)."""
        payload = msgspec.json.encode(body)
        all_headers = {"content-type": "application/json", "accept": "application/json",
                       **(headers or {})}

        async def once() -> Any:
            response = await client.post(url, content=payload, headers=all_headers)
            response.raise_for_status()
            try:
                decoded = msgspec.json.decode(response.content)
            except msgspec.DecodeError:
                raise BadReply(f"the reply (HTTP {response.status_code}) is not JSON: "
                               f"{_snippet(response.text)}") from None
            return decoded if parse is None else parse(decoded)

        return await self.call(once)

    async def _with_retries(self, operation: Callable[[], Awaitable[T]]) -> T:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retries + 1),
            wait=wait_random_exponential(multiplier=self.backoff_s, max=self.backoff_max_s),
            retry=retry_if_exception(lambda exc: isinstance(exc, _AttemptFailed)
                                     and exc.retryable),
            before_sleep=self._before_sleep, reraise=True)
        try:
            return await retrying(self._attempt, operation)
        except _AttemptFailed as failed:
            failed.attempts = retrying.statistics.get("attempt_number", 1)
            raise

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning("generator %s: attempt %d failed (%s); retrying in %.2fs", self.backend,
                    state.attempt_number, exc, wait)

    async def _attempt(self, operation: Callable[[], Awaitable[T]]) -> T:
        try:
            async with asyncio.timeout(self.timeout_s):
                return await operation()
        except (TimeoutError, httpx.TimeoutException):
            raise self._failed("timeout", f"no reply within {self.timeout_s:g}s",
                               retryable=True) from None
        except httpx.HTTPStatusError as exc:
            status = exc.response.status_code
            detail = f"HTTP {status}: {_snippet(exc.response.text)}"
            if status >= 500:
                raise self._failed("http_5xx", detail, retryable=True, status=status) from None
            raise self._failed("http_4xx", detail, retryable=status == 429,
                               counts=status == 429, status=status) from None
        except httpx.TransportError as exc:
            raise self._failed("connect", f"connection failed ({type(exc).__name__}: "
                               f"{_snippet(str(exc))})", retryable=True) from None
        except BadReply as exc:
            raise self._failed("bad_reply", f"bad reply: {exc}", retryable=False) from None

    def _failed(self, kind: str, detail: str, *, retryable: bool, counts: bool = True,
                status: int | None = None) -> _AttemptFailed:
        self._metrics.failures.labels(self.backend, kind).inc()
        return _AttemptFailed(kind, self.redact(detail), retryable=retryable, counts=counts,
                              status=status)


def _snippet(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _SNIPPET else text[:_SNIPPET] + "…"


@contextlib.asynccontextmanager
async def http_client(given: httpx.AsyncClient | None,
                      timeout_s: float) -> AsyncIterator[httpx.AsyncClient]:
    """The client a backend was given (tests), else a fresh one for this call."""
    if given is not None:
        yield given
        return
    async with httpx.AsyncClient(timeout=httpx.Timeout(timeout_s),
                                 follow_redirects=False) as client:
        yield client
