"""Protocol error codes and close codes, as data, mirroring docs/protocol.md."""

from enum import IntEnum, StrEnum


class ErrorCode(StrEnum):
    """The `code` of an `error` message; the connection stays open after each."""

    BAD_REQUEST = "bad_request"
    UNKNOWN_OP = "unknown_op"
    INVALID_TOPIC = "invalid_topic"
    FORBIDDEN = "forbidden"
    TOO_MANY_SUBSCRIPTIONS = "too_many_subscriptions"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


class CloseCode(IntEnum):
    """WebSocket close codes the hub uses.

    A client should reconnect (with backoff, resuming from its cursors) after
    SERVICE_RESTART, SLOW_CONSUMER, INTERNAL_ERROR, RATE_LIMITED and abnormal closes;
    it should not after UNAUTHORIZED or FORBIDDEN (credentials will not fix themselves),
    nor after POLICY_VIOLATION / MESSAGE_TOO_BIG without changing what it sends.
    """

    NORMAL = 1000
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    UNAUTHORIZED = 4401
    FORBIDDEN = 4403
    SLOW_CONSUMER = 4408
    RATE_LIMITED = 4429


RECONNECTABLE = frozenset(
    {
        CloseCode.INTERNAL_ERROR,
        CloseCode.SERVICE_RESTART,
        CloseCode.SLOW_CONSUMER,
        CloseCode.RATE_LIMITED,
    }
)
