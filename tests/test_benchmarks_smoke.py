"""The benchmark harness runs a comparison and writes its results files.

Only the harness is checked here, never a timing: the figures of a test
run on a busy machine mean nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the log-call comparison in quick mode into a scratch folder."""
    folder = tmp_path_factory.mktemp("bench")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--only",
            "lines",
            "--write",
            "--out",
            str(folder),
            "--var",
            str(folder / "var"),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    data: dict[str, Any] = json.loads((folder / "results.json").read_text())
    data["markdown"] = (folder / "RESULTS.md").read_text()
    return data


def test_every_log_call_contender_is_measured(results: dict[str, Any]) -> None:
    """Each setup's emitted and filtered call has per-round CPU samples."""
    (lines,) = results["families"]
    for setup in ("stratalog", "structlog", "stdlib", "loguru", "otel"):
        for kind in ("emitted", "filtered"):
            figure = lines["figures"][f"{kind}.{setup}"]
            assert figure["rounds"] == len(figure["samples"]) > 0
    assert "deduped.stratalog" in lines["figures"]


def test_every_emitted_call_reached_its_file(results: dict[str, Any]) -> None:
    """The files hold one record per call made: nothing was dropped."""
    (lines,) = results["families"]
    for key, figure in lines["figures"].items():
        if key.startswith("emitted."):
            assert figure["written"] == figure["calls"], key


def test_targets_of_other_families_are_not_available(
    results: dict[str, Any],
) -> None:
    """Targets of families that did not run say so instead of failing."""
    verdicts = {v["key"]: v for v in results["targets"]}
    assert verdicts["line-vs-structlog"]["status"] in ("met", "missed")
    assert verdicts["writer-rate"]["status"] == "not available"


def test_markdown_names_the_machine_and_every_ratio(
    results: dict[str, Any],
) -> None:
    """RESULTS.md carries the machine, the versions and the ratios."""
    markdown = results["markdown"]
    assert "| Python |" in markdown
    assert "| structlog |" in markdown
    assert "`emitted.stratalog` / `emitted.structlog`" in markdown
