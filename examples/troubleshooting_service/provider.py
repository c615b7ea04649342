"""A fake LLM provider: a real HTTP server with adjustable latency and faults.

``POST /v1/complete`` answers like a completion API. ``POST /admin/mode``
changes how it misbehaves while it runs: mean latency, the share of slow
answers, and the share of 500s, 429s (with ``Retry-After``) and hangs.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import asdict, dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


@dataclass
class Mode:
    """How the provider behaves now."""

    latency_s: float = 0.02
    slow_rate: float = 0.05
    slow_latency_s: float = 1.2
    error_rate: float = 0.05
    throttle_rate: float = 0.02
    hang_rate: float = 0.0


mode = Mode()
_random = random.Random(7)

_LABELS = ("network", "database", "deployment", "configuration", "capacity")


async def complete(request: Request) -> JSONResponse:
    """Answer one completion, or fail the way the mode says."""
    body = await request.json()
    roll = _random.random()
    if roll < mode.hang_rate:
        await asyncio.sleep(3600)
    roll = _random.random()
    if roll < mode.error_rate:
        return JSONResponse({"error": "upstream overloaded"}, status_code=500)
    if roll < mode.error_rate + mode.throttle_rate:
        return JSONResponse(
            {"error": "rate limited"},
            status_code=429,
            headers={"Retry-After": "0"},
        )
    slow = _random.random() < mode.slow_rate
    await asyncio.sleep(mode.slow_latency_s if slow else mode.latency_s)
    prompt = str(body.get("prompt", ""))
    label = _LABELS[sum(map(ord, prompt)) % len(_LABELS)]
    return JSONResponse(
        {
            "label": label,
            "confidence": round(0.6 + _random.random() * 0.4, 3),
            "text": f"Most likely a {label} problem.",
            "usage": {"prompt_tokens": len(prompt.split())},
        }
    )


async def set_mode(request: Request) -> JSONResponse:
    """Change the fault mode; unknown keys are ignored."""
    changes = await request.json()
    for key, value in changes.items():
        if hasattr(mode, key):
            setattr(mode, key, float(value))
    return JSONResponse(asdict(mode))


app = Starlette(
    routes=[
        Route("/v1/complete", complete, methods=["POST"]),
        Route("/admin/mode", set_mode, methods=["POST"]),
    ]
)
