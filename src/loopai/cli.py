"""`loopai serve`: run the server with uvicorn, draining clients on SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.supervisors import multiprocess as uvicorn_multiprocess

from loopai import logs, memory
from loopai.api.http_protocol import protocol_path
from loopai.app import create_app, drain
from loopai.config import Settings
from loopai.errors import ConfigurationError
from loopai.hub import ws_protocol
from loopai.hub.ws import socket_entry

log = logging.getLogger("loopai")


class _DrainingServer(uvicorn.Server):
    """Uvicorn closes sockets with 1012 on its own; we first tell clients to reconnect."""

    def __init__(self, config: Any, app: Any) -> None:
        super().__init__(config)
        self._app = app
        """None in a `--workers` parent: each process finds its own app in `_worker_app`."""
        self._draining: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._draining is None and sig in (signal.SIGTERM, signal.SIGINT):
            loop = asyncio.get_event_loop()
            self._draining = loop.create_task(self._drain_then_exit(sig, frame))
            return
        super().handle_exit(sig, frame)

    async def _drain_then_exit(self, sig: int, frame: FrameType | None) -> None:
        try:
            await drain(self._app if self._app is not None else _worker_app[-1])
        except Exception:
            log.exception("drain failed")
        super().handle_exit(sig, frame)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="loopai", description="Loopai Hub server")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the server (settings also from LOOPAI_* env)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--instance-id")
    serve.add_argument("--redis-url", help="Redis backplane; absent: in-memory, one instance")
    serve.add_argument("--database-url", help="sqlite:///path or postgresql://…")
    serve.add_argument("--log-level")
    serve.add_argument("--workers", type=int,
                       help="processes serving this port, each a full instance on the shared"
                       " backplane (needs --redis-url when more than 1)")
    sandbox = sub.add_parser("sandbox", help="check or use the program sandbox on this host")
    sandbox_sub = sandbox.add_subparsers(dest="sandbox_command", required=True)
    check = sandbox_sub.add_parser(
        "check", help="try a battery of hostile actions in a real walled worker (policy off)")
    check.add_argument("--json", action="store_true", help="print JSON")
    run = sandbox_sub.add_parser("run", help="run the run(input) of a Python file in a worker")
    run.add_argument("file", help="a Python file defining run(input) or classify(text)")
    run.add_argument("--input", default="null", help="the input, as JSON (default null)")
    run.add_argument("--no-policy", action="store_true",
                     help="turn the compile-time policy off: real builtins, only the OS walls")
    run.add_argument("--timeout-ms", type=int, default=5000)
    run.add_argument("--json", action="store_true", help="print JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "sandbox":
        from loopai.sandbox_cli import sandbox_command

        return sandbox_command(args)
    try:
        settings = Settings.from_env(
            host=args.host, port=args.port, instance_id=args.instance_id,
            redis_url=args.redis_url, database_url=args.database_url, log_level=args.log_level,
            workers=args.workers)
        if settings.workers > 1:
            return _serve_workers(settings, explicit_id=bool(args.instance_id or os.environ.get(
                "LOOPAI_INSTANCE_ID")))
        app = create_app(settings)
    except ConfigurationError as exc:
        print(f"loopai: configuration error: {exc}", file=sys.stderr)
        return 2
    _configure_logs(settings)
    memory.tune_collector()
    _DrainingServer(_uvicorn_config(settings, socket_entry(app)), app).run()
    return 0


def _configure_logs(settings: Settings) -> None:
    # Every configured secret is blanked from log lines, whatever logger writes them.
    logs.configure(settings.log_level, settings.instance_id,
                   secrets=[*(k.key for k in settings.api_keys), settings.token_secret])


def _uvicorn_config(settings: Settings, app: Any, **extra: Any) -> uvicorn.Config:
    heartbeat = settings.heartbeat_ms / 1000
    return uvicorn.Config(
        app,
        # Said, not detected: `socket_entry` is a plain function returning the awaitable,
        # which uvicorn's detection would take for ASGI 2.
        interface="asgi3",
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,  # our JSON handler on the root logger formats uvicorn too
        # The parser's own 400s in the API's error shape (an import string, so that
        # `--workers` processes can load it too).
        http=protocol_path(),
        # uvicorn's sans-I/O WebSocket protocol, holding less per idle connection.
        ws=ws_protocol.protocol_path(),
        ws_max_size=settings.max_frame_bytes,
        # Compression would run once per subscriber per frame, undoing "encode once".
        ws_per_message_deflate=False,
        ws_ping_interval=heartbeat,
        ws_ping_timeout=heartbeat,
        timeout_graceful_shutdown=int(settings.drain_timeout_s) + 1,
        lifespan="on",
        access_log=False,
        **extra,
    )


_worker_app: list[Any] = []
"""In a worker process: the app its factory made, for the drain on SIGTERM."""


def worker_app() -> Any:
    """The app factory each `--workers` process calls: settings from LOOPAI_* (the parent
    exported its flags), one full instance with its own id, behind `socket_entry`."""
    settings = Settings.from_env(workers=1)
    if os.environ.get("LOOPAI_WORKER_ID_SUFFIX"):
        settings.instance_id = f"{settings.instance_id}-{os.getpid()}"
    app = create_app(settings)
    _configure_logs(settings)  # after the app: Litestar sets up logging of its own
    memory.tune_collector()
    _worker_app.append(app)
    return socket_entry(app)


def _serve_workers(settings: Settings, explicit_id: bool) -> int:
    """`--workers N`: one socket bound here, N uvicorn processes accepting on it (the kernel
    spreads connections), each a full instance on the shared Redis backplane."""
    if not settings.redis_url:
        raise ConfigurationError("--workers above 1 needs a Redis backplane (--redis-url or"
                                 " LOOPAI_REDIS_URL): in-memory backplanes would split topics"
                                 " between the processes")
    for name, value in (("HOST", settings.host), ("PORT", settings.port),
                        ("REDIS_URL", settings.redis_url),
                        ("DATABASE_URL", settings.database_url),
                        ("LOG_LEVEL", settings.log_level),
                        ("TOKEN_SECRET", settings.token_secret)):
        os.environ[f"LOOPAI_{name}"] = str(value)
    if explicit_id:
        os.environ["LOOPAI_INSTANCE_ID"] = settings.instance_id
        os.environ["LOOPAI_WORKER_ID_SUFFIX"] = "1"
    else:
        os.environ.pop("LOOPAI_INSTANCE_ID", None)  # each process: <hostname>-<pid>
    _configure_logs(settings)
    config = _uvicorn_config(settings, "loopai.cli:worker_app", factory=True,
                             workers=settings.workers)
    sock = config.bind_socket()
    # uvicorn's supervisor makes a plain Server in each process; ours drains first. Its
    # process class is a module global it looks up each time it starts a process.
    uvicorn_multiprocess.Process = _DrainingProcess  # type: ignore[misc]
    uvicorn_multiprocess.Multiprocess(config, sockets=[sock]).run()
    return 0


class _DrainingProcess(uvicorn_multiprocess.Process):
    """A `--workers` process whose server drains (reconnect, then 1012) on SIGTERM."""

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = _DrainingServer(self.config, None)
        return self._server


if __name__ == "__main__":
    sys.exit(main())
