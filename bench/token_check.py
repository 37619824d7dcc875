"""The bearer-token check's cost per request: the same route with and without `requires(...)`,
measured in one run, in-process (target: under 0.2 ms added at p50 and p99).

    .venv/bin/python -m bench.token_check [--requests N] [--json]

1. `TokenVerifier.verify` alone on one ES256 access token (RFC 9068, typ at+jwt), keys already
   fetched: the signature, issuer, expiry and audience checks; then the same token again (the
   verifier keeps a verified token until it expires). A client sends one token for its 5
   minutes, so step 2's protected route sees mostly the second case.
2. A FastAPI app (the service kit's `service_app`, so the body limit and problem handlers are in
   front as deployed) with two routes of the same handler: one declared `public`, one
   `requires("bench:read")`. N requests to each through httpx's ASGI transport in one event
   loop (no server, no TestClient portal per request), interleaved
   (public, then protected, per round), so that both see the same machine. Added latency is the
   difference of their percentiles.
No broker: nothing here crosses it.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import httpx
from fastapi import APIRouter
from sqlalchemy import Column, Integer, MetaData, Table

from bench.harness import Deadline, Run, cli, latency_summary_ms, require_positive, run_benchmark
from bench.harness import Table as Report
from shared.api import service_app
from shared.bearer import public, requires
from tests.support import TOKENS

router = APIRouter()


@router.get("/open", dependencies=[public("the baseline: the same handler without a token")])
def open_route() -> dict[str, bool]:
    return {"ok": True}


@router.get("/protected", dependencies=[requires("bench:read")])
def protected_route() -> dict[str, bool]:
    return {"ok": True}


def measure(run: Run) -> dict[str, Any]:
    args = run.args
    verifier = TOKENS.verifier("bench")
    token = TOKENS.token("bench-client", "bench:read", "bench", lifetime_s=3600)
    deadline = Deadline(args.time_limit or 600, "token check")
    verify, cached = [], []
    for _ in range(args.requests):
        deadline.check()
        fresh = TOKENS.verifier("bench")  # a verifier of its own: nothing cached
        fresh.verify(TOKENS.token("warm", "bench:read", "bench"))  # its keys fetched (static)
        started = time.perf_counter()
        fresh.verify(token)
        verify.append(time.perf_counter() - started)
        started = time.perf_counter()
        fresh.verify(token)
        cached.append(time.perf_counter() - started)
    outbox = Table("outbox", MetaData(), Column("seq", Integer, primary_key=True))
    app = service_app(name="bench", description="", deps=None, routers=[router], outbox=outbox,
                      max_body_bytes=1_048_576, verifier=verifier)
    headers = {"Authorization": f"Bearer {token}"}

    async def requests() -> tuple[list[float], list[float]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for _ in range(200):  # warm up both
                await client.get("/open", headers=headers)
                await client.get("/protected", headers=headers)
            plain, checked = [], []
            for _ in range(args.requests):
                deadline.check()
                started = time.perf_counter()
                assert (await client.get("/open", headers=headers)).status_code == 200
                plain.append(time.perf_counter() - started)
                started = time.perf_counter()
                assert (await client.get("/protected", headers=headers)).status_code == 200
                checked.append(time.perf_counter() - started)
        return plain, checked

    plain, checked = asyncio.run(requests())
    without, with_check = latency_summary_ms(plain), latency_summary_ms(checked)
    return {"verify": latency_summary_ms(verify), "cached": latency_summary_ms(cached),
            "without": without, "with": with_check,
            "added_p50_ms": round(with_check["p50_ms"] - without["p50_ms"], 3),
            "added_p99_ms": round(with_check["p99_ms"] - without["p99_ms"], 3)}


def render(report: dict[str, Any]) -> str:
    table = Report("Bearer-token check per request (in-process)", report.get("machine"))
    table.section(f"{report['verify']['count']} requests each")
    table.latency("TokenVerifier.verify, a token not seen yet (ES256)", report["verify"], 3)
    table.latency("TokenVerifier.verify, the same token again (cached)", report["cached"], 3)
    table.latency("GET /open (public: no token checked)", report["without"], 3)
    table.latency("GET /protected (requires bench:read)", report["with"], 3)
    table.figure("added by the check", f"p50 {report['added_p50_ms']:.3f} ms",
                 f"p99 {report['added_p99_ms']:.3f} ms (target under 0.2 ms)")
    return table.render(report)


def main(argv: list[str] | None = None) -> int:
    parser = cli("bench.token_check", __doc__, broker=False)
    parser.add_argument("--requests", type=int, default=5000, help="N requests to each route (default 5000)")
    args = parser.parse_args(argv)
    require_positive(parser, args, "requests")
    return run_benchmark(args, measure, render, broker=False)


if __name__ == "__main__":
    sys.exit(main())
