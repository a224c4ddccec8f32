"""Which browser origins may open the WebSocket and call the API cross-origin.

Browsers send `Origin` on every WebSocket handshake and cross-origin request; a page from a
foreign site must not be able to ride on a user's network position (or, with auth off, on
nothing at all) to talk to the hub. Clients outside a browser send no `Origin` and are not
affected: they could send any value they like, so credentials are what guard them.
"""

from __future__ import annotations

import contextlib
from urllib.parse import urlsplit

from loopai.errors import ConfigurationError

ANY = "*"
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


def normalize_origin(value: str) -> str:
    """`scheme://host[:port]` in lower case, without a default port or trailing slash.

    Raises ValueError for anything that is not an origin (a path, a query, no host)."""
    text = value.strip()
    if text == "null":
        return text  # sandboxed frames and file:// pages; allowed only if listed
    parts = urlsplit(text)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not an origin: {value!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"an origin has no path, query or user: {value!r}")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"bad port in origin {value!r}") from exc
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    scheme = parts.scheme.lower()
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def default_origins(public_url: str, host: str, port: int) -> list[str]:
    """The server's own origins: that of `public_url`, and `http://host:port` (with the
    loopback names as aliases of each other when bound to loopback)."""
    found: list[str] = []
    public = urlsplit(public_url)
    with contextlib.suppress(ValueError):  # the origin of a URL is its scheme and authority
        found.append(normalize_origin(f"{public.scheme}://{public.netloc}"))
    hosts = [host]
    if host in _LOOPBACK or host == "::1":
        hosts = list(_LOOPBACK)
    for name in hosts:
        if name in ("", "0.0.0.0", "::"):  # a wildcard bind names no origin
            continue
        if ":" in name and not name.startswith("["):
            name = f"[{name}]"
        found.append(normalize_origin(f"http://{name}:{port}"))
    return list(dict.fromkeys(found))


class OriginPolicy:
    """Decides on the `Origin` header of a WebSocket handshake (or an API request)."""

    def __init__(self, origins: list[str]) -> None:
        self.allow_all = ANY in origins
        self.origins = frozenset(o for o in origins if o != ANY)

    @classmethod
    def from_settings(cls, allowed: list[str], public_url: str, host: str,
                      port: int) -> OriginPolicy:
        if not allowed:
            return cls(default_origins(public_url, host, port))
        try:
            return cls([o if o.strip() == ANY else normalize_origin(o) for o in allowed])
        except ValueError as exc:
            raise ConfigurationError(f"allowed_origins: {exc}") from exc

    def allows(self, origin: str | None) -> bool:
        """No `Origin` (a non-browser client) is always allowed; otherwise it must be listed."""
        if origin is None or self.allow_all:
            return True
        try:
            return normalize_origin(origin) in self.origins
        except ValueError:
            return False

    def cors_origins(self) -> list[str]:
        """For Litestar's CORSConfig: `["*"]` or the exact origins."""
        return [ANY] if self.allow_all else sorted(self.origins)
