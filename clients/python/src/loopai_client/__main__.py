"""`python -m loopai_client tail <topic> …`: print a topic's events live, one JSON line each.

Reconnects and resumes by itself; Ctrl-C stops it. Example, a task's executions:

    python -m loopai_client tail tasks.<task_id>.executions --url ws://127.0.0.1:8000/ws
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys

import msgspec

from loopai_client.errors import LoopaiError
from loopai_client.hub import HubClient
from loopai_client.models import Gap


async def tail(url: str, token: str | None, topics: list[str], count: int | None) -> None:
    async with HubClient(url, token=token) as hub:
        subscription = await hub.subscribe(*topics)
        seen = 0
        async for item in subscription:
            if isinstance(item, Gap):
                line: dict[str, object] = {"gap": item.topic, "since": item.since,
                                           "oldest": item.oldest}
            else:
                line = {"topic": item.topic, "cursor": item.cursor, "type": item.type,
                        "ts": item.ts, "data": item.data}
            sys.stdout.write(msgspec.json.encode(line).decode() + "\n")
            sys.stdout.flush()
            seen += 1
            if count is not None and seen >= count:
                return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loopai_client")
    commands = parser.add_subparsers(dest="command", required=True)
    tail_cmd = commands.add_parser("tail", help="print a topic's events as they happen")
    tail_cmd.add_argument("topics", nargs="+")
    tail_cmd.add_argument("--url", default=os.environ.get("LOOPAI_HUB_URL",
                                                          "ws://127.0.0.1:8000/ws"))
    tail_cmd.add_argument("--token", default=os.environ.get("LOOPAI_TOKEN"),
                          help="API key or token (default: $LOOPAI_TOKEN)")
    tail_cmd.add_argument("--count", type=int, help="stop after this many events")
    tail_cmd.add_argument("-v", "--verbose", action="store_true", help="log connection changes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        stream=sys.stderr, format="%(levelname)s %(message)s")
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(tail(args.url, args.token, args.topics, args.count))
    except LoopaiError as exc:
        print(f"loopai_client: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
