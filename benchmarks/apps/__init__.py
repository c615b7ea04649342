"""The FastAPI applications the HTTP comparison serves under uvicorn.

Each module exposes ``app``: the same hello-world route, bare or with one
way of logging one line per request. Log files go to ``$BENCH_LOG_DIR``
(default ``var/bench``).
"""
