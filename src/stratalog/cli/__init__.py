"""The ``stratalog`` command line: report, trace and tail NDJSON logs.

Requires the ``cli`` extra (click and rich).
"""

from __future__ import annotations

import click

from stratalog.cli._report import report
from stratalog.cli._tail import tail
from stratalog.cli._trace import trace

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="stratalog", prog_name="stratalog")
def main() -> None:
    """Read stratalog's NDJSON logs: summaries, one request, live tail."""


main.add_command(report)
main.add_command(tail)
main.add_command(trace)
