"""One :class:`Call` per inference: who asks, what was asked and what is routed, every upstream
attempt, and how the call ended. Stages and routing policies read it and write to it; a plugin
keeps its own state for the call in ``call.state[ItsType]``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from junction.errors import AuthenticationFailed, JunctionError
from junction.plugins.protocols import Deployment, InferenceRequest, Principal
from junction.plugins.store_batch import StoreBatch
from junction.schemas.chat import Usage

if TYPE_CHECKING:
    from junction.plugins.stages import Reply

T = TypeVar("T")

log = logging.getLogger("junction.pipeline")

#: The status an outcome records when the client went away before the answer was complete
#: (the convention of nginx and most gateways; never sent, the client is gone).
CLIENT_CLOSED = 499


class CallState(dict[type[Any], Any]):
    """Per-plugin state of one call, keyed by a class the plugin owns::

        call.state[Reservation] = Reservation(tokens=120)
        ...
        reservation = call.state.get(Reservation)

    Keys are types, so two plugins cannot collide by accident, and the value's type is checked.
    A dict underneath (``get``, ``in``: the dict's own, no Python call each: a traffic call reads
    and writes its state about a dozen times).
    """

    __slots__ = ()

    def __missing__(self, key: type[Any]) -> Any:
        raise KeyError(f"this call holds no {key.__name__}")

    def __setitem__(self, key: type[T], value: T) -> None:
        if not isinstance(value, key):
            raise TypeError(f"call.state[{key.__name__}] must hold a {key.__name__}, not {type(value).__name__}")
        dict.__setitem__(self, key, value)

    if TYPE_CHECKING:
        def __getitem__(self, key: type[T]) -> T: ...

        def get(self, key: type[T]) -> T | None: ...  # type: ignore[override]

    def __repr__(self) -> str:
        return f"CallState({', '.join(key.__name__ for key in self)})"


class Attempt(msgspec.Struct, kw_only=True, gc=False):
    """One try of one deployment, as the routing policy hears it. Times are milliseconds since
    the call started."""

    deployment: str
    provider: str
    started_ms: float
    #: Until the whole answer (JSON) or the first event (a stream) arrived.
    ttfb_ms: float | None = None
    #: Until the attempt ended: answered, failed, or (a stream) finished.
    latency_ms: float | None = None
    #: 200 on success, else the status of the error the attempt ended with.
    status: int | None = None
    #: The error's class (its OpenAI ``error.type``, e.g. ``rate_limit_error``, ``timeout_error``).
    error_class: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    #: Seconds the upstream asked us to wait (its ``Retry-After``), when it said.
    retry_after: float | None = None
    fallback: bool = False

    @property
    def ok(self) -> bool:
        return self.status == 200


class Outcome(msgspec.Struct, kw_only=True, gc=False):
    """How the call ended, as the client saw it."""

    status: int
    latency_ms: float
    usage: Usage | None = None
    error_class: str | None = None
    error_code: str | None = None


def _retry_after(error: JunctionError) -> float | None:
    value = error.headers.get("Retry-After") or error.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: the policy decides without it


@dataclass(slots=True, eq=False)
class Call:
    """Per-call state threaded through the stages. The gateway creates ``attempts``, ``outcome``,
    ``deployment``; stages read them and may add ``response_headers``.

    ``principal`` is required: a call nobody is accountable for is refused (401) when it is
    built. With ``auth.disabled = true`` the gateway passes its documented
    :data:`~junction.pipeline.gateway.AUTH_DISABLED_PRINCIPAL`.
    """

    request_id: str
    endpoint: str
    principal: Principal
    #: The request as routed; transform stages (bridges) replace it. ``received`` keeps the
    #: request as the client sent it.
    request: InferenceRequest
    #: The request's headers, credentials included (hence not in the repr).
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    received: InferenceRequest = field(init=False, repr=False)
    #: The org the call acts for: the caller's, or for a master-key bridge call the bridge's.
    org_id: str | None = None
    #: Set when the call runs a bridge: which one, which published version (``None``: the draft),
    #: and the bridge's fallback model, tried after the primary deployments.
    bridge_id: str | None = None
    bridge_version: int | None = None
    fallback_model: str | None = None
    #: The bridge thread the call continues (or started), when it runs in one.
    thread_id: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    outcome: Outcome | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    #: Milliseconds from the start to the first byte of the answer (a stream's first event).
    first_byte_ms: float | None = None
    #: ``provider/model`` of the deployment that answered, once routed.
    deployment: str | None = None
    fallback_used: bool = False
    cache_hit: bool = False
    #: Streams the stages of this call opened (see :meth:`opened`), closed by the gateway
    #: innermost first.
    open_streams: list[AsyncIterator[Any]] | None = field(default=None, repr=False)
    #: The plugins' own state for this call, by type (see :class:`CallState`).
    state: CallState = field(default_factory=CallState, init=False, repr=False)
    _store_batch: StoreBatch | None = field(default=None, init=False, repr=False)
    _on_answer: list[Callable[[Call, JunctionError | None], None]] | None = field(default=None, init=False,
                                                                                  repr=False)
    _on_end: list[Callable[[Call], None]] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.require_principal()
        self.received = self.request
        if self.org_id is None:
            self.org_id = self.principal.org_id

    def require_principal(self) -> None:
        """Refuse (401) a call nobody is accountable for."""
        if self.principal is None:
            raise AuthenticationFailed("this call has no principal: nobody is accountable for it",
                                       code="missing_principal")

    def store_batch(self, redis: Any) -> StoreBatch:
        """This call's batch of shared-store commands (see :mod:`junction.plugins.store_batch`):
        admission stages queue on it, the first layer that needs a result flushes it."""
        if self._store_batch is None:
            self._store_batch = StoreBatch(redis)
        return self._store_batch

    async def flush_store(self, hit: bool = False) -> None:
        """Send the queued store commands, if any (one round trip); may raise a stage's refusal.
        ``hit``: the call is answered from a cache (see :mod:`junction.plugins.store_batch`)."""
        batch = self._store_batch
        if batch is not None and batch.pending:
            await batch.flush(hit)

    def opened(self, stream: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """Record a stream a layer of this call made, for the gateway to close; returns it."""
        if self.open_streams is None:
            self.open_streams = []
        self.open_streams.append(stream)
        return stream

    # --- hooks: work at the answer and at the end, without a layer of the pipeline -------------

    def when_answered(self, hook: Callable[[Call, JunctionError | None], None]) -> None:
        """Have the gateway run ``hook(call, error)`` once the answer is about to go: a JSON
        reply or a stream's first event (``error`` is None; ``response_headers`` still go out with
        it), or the error the call failed with before answering (its ``headers`` still go out).
        Register it before the answer: from ``enter``, or a store batch's callback."""
        if self._on_answer is None:
            self._on_answer = [hook]
        else:
            self._on_answer.append(hook)

    def when_ended(self, hook: Callable[[Call], None]) -> None:
        """Have the gateway run ``hook(call)`` once the call is over, however it ended, with its
        ``outcome`` final: after a JSON answer or an error, once a stream ended or its client left.

        A stage that only needs the end of a call (to settle, to record it) registers this from
        ``enter`` instead of wrapping the call in ``handle`` and ``stream``: a layer costs every
        call an await of its own and every streamed event a step, a hook costs a list append."""
        if self._on_end is None:
            self._on_end = [hook]
        else:
            self._on_end.append(hook)

    @property
    def has_end_hooks(self) -> bool:
        return self._on_end is not None

    def run_answered(self, error: JunctionError | None) -> None:
        """The gateway's: run the :meth:`when_answered` hooks (once)."""
        hooks, self._on_answer = self._on_answer, None
        for hook in hooks or ():
            try:
                hook(self, error)
            except Exception:  # one plugin's failing hook must not fail the call or skip the others
                log.exception("a hook at the answer of call %s failed", self.request_id)

    def run_ended(self) -> None:
        """The gateway's: run the :meth:`when_ended` hooks (once)."""
        hooks, self._on_end = self._on_end, None
        for hook in hooks or ():
            try:
                hook(self)
            except Exception:  # as in run_answered
                log.exception("a hook at the end of call %s failed", self.request_id)

    @property
    def stream(self) -> bool:
        return bool(getattr(self.request, "stream", False))

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    # --- written by the gateway ----------------------------------------------------------------

    def begin_attempt(self, deployment: Deployment) -> Attempt:
        attempt = Attempt(deployment=deployment.label, provider=deployment.provider_name,
                          started_ms=self.elapsed_ms(), fallback=deployment.fallback)
        self.attempts.append(attempt)
        return attempt

    def attempt_failed(self, attempt: Attempt, error: JunctionError) -> None:
        attempt.latency_ms = self.elapsed_ms() - attempt.started_ms
        attempt.status, attempt.error_class, attempt.error_code = error.status, error.error_type, error.code
        attempt.error_message = error.message
        attempt.retry_after = _retry_after(error)

    def attempt_answered(self, attempt: Attempt, deployment: Deployment, *, stream: bool) -> None:
        now = self.elapsed_ms()
        attempt.ttfb_ms = now - attempt.started_ms
        attempt.status = 200
        if not stream:
            attempt.latency_ms = attempt.ttfb_ms
        self.first_byte_ms = now
        self.deployment = deployment.label
        self.response_headers["x-junction-deployment"] = deployment.label
        if len(self.attempts) > 1:
            self.fallback_used = True
            self.response_headers["x-junction-fallback"] = "true"
            first = self.attempts[0]
            if first.error_class:  # what made the gateway look further, e.g. rate_limit_error
                self.response_headers["x-junction-first-failure"] = first.error_class

    def succeeded(self, usage: Usage | None) -> None:
        self.outcome = Outcome(status=200, latency_ms=self.elapsed_ms(), usage=usage)

    def failed(self, error: JunctionError, usage: Usage | None = None) -> None:
        self.outcome = Outcome(status=error.status, latency_ms=self.elapsed_ms(), usage=usage,
                               error_class=error.error_type, error_code=error.code)

    def abandoned(self, usage: Usage | None = None) -> None:
        """The client went away before the answer was complete."""
        self.outcome = Outcome(status=CLIENT_CLOSED, latency_ms=self.elapsed_ms(), usage=usage,
                               error_class="client_closed")

    def answered(self, reply: Reply) -> None:
        """After a stage returned ``reply``: unless the call already ended well, it did now (a
        stage answered by itself, or over an inner failure)."""
        if self.outcome is None or self.outcome.status != 200:
            usage = reply.usage
            self.succeeded(usage if isinstance(usage, Usage) else _as_usage(usage))


def _as_usage(usage: Any) -> Usage | None:
    """An embeddings answer's usage as chat usage (prompt tokens only)."""
    if usage is None:
        return None
    return Usage(prompt_tokens=usage.prompt_tokens, completion_tokens=0, total_tokens=usage.total_tokens)
