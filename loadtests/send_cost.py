"""CPU of answering in one TCP send or two: what uvicorn's separate head and body writes
cost against the one send of `api/http_protocol.py: CoalescingTransport`.

A sender on core 0 writes 300-byte "responses" over loopback TCP to a reader on core 1, once
as one 300-byte send, once as two of 150 (uvicorn's head, then the body), alternating, and
reports the sender's CPU per response (`time.thread_time`; a loopback send does the TCP work
and the delivery to the reader's socket in the sender's system call).

    .venv/bin/python -m loadtests.send_cost --responses 100000 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import socket
import time


def _reader(port: int) -> None:
    os.sched_setaffinity(0, {1})
    with socket.create_connection(("127.0.0.1", port)) as sock:
        while sock.recv(65536):
            pass


def main(args: argparse.Namespace) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    pid = os.fork()
    if pid == 0:
        try:
            _reader(server.getsockname()[1])
        finally:
            os._exit(0)
    try:
        os.sched_setaffinity(0, {0})
        conn, _ = server.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cases = {"one send of 300 B": [b"x" * 300], "two sends of 150 B": [b"h" * 150, b"b" * 150]}
        best: dict[str, float] = {}
        for _ in range(args.repeats):
            for name, parts in cases.items():
                started = time.thread_time()
                for _ in range(args.responses):
                    for part in parts:
                        conn.sendall(part)
                cost = (time.thread_time() - started) / args.responses * 1e6
                best[name] = min(cost, best.get(name, cost))
        conn.close()
    finally:
        os.waitpid(pid, 0)
    for name, cost in best.items():
        print(f"{name:20} {cost:5.2f} µs of sender CPU a response (the minimum of {args.repeats})")
    one, two = best.values()
    print(f"the second send costs {two - one:.2f} µs a response")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--responses", type=int, default=100_000)
    p.add_argument("--repeats", type=int, default=3)
    main(p.parse_args())
