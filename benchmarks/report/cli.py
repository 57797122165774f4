"""The command line: ``python -m benchmarks.report <sweep folder or a folder above sweeps> [--readme RESULTS_DIR]``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from benchmarks.report.build import build_report
from benchmarks.report.readme import write_results_readme
from benchmarks.report.stats import METRICS
from benchmarks.report.sweeps import ReportError, sweeps_to_report
from ganomaly_tf.cli import ArgumentParser, add_debug_flag, debugging, fail


def parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m benchmarks.report",
        description=(
            "Tables (Markdown, LaTeX, CSV), a comparison with the paper's values and plots (PNG, PDF) of one sweep "
            "folder <out>/<dataset>/<protocol>/<preset>/, or of every sweep folder under a folder (e.g. results/); "
            "or, with --readme, the README of a results folder."
        ),
        epilog=(
            "Examples:\n"
            "  python -m benchmarks.report results/mnist/paper/quick\n"
            "  python -m benchmarks.report results/            # every sweep under results/\n"
            "  python -m benchmarks.report results/mnist/paper/quick --out /tmp/report --metric best\n"
            "  python -m benchmarks.report --readme results/"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "folder",
        nargs="?",
        type=Path,
        help="a sweep folder (holding summary.csv or runs/), or a folder above sweep folders",
    )
    parser.add_argument(
        "--out", type=Path, metavar="DIR", help="write the report here instead of into the sweep folder"
    )
    parser.add_argument(
        "--metric",
        choices=tuple(METRICS),
        default="last",
        help="AUC printed and plotted by class: 'last' (last epoch, the default and the honest "
        "figure) or 'best' (best-on-test, paper-style, optimistic). Both tables are written.",
    )
    parser.add_argument("--no-plots", dest="plots", action="store_false", help="write the tables only")
    parser.add_argument(
        "--readme",
        type=Path,
        metavar="RESULTS_DIR",
        help="write RESULTS_DIR/README.md from every sweep folder under it that has a summary.csv",
    )
    add_debug_flag(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    p = parser()
    args = p.parse_args(argv)
    if args.folder is None and args.readme is None:
        fail(p, "nothing to do: give a sweep folder (or a folder above sweeps), --readme RESULTS_DIR, or both")

    def body() -> int:
        if args.folder is not None:
            sweeps = sweeps_to_report(args.folder)
            for folder in sweeps:
                out = None if args.out is None else args.out / folder.relative_to(args.folder)
                written = build_report(folder, out, args.metric, args.plots)
                if len(sweeps) == 1:
                    print(written[f"{METRICS[args.metric]}.md"].read_text(encoding="utf-8"))
                    print("Wrote:", *(f"  {path}" for path in written.values()), sep="\n")
                else:
                    print(f"Wrote {len(written)} files for {folder}" + (f" into {out}" if out else ""))
        if args.readme is not None:
            print(f"Wrote {write_results_readme(args.readme)}")
        return 0

    try:
        return body()
    except ReportError as err:
        if debugging(args):
            raise
        fail(p, str(err))
    return 2
