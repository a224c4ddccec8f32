"""The root of the project's exception tree.

Subclasses also inherit the matching built-in so callers that only know Python's
exceptions still catch them sensibly.
"""


class LoopaiError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigurationError(LoopaiError, ValueError):
    """A setting is missing or out of range; raised at start-up, never at run time."""


class BackplaneUnavailable(LoopaiError, ConnectionError):
    """The backplane cannot store or fan out an event right now; the caller should retry.

    Publishers get this as the protocol's `unavailable` error or HTTP 503: an event is
    refused, never dropped silently.
    """


class InvalidCursor(LoopaiError, ValueError):
    """A cursor string that this server did not make."""
