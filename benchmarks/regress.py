"""CI regression of detection quality: run the ``ci`` preset and compare AUCs with a baseline.

    python -m benchmarks.regress            # run, compare, exit 1 on a regression
    python -m benchmarks.regress --update   # deliberately refresh the baseline file

The baseline (``results/ci/baseline.json``) is written by ``--update``, never by hand. A class
fails when its last-epoch AUC falls more than the tolerance below the baseline; rising is fine.

Why the tolerance is 0.08. The ``ci`` preset runs with op determinism and a pinned thread
count (``--threads``, default 2, this project's machines), so on one kind of machine a rerun
gives bit-identical AUCs (measured: diff +0.0000 on both digits). Any numerical change, though,
is amplified by one epoch of adversarial training: the same run with 1 thread instead of 2
moved digit 0 from 0.8965 to 0.8371 (-0.059) and digit 2 from 0.8912 to 0.9015 (+0.010)
(``TF_NUM_INTRAOP_THREADS=1 python -m benchmarks.regress --threads 1``). Another CPU or
library build perturbs the arithmetic in the same way, so the tolerance sits above the
largest measured perturbation, 0.059, with margin: 0.08. Real breakage is far larger: a
constant score gives 0.5 (a drop of about 0.4), and the test suite checks that it fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from ganomaly_tf import atomic
from ganomaly_tf.cli import add_debug_flag, at_least, documented_parser, fail, run_cli
from ganomaly_tf.constants import MODEL_NAMES

from . import presets

DEFAULT_BASELINE = Path(__file__).resolve().parents[1] / "results" / "ci" / "baseline.json"
DEFAULT_TOLERANCE = 0.08
REFRESH = "python -m benchmarks.regress --update"


def parser() -> argparse.ArgumentParser:
    p = documented_parser("python -m benchmarks.regress", __doc__)
    p.add_argument("--baseline", type=Path, default=DEFAULT_BASELINE, help="baseline file (default: %(default)s)")
    p.add_argument("--update", action="store_true", help="run and write the baseline instead of comparing")
    p.add_argument(
        "--tolerance", type=_tolerance, help=f"allowed AUC drop (default: the baseline's, else {DEFAULT_TOLERANCE})"
    )
    p.add_argument(
        "--classes", nargs="+", help=f"abnormal MNIST digits (default: {' '.join(map(str, presets.CI_CLASSES))})"
    )
    p.add_argument("--seed", type=at_least(0), default=0)
    p.add_argument("--models", nargs="+", choices=MODEL_NAMES, default=["ganomaly"])
    p.add_argument("--data-dir", help="folder with the dataset files")
    p.add_argument("--out", type=Path, help="keep the runs here (default: a temporary folder)")
    p.add_argument("--threads", type=at_least(1), default=2, help="TensorFlow CPU threads, pinned for reproducibility")
    p.add_argument("-q", "--quiet", action="store_true")
    add_debug_flag(p)
    return p


def _tolerance(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: not a number; give an AUC drop such as 0.08") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{value}: an AUC drop lies between 0 and 1, e.g. 0.08")
    return value


def run_ci(classes, seed: int, models: list[str], out: Path, data_dir: str | None, verbosity: int) -> dict:
    """Run the ci preset; returns {model: {class: auc_last}} (NaN-free: failed runs are missing)."""
    import pandas as pd

    from .execution import run_sweep
    from .grid import build_grid
    from .store import sweep_dir

    overrides = {"data_dir": data_dir, "deterministic": True}
    grid = build_grid("mnist", list(classes), [seed], models, preset="ci", overrides=overrides)
    sweep = sweep_dir(out, "mnist", "paper", "ci")
    run_sweep(grid, sweep, preset="ci", verbosity=verbosity)
    summary = pd.read_csv(sweep / "summary.csv")
    summary = summary[(summary.seed == seed) & summary.abnormal_class.isin([int(c) for c in classes])]
    aucs: dict = {}
    for row in summary.itertuples():
        if row.status == "ok":
            aucs.setdefault(row.model, {})[str(row.abnormal_class)] = float(row.auc_last)
    return aucs


def compare(aucs: dict, baseline: dict, tolerance: float) -> tuple[bool, str]:
    """Check every baseline AUC; returns (passed, a per-class table)."""
    lines = [f"{'model':<10}{'class':>6}{'baseline':>10}{'now':>9}{'diff':>9}  verdict"]
    passed = True
    for model, per_class in baseline["auc_last"].items():
        for k, expected in per_class.items():
            got = aucs.get(model, {}).get(k)
            if got is None:
                verdict, passed = "MISSING (run failed or not run)", False
                lines.append(f"{model:<10}{k:>6}{expected:>10.4f}{'–':>9}{'–':>9}  {verdict}")
                continue
            diff = got - expected
            ok = diff >= -tolerance
            passed &= ok
            verdict = "ok" if ok else f"REGRESSION (drop > {tolerance})"
            lines.append(f"{model:<10}{k:>6}{expected:>10.4f}{got:>9.4f}{diff:>+9.4f}  {verdict}")
    return passed, "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    baseline = None
    if not args.update:
        if not args.baseline.exists():
            fail(p, f"--baseline {args.baseline}: no such file; create it deliberately with: {REFRESH}")
        baseline = json.loads(args.baseline.read_text())
    classes = args.classes or (baseline["classes"] if baseline else [str(c) for c in presets.CI_CLASSES])
    models = args.models if args.update or args.models != ["ganomaly"] else list(baseline["auc_last"])

    def prepare() -> int:  # every setting and the data are checked before the first run
        from ganomaly_tf.data import load_dataset

        from .grid import build_grid

        grid = build_grid("mnist", list(classes), [args.seed], models, preset="ci")
        dataset = load_dataset("mnist", args.data_dir)
        for config in grid:
            config.check_fits(dataset)
        return 0

    run_cli(p, args, prepare)
    from ganomaly_tf.reproducibility import set_threads

    set_threads(args.threads, strict=False)  # under pytest the pools already run: keep them
    verbosity = 0 if args.quiet else 1
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        aucs = run_ci(classes, args.seed, models, out, args.data_dir, verbosity)
    if args.update:
        from ganomaly_tf.reproducibility import environment

        record = {
            "about": f"Expected AUCs of the ci preset, written by `{REFRESH}`; do not edit by hand.",
            "preset": "ci",
            "preset_settings": presets.PRESETS["ci"],
            "dataset": "mnist",
            "protocol": "paper",
            "classes": [str(c) for c in classes],
            "seed": args.seed,
            "tolerance": args.tolerance if args.tolerance is not None else DEFAULT_TOLERANCE,
            "threads": args.threads,
            "auc_last": aucs,
            "environment": {k: v for k, v in environment().items() if k != "git_commit"},
        }
        args.baseline.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_json(args.baseline, record)
        print(f"wrote {args.baseline}: {json.dumps(aucs)}")
        return 0
    tolerance = args.tolerance if args.tolerance is not None else baseline.get("tolerance", DEFAULT_TOLERANCE)
    wanted = {str(c) for c in classes}
    checked = {m: {k: v for k, v in per.items() if k in wanted} for m, per in baseline["auc_last"].items()}
    passed, table = compare(aucs, {**baseline, "auc_last": checked}, tolerance)
    print(table)
    if passed:
        print(f"AUC regression check passed (tolerance {tolerance}).")
        return 0
    print(
        f"AUC regression check FAILED (tolerance {tolerance}). If the drop is intended, refresh the baseline "
        f"deliberately with `{REFRESH}` and commit it with the reason.",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    from ganomaly_tf.cli import quiet_native_logs

    quiet_native_logs()
    sys.exit(main())
