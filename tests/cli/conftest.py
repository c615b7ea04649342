"""Fixtures of the CLI's tests: log files written under tmp_path."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from .logs import encode


@pytest.fixture
def write_log(tmp_path: Path) -> Callable[..., Path]:
    """Return a function writing records to a file under tmp_path."""

    def write(
        records: Iterable[dict[str, Any] | bytes], name: str = "app.log"
    ) -> Path:
        path = tmp_path / name
        path.write_bytes(encode(records))
        return path

    return write
