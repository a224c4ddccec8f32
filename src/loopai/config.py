"""One settings object with its defaults in view; `Settings.from_env()` reads `LOOPAI_*`.

Every field can be set as `LOOPAI_<FIELD NAME IN CAPITALS>`; the README's configuration
table lists them and a test keeps it in step with this class.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, get_type_hints

import msgspec

from loopai.errors import ConfigurationError
from loopai.hub.origins import OriginPolicy

WALLS = ("seccomp", "uid", "userns", "netns", "mountns", "ipcns", "chroot", "capabilities",
         "no_new_privs", "rlimits")
"""The sandbox walls a worker can put up (core/sandbox/walls.py puts them up)."""

SCOPES = frozenset({"admin", "publish", "subscribe", "read", "write"})


class ApiKey(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A configured API key. An empty `prefixes` means every topic."""

    key: str
    scopes: list[str]
    name: str = ""
    prefixes: list[str] = []


def _default_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(kw_only=True)
class Settings:
    # --- serving
    host: str = "127.0.0.1"
    """Address to bind; use 0.0.0.0 in containers."""
    port: int = 8000
    instance_id: str = field(default_factory=_default_instance_id)
    """Names this instance in `welcome`, metrics and the instance registry."""
    public_url: str = ""
    """How other instances and operators reach this one (registry); default http://host:port."""
    log_level: str = "info"
    workers: int = 1
    """Processes serving the port, each a full instance on the shared backplane (Redis)."""
    allowed_origins: list[str] = field(default_factory=list)
    """JSON list of browser origins (`https://app.example.com`) that may open the WebSocket
    and call the API cross-origin (CORS); `["*"]` allows every origin. Empty: this server's
    own origin (from `public_url`, and `http://host:port`). Clients that send no `Origin`
    (anything but a browser) are always let through; credentials guard those."""

    # --- backplane and storage
    redis_url: str = ""
    """Empty: the in-memory backplane (one instance). Set: Redis, any number of instances."""
    database_url: str = "sqlite:///loopai.db"
    """SQLite file (embedded default) or postgresql://… for several instances."""
    history_max_events: int = 1000
    """Events kept per topic for resume."""
    history_max_age_s: int = 3600
    """Events older than this are dropped from history (resume then gets `gap`)."""
    idempotency_window_s: int = 120
    """A publish retried with the same `idempotency_key` within this window returns the
    first one's cursor instead of storing the event again."""
    redis_timeout_s: float = 5.0
    """A Redis command that takes longer fails (the publish is refused with `unavailable`)."""

    # --- auth
    api_keys: list[ApiKey] = field(default_factory=list)
    """JSON list of {key, scopes, name?, prefixes?}. Empty: auth off (embedded default)."""
    api_keys_file: str = ""
    """A JSON file with the same list, read at start-up (keeps keys out of the environment)."""
    token_secret: str = field(default="", repr=False)
    """Signs short-lived connection tokens; set the same value on every instance.
    Empty: a random secret per process (tokens then only work on the instance that made them)."""
    token_ttl_s: int = 300

    # --- protocol limits
    heartbeat_ms: int = 25_000
    """WebSocket ping interval; a peer silent for two intervals is closed."""
    max_frame_bytes: int = 65_536
    """Largest frame a client may send; larger closes with 1009."""
    max_subscriptions: int = 100
    """Topics one connection may hold."""
    send_queue_max: int = 2_000
    """Messages waiting for one connection before it is closed as a slow consumer (4408)."""
    max_batch_bytes: int = 262_144
    """Upper bound of one batched (array) frame sent to a client."""
    write_linger_ms: float = 5.0
    """While events keep coming, how long writes wait for more events before a frame goes;
    a few milliseconds cut the number of writes on busy topics at that much added latency.
    After a quiet spell (no write tick within this long) the first event goes at once."""
    publish_rate: float = 200.0
    """Publishes per second one connection may sustain (token bucket)."""
    publish_burst: int = 400
    """Publishes one connection may make at once before the rate applies; beyond: 4429."""
    max_protocol_errors: int = 20
    """Bad messages one connection may send before it is closed with 1008."""
    drain_timeout_s: float = 10.0
    """Upper bound on a graceful shutdown."""
    metrics_interval_ms: int = 1_000
    """How often `metrics.snapshot` goes to the `metrics` topic; 0 turns it off."""

    http_rate_limit: int = 0
    """HTTP requests per second one client may make to the API before 429: an authenticated
    caller by its key's name (its tokens share the budget), anyone else by address; 0 = off
    (behind a balancer every unauthenticated client shares its address: limit at the edge)."""

    execution_retention_s: int = 2_592_000
    """Unsampled execution records older than this are deleted (sampled ones are kept for
    validation); 0 keeps every record."""

    batch_deadline_s: float = 60.0
    """Items of a batch execute not started within this many seconds fail with
    `deadline_exceeded` instead of holding the request."""

    # --- program execution
    sandbox_workers: int = 8
    """Program calls that run at once, across all tasks (each in its own worker process)."""
    sandbox_task_concurrency: int = 2
    """Calls of one task that run at once; more wait, and the wait counts against their
    timeout. Keeps one task's runaway programs from starving the others."""
    sandbox_warm_workers: int = 32
    """Worker processes kept alive (one program each); the least recently used idle ones
    are stopped beyond this."""
    sandbox_warm_memory_mb: int = 2048
    """Memory the idle warm workers may use together before the coldest are stopped."""
    sandbox_memory_mb: int = 256
    """Address-space limit of one sandbox worker."""
    sandbox_cpu_s: int = 10
    """CPU seconds one call may use before the kernel kills its worker."""
    sandbox_uid: int = 64900
    """Unprivileged uid (and gid) workers run as when the server runs as root."""
    sandbox_require: str = ""
    """Comma-separated walls that must be up, e.g. `seccomp,uid`; start-up fails without
    them instead of serving unprotected. Names: seccomp, uid, userns, netns, mountns, ipcns,
    chroot, capabilities, no_new_privs, rlimits."""
    examples_budget_ms: int = 10_000
    """Time all of an upload's example checks share; examples not run by then are reported
    as not finished (and count as wrong)."""
    batch_response_max_bytes: int = 8_000_000
    """Outputs one batch execute may return in all; items past it fail with
    `response_too_large` instead of being buffered."""
    event_output_max_bytes: int = 16_384
    """Execution events carry the output only up to this size (`output_omitted` beyond)."""

    # --- generation (docs/loop.md)
    generator: str = "examples"
    """Default backend for tasks that do not name one: `examples` (built in, offline),
    `openai` (any OpenAI-compatible chat-completions endpoint) or `http` (generator service)."""
    openai_base_url: str = ""
    """e.g. https://api.openai.com/v1, http://localhost:11434/v1 (Ollama), a vLLM server."""
    openai_model: str = ""
    openai_api_key: str = field(default="", repr=False)
    """Prefer `openai_api_key_file`; never logged."""
    openai_api_key_file: str = ""
    generator_http_url: str = ""
    """Base URL of a Loopai generator service (`POST {base}/generate`)."""
    generator_timeout_s: float = 30.0
    """Per-attempt timeout of a remote backend call."""
    generator_retries: int = 3
    """Transport retries per call (exponential backoff with jitter)."""
    generator_max_attempts: int = 3
    """Times the model is asked again with the errors of its last answer."""
    generator_breaker_failures: int = 5
    """Consecutive failed calls that open a backend's circuit breaker."""
    generator_breaker_reset_s: float = 30.0
    """How long an open breaker refuses at once before it lets one probe through."""

    # --- validation
    validation_oracle: str = "cases"
    """Default oracle for sampled executions: `cases`, `llm` or `feedback` (wait for it)."""
    validation_window: int = 200
    """Validations per version that make up its rolling accuracy."""
    validation_min_samples: int = 20
    """Validations a version needs before `accuracy.breached` can fire."""
    validation_lease_s: float = 60.0
    """How long an instance's claim on a sampled execution holds; a killed instance's claims
    pass to another after this."""

    def __post_init__(self) -> None:
        if not (0 < self.port < 65536):
            raise ConfigurationError(f"port must be 1-65535, got {self.port}")
        for name in ("workers", "heartbeat_ms", "max_frame_bytes", "max_subscriptions",
                     "send_queue_max", "history_max_events", "history_max_age_s",
                     "idempotency_window_s",
                     "token_ttl_s", "publish_burst", "sandbox_workers", "sandbox_memory_mb",
                     "sandbox_cpu_s", "sandbox_task_concurrency", "sandbox_warm_workers",
                     "sandbox_warm_memory_mb", "batch_response_max_bytes",
                     "examples_budget_ms"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"{name} must be positive")
        if self.redis_timeout_s <= 0:
            raise ConfigurationError("redis_timeout_s must be positive")
        if self.batch_deadline_s <= 0:
            raise ConfigurationError("batch_deadline_s must be positive")
        if self.execution_retention_s < 0:
            raise ConfigurationError("execution_retention_s must be 0 (keep all) or positive")
        if self.publish_rate <= 0:
            raise ConfigurationError("publish_rate must be positive")
        if self.max_frame_bytes < 1024:
            raise ConfigurationError("max_frame_bytes must be at least 1024")
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigurationError("redis_url must start with redis://, rediss:// or unix://")
        if self.api_keys_file:
            self.api_keys = [*self.api_keys, *_read_keys_file(self.api_keys_file)]
        for key in self.api_keys:
            unknown = set(key.scopes) - SCOPES
            if unknown:
                raise ConfigurationError(f"API key {key.name or '?'}: unknown scopes {unknown}")
            if len(key.key) < 16:
                raise ConfigurationError(f"API key {key.name or '?'}: keys need 16+ characters")
        unknown_walls = self.sandbox_walls_required - set(WALLS)
        if unknown_walls:
            raise ConfigurationError(f"sandbox_require: unknown walls {sorted(unknown_walls)}"
                                     f" (known: {', '.join(WALLS)})")
        if self.generator not in ("examples", "openai", "http"):
            raise ConfigurationError("generator must be examples, openai or http")
        if self.validation_oracle not in ("cases", "llm", "feedback"):
            raise ConfigurationError("validation_oracle must be cases, llm or feedback")
        if self.openai_api_key_file:
            self.openai_api_key = _read_secret_file("openai_api_key_file",
                                                    self.openai_api_key_file)
        if not self.token_secret:
            self.token_secret = secrets.token_urlsafe(32)
        if not self.public_url:
            self.public_url = f"http://{self.host}:{self.port}"
        OriginPolicy.from_settings(self.allowed_origins, self.public_url, self.host, self.port)

    @property
    def sandbox_walls_required(self) -> frozenset[str]:
        return frozenset(w.strip() for w in self.sandbox_require.split(",") if w.strip())

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_keys)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from `LOOPAI_*` variables; `overrides` (e.g. CLI flags) win."""
        env = os.environ if environ is None else environ
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(f"LOOPAI_{f.name.upper()}")
            if raw is not None:
                values[f.name] = _convert(f.name, raw, hints[f.name])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @classmethod
    def env_names(cls) -> list[str]:
        return [f"LOOPAI_{f.name.upper()}" for f in dataclasses.fields(cls)]


def _convert(name: str, raw: str, hint: Any) -> Any:
    try:
        if hint is int:
            return int(raw)
        if hint is float:
            return float(raw)
        if hint is bool:
            return raw.strip().lower() in {"1", "true", "yes", "on"}
        if hint is str:
            return raw
        return msgspec.json.decode(raw, type=hint)
    except (ValueError, msgspec.DecodeError) as exc:
        raise ConfigurationError(f"LOOPAI_{name.upper()}: {exc}") from exc


def _read_secret_file(name: str, path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError as exc:
        raise ConfigurationError(f"{name} {path}: {exc.strerror}") from exc


def _read_keys_file(path: str) -> list[ApiKey]:
    try:
        with open(path, "rb") as fh:
            return msgspec.json.decode(fh.read(), type=list[ApiKey])
    except (OSError, msgspec.DecodeError) as exc:
        raise ConfigurationError(f"api_keys_file {path}: {exc}") from exc
