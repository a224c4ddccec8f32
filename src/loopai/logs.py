"""Structured logs: one JSON object per line, with the request's trace id when there is one.

Operators feed these to a log pipeline; a trace id in a log line matches the `trace_id` a
client got in an error body and the `X-Request-ID` header.

No credential reaches a log line: every field (message, extras, exception text) passes
through `Redactor`, which blanks `token=` query values, `Bearer`/`Basic` credentials,
`authorization` header values, connection tokens (`lt1.…`) and the literal value of every
configured secret (API keys, the token secret). Uvicorn's lines — the `WebSocket /ws?token=…`
access line, the debug dump of request headers — come through the same handler.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime

import msgspec

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "color_message"}
_encoder = msgspec.json.Encoder()

REDACTED = "[redacted]"
TRACE = 5
"""Uvicorn's `trace` level, below debug."""

MIN_LITERAL_SECRET = 8
"""Configured secrets shorter than this are not blanked literally (they would blank
ordinary words); the patterns still catch them where credentials travel."""

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Connection tokens wherever they appear (frames, reprs, bodies).
    (re.compile(r"\blt1\.[A-Za-z0-9_\-=]*(?:\.[^\s&\"'#,;)\]}\\]*)?"), "lt1." + REDACTED),
    # Query-string credentials: ?token=…, &access_token=…, api_key=…, secret=…
    (re.compile(r"(?i)((?:token|api[_-]?key|secret|password)=)[^&\s\"'#\\]+"), r"\1" + REDACTED),
    # Credentials after an auth scheme, in headers, reprs and messages.
    (re.compile(r"(?i)\b(bearer|basic)(\s+)(?!\[redacted\])[^\s\"',;)\]}\\]+"),
     r"\1\2" + REDACTED),
    # A bare authorization header value without a known scheme.
    (re.compile(r"(?i)(\b(?:proxy-)?authorization\b[\"']?\s*[:=,]\s*(?:b?[\"'])?)"
                r"(?!(?:bearer|basic)\b|\[redacted\])[^\s\"',;)\]}\\]+"), r"\1" + REDACTED),
)


class Redactor:
    """Blanks credentials in text; `secrets` are literal values to blank as well."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        literal = sorted({s for s in secrets if len(s) >= MIN_LITERAL_SECRET}, key=len,
                         reverse=True)
        self._literal = re.compile("|".join(map(re.escape, literal))) if literal else None

    def __call__(self, text: str) -> str:
        if self._literal is not None:
            text = self._literal.sub(REDACTED, text)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text


_active = Redactor()


def redact(text: str) -> str:
    """Redact with the process's configured secrets (see `configure`)."""
    return _active(text)


class JsonFormatter(logging.Formatter):
    def __init__(self, instance: str = "", redactor: Redactor | None = None) -> None:
        super().__init__()
        self.instance = instance
        self.redact = redactor or Redactor()

    def format(self, record: logging.LogRecord) -> str:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the line (or leak its args)
            message = str(record.msg)
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": self.redact(message),
        }
        if self.instance:
            entry["instance"] = self.instance
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                if isinstance(value, bool | int | float):
                    entry[key] = value
                else:
                    entry[key] = self.redact(value if isinstance(value, str) else str(value))
        if record.exc_info:
            entry["exception"] = self.redact(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = self.redact(self.formatStack(record.stack_info))
        return _encoder.encode(entry).decode()


def configure(level: str, instance: str, secrets: Iterable[str] = ()) -> None:
    """JSON lines on stderr for every logger (uvicorn's included), with `secrets` redacted."""
    global _active
    _active = Redactor(secrets)
    logging.addLevelName(TRACE, "TRACE")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter(instance, _active))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Loggers with handlers of their own (Litestar configures `litestar` with a plain-text
    # queue handler that does not propagate) would write around the redaction: route them here.
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger) and logger.handlers:
            logger.handlers.clear()
            logger.propagate = True
