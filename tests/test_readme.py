"""The README's quickstart runs as written, under a real server."""

from __future__ import annotations

import re
import types
from pathlib import Path

import httpx

from _servers import UvicornThread
from stratalog.testing import MemorySink

README = Path(__file__).resolve().parent.parent / "README.md"


def _quickstart() -> str:
    text = README.read_text()
    marker = text.index("<!-- quickstart:")
    block = re.search(r"```python\n(.*?)```", text[marker:], re.S)
    assert block is not None
    return block.group(1)


def test_quickstart_is_short() -> None:
    """The quickstart stays about fifteen lines of code."""
    code = [x for x in _quickstart().splitlines() if x.strip()]
    assert len(code) <= 18


def test_quickstart_serves_and_summarises(sink: MemorySink) -> None:
    """Running the quickstart gives one summary with the bound attribute."""
    module = types.ModuleType("quickstart")
    code = _quickstart().replace(
        "stratalog.configure()", "stratalog.configure(sink=SINK)"
    )
    module.__dict__["SINK"] = sink
    exec(compile(code, str(README), "exec"), module.__dict__)  # noqa: S102

    with UvicornThread(module.app) as server:
        response = httpx.get(f"{server.url}/cases/42")

    assert response.json() == {"case": "42", "label": "network"}
    records = sink.records()
    (summary,) = [r for r in records if r["event"] == "request.completed"]
    assert summary["route"] == "/cases/{case_id}"
    assert summary["status"] == 200
    assert summary["attributes"] == {"case_id": "42"}
    assert summary["correlation_id"] == response.headers["x-request-id"]
    (done,) = [r for r in records if r["event"] == "operation.completed"]
    assert done["label"] == "network"
    assert done["correlation_id"] == summary["correlation_id"]
