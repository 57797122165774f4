"""Speed of this suite against another program, measured side by side: alternating, in one run.

    python -m benchmarks.side_by_side --rounds 3 \\
        --reference "OMP_NUM_THREADS=2 ANCHOR_CFG=1:64 ANCHOR_N=60 OUT=/tmp ../official/venv/bin/python \\
                     ../official/bench_official.py" --reference-json /tmp/anchor_gpu.json --reference-key nc1_bs64

These machines drift by 2-3x within an hour, so an absolute figure from another hour is no
baseline: each round runs the reference command, then ``benchmarks.throughput`` (or the other
way round, alternating which goes first), and the result is the median over rounds of the
per-round ratios ours / reference. The reference is any command that writes a JSON object
holding ``train_img_s`` and ``score_img_s`` (under ``--reference-key`` if nested); the suite
ships no reference program (the official code stays outside the repository; see docs/speed.md).
``--env`` runs our side with extra environment variables (e.g. ``TF_NUM_INTEROP_THREADS=1``),
and ``--variant`` adds a second configuration of ours to every round, so a setting is measured
against the reference and against our default in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from ganomaly_tf.cli import documented_parser


def parser() -> argparse.ArgumentParser:
    p = documented_parser("python -m benchmarks.side_by_side", __doc__)
    p.add_argument("--reference", required=True, help="shell command of the other program (writes JSON)")
    p.add_argument("--reference-json", required=True, help="the JSON file that command writes")
    p.add_argument("--reference-key", help="key of the figures inside that JSON (e.g. nc1_bs64)")
    p.add_argument("--rounds", type=int, default=3, help="alternations (default 3)")
    p.add_argument("--model", default="ganomaly", help="our model to time (default ganomaly)")
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument(
        "--throughput-args", default="--repeats 3", help="extra options of benchmarks.throughput (default: --repeats 3)"
    )
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:SETTING[,SETTING]",
        help="another configuration of ours, timed in every round (repeatable); a SETTING is an environment "
        "variable (VAR=VALUE) or an option of benchmarks.throughput (--jit-compile)",
    )
    p.add_argument("--output", help="write every round's figures and the median ratios here (JSON)")
    return p


def parse_variant(text: str) -> tuple[str, list[str]]:
    name, _, settings = text.partition(":")
    settings_list = [s for s in settings.split(",") if s]
    if not name or not settings_list or not all("=" in s or s.startswith("--") for s in settings_list):
        raise ValueError(
            f"--variant {text!r}: expected NAME:SETTING[,SETTING], "
            "e.g. interop1:TF_NUM_INTEROP_THREADS=1 or xla:--jit-compile"
        )
    return name, settings_list


def run_reference(command: str, json_path: str, key: str | None) -> dict[str, float]:
    Path(json_path).unlink(missing_ok=True)
    subprocess.run(command, shell=True, check=True, stdout=subprocess.DEVNULL)
    data = json.loads(Path(json_path).read_text())
    data = data[key] if key else data
    return {"train": float(data["train_img_s"]), "score": float(data["score_img_s"])}


def run_ours(args: argparse.Namespace, settings: list[str]) -> dict[str, float]:
    env = dict(s.split("=", 1) for s in settings if not s.startswith("--"))
    options = [s for s in settings if s.startswith("--")]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ours.json"
        command = [
            sys.executable,
            "-m",
            "benchmarks.throughput",
            "--models",
            args.model,
            "--channels",
            str(args.channels),
            "--batch-size",
            str(args.batch_size),
            "--output",
            str(out),
            *shlex.split(args.throughput_args),
            *options,
        ]
        subprocess.run(command, check=True, env={**os.environ, **env}, stdout=subprocess.DEVNULL)
        (record,) = json.loads(out.read_text())
    return {"train": record["train_images_per_s"], "score": record["score_images_per_s"]}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        variants = [("ours", []), *(parse_variant(v) for v in args.variant)]
    except ValueError as e:
        parser().error(str(e))
    rounds = []
    for i in range(args.rounds):
        figures: dict[str, dict[str, float]] = {}
        # Alternate which program goes first, so a drift within a round favours neither.
        order = ["reference", *[name for name, _ in variants]]
        if i % 2:
            order.reverse()
        for name in order:
            if name == "reference":
                figures[name] = run_reference(args.reference, args.reference_json, args.reference_key)
            else:
                figures[name] = run_ours(args, dict(variants)[name])
        ref = figures["reference"]
        ratios = {name: {k: figures[name][k] / ref[k] for k in ("train", "score")} for name, _ in variants}
        rounds.append({"order": order, "images_per_s": figures, "ratio": ratios})
        line = "  ".join(f"{n} {r['train']:.2f}/{r['score']:.2f}" for n, r in ratios.items())
        print(f"round {i + 1}: ratio to reference, train/score: {line}", flush=True)
    medians = {
        name: {k: statistics.median(r["ratio"][name][k] for r in rounds) for k in ("train", "score")}
        for name, _ in variants
    }
    for name, m in medians.items():
        print(f"median over {args.rounds} rounds, {name} / reference: train {m['train']:.2f}x, score {m['score']:.2f}x")
    if args.output:
        from ganomaly_tf import atomic

        atomic.write_json(args.output, {"rounds": rounds, "median_ratio": medians, "variants": dict(variants)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
