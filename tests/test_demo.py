"""The reference service's demo runs end to end on real servers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_shortened_demo_runs_clean(tmp_path: Path) -> None:
    """A short demo opens and closes the breaker and reports every request.

    The demo itself checks that each request sent has one summary line and
    that the breaker opened and closed; here its exit code and its log are
    checked from the outside.
    """
    result = subprocess.run(
        [
            sys.executable, "-m", "examples.troubleshooting_service.demo",
            "--duration", "8", "--clients", "4", "--var", str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr[-3000:]
    assert "Circuit breakers" in result.stdout
    lines = [
        json.loads(raw)
        for raw in (tmp_path / "demo.log").read_text().splitlines()
    ]
    summaries = [x for x in lines if x["event"] == "request.completed"]
    assert {x["route"] for x in summaries} >= {
        "/cases",
        "/cases/{case_id}",
        "/cases/{case_id}/troubleshoot",
    }
    assert all(x["correlation_id"] for x in summaries)
    layers = {x.get("layer") for x in lines}
    assert {"api", "service", "core", "infrastructure"} <= layers
    assert sum(x["counts"]["suppressed"] for x in summaries) > 0
