"""``python -m benchmarks``: run every comparison, write the results.

Options: ``--quick`` (short runs, a 64 MiB log; for development),
``--check`` (exit 1 when a target is missed), ``--only a,b`` (run some
families; the results files are then left alone unless ``--write``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ._results import write_results
from ._subject import Options
from ._suite import FAMILIES, run_in_process, run_suite
from ._targets import evaluate, print_verdicts

HERE = Path(__file__).resolve().parent


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--only", default="")
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--var", type=Path, default=Path("var/bench"))
    parser.add_argument("--worker", choices=sorted(FAMILIES))
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    """Run the benchmarks; return the exit status."""
    args = _parse(argv)
    args.var.mkdir(parents=True, exist_ok=True)
    options = Options(quick=args.quick, var=args.var.resolve())
    if args.worker:
        document = run_in_process(args.worker, options)
        sys.stdout.write(json.dumps(document))
        return 0
    names = [n for n in args.only.split(",") if n] or list(FAMILIES)
    unknown = sorted(set(names) - set(FAMILIES))
    if unknown:
        print(f"unknown families: {', '.join(unknown)}", file=sys.stderr)
        return 2
    documents = run_suite(names, options)
    verdicts = evaluate(documents)
    if args.write or not args.only:
        write_results(args.out, documents, verdicts, options, argv)
    missed = print_verdicts(verdicts)
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
