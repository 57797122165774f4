"""``results/README.md``: every sweep under a results folder, how it was made, its tables and its plots."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import paper, presets
from benchmarks.report.auc import auc_markdown, measurement_caveats
from benchmarks.report.comparison import comparison, comparison_markdown
from benchmarks.report.epochs import reproduction_statement, selection_markdown
from benchmarks.report.ranking import models_markdown
from benchmarks.report.stats import aggregate
from benchmarks.report.sweeps import ReportError, Sweep, display_name, find_sweeps, load_sweep
from benchmarks.report.tables import markdown_table, plural
from ganomaly_tf import atomic
from ganomaly_tf.constants import DEFAULT_SEEDS

README_COMMAND = "python -m benchmarks.report --readme results/"
CONFIG_HIDDEN = ("data_dir",)  # where the data lives: not part of a run's identity


def variant_flags(sweep: Sweep) -> list[str]:
    """The options behind a variant folder's name (``quick+val0.1`` -> ``--val-fraction 0.1``), from its records.

    ``threads`` has no option of its own: it follows from ``--jobs`` and the machine's core count.
    """
    _, *tags = sweep.preset.split("+")
    record = next((r for r in sweep.records if r.get("config")), None)
    if not tags or record is None:
        return []
    values = {**record["config"], "backend": (record.get("environment") or {}).get("backend")}
    flags = []
    for key in presets.VARIANT_TAGS:
        value = values.get(key)
        if value is None or key == "threads" or presets.variant_tag(key, value) not in tags:
            continue
        if key == "deterministic":
            flags += [] if value else ["--no-determinism"]
        elif key == "skip_unreadable":
            flags += ["--skip-unreadable"]
        else:
            flags += [f"--{key.replace('_', '-')}", str(value)]
    return flags


def reconstruct_command(sweep: Sweep) -> str:
    """The ``benchmarks.run`` command line that produces this sweep."""
    classes = sorted(set(sweep.runs["abnormal_class"]))
    # Only MNIST's and CIFAR-10's classes are known without reading the data: elsewhere, list them.
    known = paper.canonical_dataset(sweep.dataset) in paper.CLASS_NAMES
    which = "--all-classes" if known and classes == sweep.classes else "--classes " + " ".join(map(str, classes))
    seeds = sorted(set(sweep.runs["seed"]))
    preset = sweep.preset.split("+", 1)[0]
    command = " ".join(
        [
            f"python -m benchmarks.run --dataset {sweep.dataset} {which} --preset {preset}",
            *variant_flags(sweep),
            f"--protocol {sweep.protocol} --models {' '.join(sweep.models)}",
        ]
    )
    return command if seeds == list(DEFAULT_SEEDS) else f"{command} --seeds {' '.join(map(str, seeds))}"


def _flatten(record: dict, prefix: str = "") -> dict[str, str]:
    flat = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return flat


def _tally(values: Iterable[str]) -> str:
    counts = pd.Series(list(values), dtype=object).value_counts()
    if len(counts) == 1:
        return f"`{counts.index[0]}`"
    return ", ".join(f"`{v}` ({counts[v]} runs)" for v in sorted(counts.index))


def _field_rows(flat: Sequence[dict[str, str]], keep: Callable[[str], bool] = lambda key: True) -> list[list[str]]:
    """(field, value(s)) over flattened records, fields in name order; differing values are listed with counts."""
    keys = sorted({k for f in flat for k in f if keep(k)})
    return [[k, _tally(f[k] for f in flat if k in f)] for k in keys]


def environment_rows(records: Sequence[dict]) -> list[list[str]]:
    """(field, value(s)) of the runs' ``environment`` records."""
    return _field_rows([_flatten(r.get("environment") or {}) for r in records])


def shared_config(records: Sequence[dict]) -> dict[str, str]:
    """Config fields (flattened) with the same value in every record; seed, class and the like drop out."""
    flat = [_flatten({k: v for k, v in (r.get("config") or {}).items() if k not in CONFIG_HIDDEN}) for r in records]
    if not flat:
        return {}
    keys = sorted(set.intersection(*(set(f) for f in flat)))
    return {k: flat[0][k] for k in keys if all(f[k] == flat[0][k] for f in flat)}


def config_sections(records: Sequence[dict], models: Sequence[str]) -> list[str]:
    """Collapsible Markdown tables: the config all runs share, then what each model's runs add to it."""
    common = shared_config(records)
    sections = [("all runs", common)]
    for model in models:
        own = shared_config([r for r in records if r.get("model") == model])
        sections.append((f"{display_name(model)} runs", {k: v for k, v in own.items() if common.get(k) != v}))
    lines = []
    for who, fields in sections:
        if fields:
            rows = [[k, f"`{v}`"] for k, v in fields.items()]
            lines += [f"<details><summary>Configuration shared by {who}</summary>", ""]
            lines += [markdown_table(["field", "value"], rows, numbers=False), "", "</details>", ""]
    return lines


def _mentions_batchnorm(key: str) -> bool:
    words = re.split(r"[^a-z0-9]+", key.lower())
    return "bn" in words or any(w.startswith(("batchnorm", "batch_norm")) for w in words) or "batch_norm" in key.lower()


def _batchnorm_fields(records: Sequence[dict]) -> list[list[str]]:
    return _field_rows([_flatten(r.get("config") or {}) for r in records], _mentions_batchnorm)


def class_spans(classes: Sequence[int]) -> str:
    """Class indices with runs of consecutive ones joined: [0, 2, 3, 4] → "0, 2–4"."""
    spans: list[list[int]] = []
    for k in sorted(classes):
        if spans and k == spans[-1][-1] + 1:
            spans[-1].append(k)
        else:
            spans.append([k])
    return ", ".join(str(s[0]) if len(s) == 1 else f"{s[0]}–{s[-1]}" for s in spans)


def missing_runs(sweep: Sweep) -> list[str]:
    """Per model and seed of the sweep's grid (its models × its expected classes × its seeds), the classes
    without a run, e.g. "AE seed 1: 3–9"; empty when the grid is complete."""
    runs = sweep.runs
    present = set(zip(runs["model"], runs["abnormal_class"].astype(int), runs["seed"].astype(int), strict=True))
    missing = []
    for model in sweep.models:
        for seed in sorted({int(s) for s in runs["seed"]}):
            classes = [k for k in sweep.classes if (model, k, seed) not in present]
            if classes:
                missing.append(f"{display_name(model)} seed {seed}: {class_spans(classes)}")
    return missing


def _run_counts(sweep: Sweep) -> str:
    status = sweep.runs["status"].value_counts()
    seed_list = sorted({int(s) for s in sweep.runs["seed"]})
    seeds = ", ".join(map(str, seed_list))
    epochs = sorted({int(e) for e in sweep.runs["epochs"].dropna()})
    seconds = sweep.runs["train_seconds"].sum(min_count=1)
    counts = ", ".join(f"{status[s]} {s}" for s in sorted(status.index, key=lambda s: (s != "ok", s)))
    missing = missing_runs(sweep)
    if missing:
        grid = len(sweep.models) * len(sweep.classes) * len(seed_list)
        text = (
            f"{len(sweep.runs)} of the {grid} runs of its grid ({plural(len(sweep.models), 'model')} × "
            f"{plural(len(sweep.classes), 'class')} × seeds {seeds}) so far ({counts}); "
            f"not run yet: {'; '.join(missing)}"
        )
    else:
        text = f"{len(sweep.runs)} runs ({counts}); seeds {seeds}"
    text += f"; epochs {', '.join(map(str, epochs))}" if epochs else ""
    return text + (f"; training time {_duration(seconds)} in all" if np.isfinite(seconds) else "") + "."


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def _plot_links(sweep: Sweep, results_root: Path) -> list[str]:
    link_base = Path(os.path.relpath(sweep.folder, results_root)).as_posix()
    labels = {
        "auc_by_class": "AUC by class",
        "auc_by_epoch": "AUC by epoch",
        "critical_difference": "critical-difference diagram",
        "roc": "ROC",
        "scores": "score distributions",
        "training": "training",
    }
    lines = []
    for png in sorted(sweep.folder.glob("*.png")):
        kind = next((k for k in sorted(labels, key=len, reverse=True) if png.stem.startswith(f"{k}_")), None)
        model = png.stem[len(kind) + 1 :] if kind else ""
        label = labels.get(png.stem) or (f"{labels[kind]}, {display_name(model)}" if kind else png.stem)
        pdf = png.with_suffix(".pdf")
        extra = f" ([PDF]({link_base}/{pdf.name}))" if pdf.is_file() else ""
        lines.append(f"- [{label}]({link_base}/{png.name}){extra}")
    if (sweep.folder / "auc_by_class.png").is_file():
        lines += ["", f"![AUC by class, {sweep.title}]({link_base}/auc_by_class.png)"]
    if (sweep.folder / "auc_by_epoch_ganomaly.png").is_file():
        lines += ["", f"![GANomaly's AUC by epoch, {sweep.title}]({link_base}/auc_by_epoch_ganomaly.png)"]
    return lines


def sweep_section(sweep: Sweep, results_root: Path) -> str:
    """The README section of one sweep: how it was made, its tables and its plots."""
    records = sweep.records
    last, best = aggregate(sweep, "auc_last"), aggregate(sweep, "auc_best")
    produced = "Produced by (the runs so far; the ones not run yet are listed below):" if missing_runs(sweep) else ""
    lines = [f"## {sweep.title}", "", produced or "Produced by:", "", "```bash", reconstruct_command(sweep), "```", ""]
    lines += [f"Preset `{sweep.preset}`, protocol `{sweep.protocol}`; {_run_counts(sweep)}", ""]
    statement = reproduction_statement(sweep)
    lines += [f"**In short.** {statement}", ""] if statement else []
    lines += [auc_markdown(sweep, last, "auc_last", "###"), auc_markdown(sweep, best, "auc_best", "###")]
    lines += [auc_markdown(sweep, aggregate(sweep, "auc_pr_last"), "auc_pr_last", "###")]
    lines += [selection_markdown(sweep, "###")]
    lines += [models_markdown(sweep.runs, "###", caveats=measurement_caveats(records))]
    if paper.has_reference(sweep.dataset):
        lines += [comparison_markdown(sweep, comparison(sweep, last, best), "###")]
    env = environment_rows(records)
    if env:
        lines += [
            "Environment (from each run's `result.json`):",
            "",
            markdown_table(["field", "value"], env, numbers=False),
            "",
        ]
    bn = _batchnorm_fields(records)
    if bn:
        lines += ["BatchNorm at test time:", "", markdown_table(["config field", "value"], bn, numbers=False), ""]
    lines += config_sections(records, sweep.models)
    links = _plot_links(sweep, results_root)
    if links:
        lines += ["### Plots", "", *links, ""]
    return "\n".join(lines)


EXPLANATION = f"""## How to read these numbers

**Last-epoch versus best-on-test.** Every run is evaluated on its test set after each epoch, unless its table's notes
say otherwise (AnoGAN under `quick`: once, after the last epoch, on a labelled test subset). The result of
a run is its *last-epoch* AUC: nothing about it depends on the test labels. The *best-on-test* AUC is the highest
AUC over epochs; it picks the epoch by looking at the test labels, so it is optimistic. It is shown because the
official GANomaly code reports that maximum, which makes it the like-for-like figure for the paper's values. On
MNIST the AUC often peaks in the first epoch or two and then decays, so the two can differ by several points: that
gap is a finding, not a bug.

**BatchNorm at test time.** By default the networks score test images with BatchNorm in inference mode (the moving
statistics learnt in training), so a score does not depend on which other images share its batch. The official
code never switched its networks to inference mode, so its scores used the statistics of each test batch (training
mode) and depended on the order of the test set. The suite offers that mode as an explicit option for comparison;
each run's configuration records which mode it used.

**Paper values.** Reference numbers come from {paper.ARXIV} (Table 1 MNIST, Table 2 CIFAR-10, "AUC"), the early
arXiv version that printed them as tables (the ACCV paper shows them only as a figure); each comparison lists its
sources and caveats. They belong to the `paper` split protocol only.

**Statistics.** Cells are means over seeds ± the sample standard deviation (ddof = 1); failed runs are listed,
never averaged in.
"""


def _try_load(folder: Path) -> Sweep | None:
    """A sweep, or None (with a warning) when the folder holds no runs yet."""
    try:
        return load_sweep(folder)
    except ReportError as err:
        print(f"report: leaving out of the README: {err}", file=sys.stderr)
        return None


def results_readme(results_root: Path, sweeps: Sequence[Path]) -> str:
    """The text of ``results/README.md`` (deterministic: no dates, everything sorted)."""
    loaded = [s for s in (_try_load(folder) for folder in sorted(Path(s) for s in sweeps)) if s is not None]
    loaded.sort(key=readme_order)
    lines = [
        "# Results",
        "",
        f"<!-- Generated by `{README_COMMAND}` from the sweep folders below; edit benchmarks/report/, "
        "not this file. -->",
        "",
        "Generated tables and plots of the committed sweeps. Each sweep folder (`<dataset>/<protocol>/<preset>/`) "
        "holds `summary.csv`, one folder a run under `runs/` (result, per-epoch history, test scores), and the "
        "tables and plots below. Regenerate a sweep's report with `python -m benchmarks.report <sweep folder>` "
        f"and this page with `{README_COMMAND}`.",
        "",
    ]
    if loaded:
        index = [
            [f"[{s.title}](#{_anchor(s.title)})", ", ".join(display_name(m) for m in s.models), str(len(s.runs))]
            for s in loaded
        ]
        lines += [markdown_table(["sweep", "models", "runs"], index, numbers=False), ""]
    else:
        lines += ["No sweep folders with a `summary.csv` yet.", ""]
    lines += [EXPLANATION]
    lines += [sweep_section(s, results_root) for s in loaded]
    return "\n".join(lines).rstrip("\n") + "\n"


def readme_order(sweep: Sweep) -> tuple:
    """The paper schedule first, then the other presets; MNIST before CIFAR-10; the paper split first."""
    presets_first = ("paper", "quick", "ci", "smoke")
    base = sweep.preset.split("+")[0]
    rank = presets_first.index(base) if base in presets_first else len(presets_first)
    datasets_first = ("mnist", "cifar10")
    data = datasets_first.index(sweep.dataset) if sweep.dataset in datasets_first else len(datasets_first)
    return (rank, sweep.preset != base, data, sweep.protocol != "paper", str(sweep.folder))


def _anchor(title: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    kept = "".join(c for c in title.lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def write_results_readme(results_root: str | Path, sweeps: Sequence[str | Path] | None = None) -> Path:
    """Write ``results_root/README.md`` for ``sweeps`` (default: every sweep folder under ``results_root``)."""
    root = Path(results_root)
    folders = find_sweeps(root) if sweeps is None else [Path(s) for s in sweeps]
    return atomic.write_text(root / "README.md", results_readme(root, folders))
