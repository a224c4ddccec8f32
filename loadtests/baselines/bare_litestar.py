"""Baseline for the REST rows: bare Litestar, nothing but two routes, served by uvicorn as
the hub is (uvloop, httptools, no access log). `GET /health` answers a small JSON object;
`POST /echo` decodes a JSON body and returns it (validation and encoding, no work).

    python -m loadtests.baselines.bare_litestar PORT
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn
from litestar import Litestar, get, post


@get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@post("/echo", status_code=200)
async def echo(data: dict[str, Any]) -> dict[str, Any]:
    return data


app = Litestar([health, echo])


def main() -> None:
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools",
                log_level="warning", access_log=False, backlog=4096)


if __name__ == "__main__":
    main()
