"""benchmarks.report and benchmarks.paper on fabricated sweep folders with known numbers."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks import paper, report
from benchmarks.report import auc, build, plots, ranking, tables
from benchmarks.report.epochs import epoch_aucs, inflation, reproduction_statement, selection_markdown

SEEDS = (0, 1, 2)
FAILED = ("ganomaly", 3, 2)  # (model, class, seed) of the one failed run
ENVIRONMENT = {"backend": "tensorflow", "tensorflow": "2.21.0", "keras": "3.15.1", "python": "3.11.7",
               "device": "cpu", "git_commit": "0123abc"}  # fmt: skip


def fabricated_auc(model: str, k: int, seed: int) -> float:
    """Last-epoch AUC of a fabricated run: per class mean 0.70 + 0.01 k (GANomaly), std 0.05 over seeds 0-2."""
    base = 0.70 if model == "ganomaly" else 0.60
    return base + 0.01 * k + 0.05 * (seed - 1)


def write_run(folder: Path, row: dict, rng: np.random.Generator) -> None:
    """One run folder: result.json, and for successful runs history.csv and scores.npz."""
    run = folder / row["run_dir"]
    run.mkdir(parents=True)
    record = {**row, "environment": ENVIRONMENT, "config": {"epochs": 3, "batch_size": 64, "seed": row["seed"]}}
    if row["status"] == "failed":
        record["traceback"] = "Traceback (most recent call last):\nRuntimeError: boom"
        (run / "result.json").write_text(json.dumps(record))
        return
    (run / "result.json").write_text(json.dumps(record))
    pd.DataFrame({
        "epoch": [1, 2, 3], "auc": [0.9, 0.8, row["auc_last"]], "auc_pr": [0.8, 0.7, 0.6],
        "seconds": [1.0, 1.0, 1.0], "g_loss": [3.0, 2.0, 1.5], "d_loss": [0.7, 0.5, 0.4],
    }).to_csv(run / "history.csv", index=False)  # fmt: skip
    labels = np.r_[np.zeros(60, int), np.ones(30, int)]
    scores = rng.normal(size=labels.size) + 1.5 * labels
    np.savez(run / "scores.npz", scores=scores, labels=labels, origins=np.arange(labels.size))


def make_sweep(
    root: Path,
    dataset: str = "mnist",
    protocol: str = "paper",
    preset: str = "quick",
    models: tuple[str, ...] = ("ganomaly", "ae"),
    classes: tuple[int, ...] = tuple(range(10)),
    failed: tuple = FAILED,
    auc_of: Callable[[str, int, int], float] = fabricated_auc,
) -> Path:
    """A sweep folder <root>/<dataset>/<protocol>/<preset>/ with summary.csv and runs/*; ``auc_of(model, k, seed)``
    gives each run's last-epoch AUC."""
    folder = root / dataset / protocol / preset
    rng = np.random.default_rng(0)
    names = paper.CLASS_NAMES[dataset]
    rows = []
    for model in models:
        for k in classes:
            for seed in SEEDS:
                ok = (model, k, seed) != failed
                auc = auc_of(model, k, seed) if ok else math.nan
                row = {
                    "dataset": dataset, "protocol": protocol, "preset": preset, "model": model,
                    "abnormal_class": k, "class_name": names[k], "seed": seed, "status": "ok" if ok else "failed",
                    "auc_last": auc, "auc_best": auc + 0.05, "best_epoch": 1 if ok else math.nan,
                    "auc_pr_last": auc - 0.1, "epochs": 3, "train_seconds": 3.0 if ok else math.nan,
                    "run_dir": f"runs/{model}_c{k}_s{seed}",
                }  # fmt: skip
                write_run(folder, row, rng)
                rows.append(row)
    pd.DataFrame(rows).to_csv(folder / "summary.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def sweep_folder(tmp_path_factory) -> Path:
    return make_sweep(tmp_path_factory.mktemp("results"))


@pytest.fixture(scope="module")
def written(sweep_folder: Path) -> dict[str, Path]:
    return report.build_report(sweep_folder)


def cell(stats: pd.DataFrame, model: str, k: int) -> pd.Series:
    return stats[(stats["model"] == model) & (stats["abnormal_class"] == k)].iloc[0]


# ---------------------------------------------------------------------------------------------------------------------
# paper.py


def test_paper_reference_shape_and_values():
    mnist = paper.reference("mnist")
    assert list(mnist.index) == ["anogan", "egbad", "ganomaly"]
    assert list(mnist.columns) == list(range(10))
    assert mnist.loc["ganomaly", 3] == pytest.approx(0.771)
    assert paper.reference("CIFAR-10").loc["egbad", 8] == pytest.approx(0.413)
    assert paper.reference("svhn").isna().all().all()


def test_paper_sources_and_caveats():
    assert "Table 1 (MNIST)" in paper.source("mnist", "ganomaly")
    assert "caveat" in paper.source("mnist", "egbad") and "caveat" not in paper.source("cifar10", "egbad")
    assert "Table 2 (CIFAR-10)" in paper.source("cifar10", "anogan")
    assert paper.source("mnist", "vae") == ""
    assert any("AUPRC" in c for c in paper.caveats("mnist"))
    assert any(".510" in c for c in paper.caveats("cifar10"))
    assert ".510" in paper.value_source("cifar10", "ganomaly", 2)
    assert paper.caveats("svhn") == []


# ---------------------------------------------------------------------------------------------------------------------
# Aggregation


def test_aggregate_matches_hand_computed(sweep_folder: Path):
    stats = report.aggregate(report.load_sweep(sweep_folder), "auc_last")
    assert len(stats) == 2 * 10
    c = cell(stats, "ganomaly", 5)  # 0.70, 0.75, 0.80
    assert c["mean"] == pytest.approx(0.75)
    assert c["std"] == pytest.approx(0.05)  # sqrt((0.05² + 0 + 0.05²) / (3 - 1))
    assert (c["n"], c["n_failed"], c["class_name"]) == (3, 0, "5")
    best = cell(report.aggregate(report.load_sweep(sweep_folder), "auc_best"), "ae", 0)
    assert best["mean"] == pytest.approx(0.65)


def test_failed_run_excluded_and_flagged(sweep_folder: Path):
    sweep = report.load_sweep(sweep_folder)
    stats = report.aggregate(sweep, "auc_last")
    c = cell(stats, "ganomaly", 3)  # seeds 0, 1 only: 0.68, 0.73
    assert c["mean"] == pytest.approx(0.705)
    assert c["std"] == pytest.approx(math.sqrt(2 * 0.025**2))
    assert (c["n"], c["n_failed"]) == (2, 1)
    text = report.auc_markdown(sweep, stats, "auc_last")
    assert "0.705 ± 0.035 (n=2, 1 failed)" in text
    assert "| 0.750 ± 0.050 |" in text  # n = 3, the usual count, is stated once below the table
    assert "n = 3 seeds a cell unless given in parentheses" in text


def test_format_cell_variants():
    row = {"mean": 0.8, "std": math.nan, "n": 1, "n_failed": 0}
    assert auc.format_cell(row, auc.MARKDOWN, full_n=1) == "0.800"
    assert auc.format_cell(row, auc.MARKDOWN, full_n=3) == "0.800 (n=1)"
    assert auc.format_cell({**row, "n": 0, "n_failed": 2}, auc.MARKDOWN, 3) == "failed (2)"
    assert auc.format_cell({**row, "n": 2, "std": 0.01, "n_failed": 1}, auc.MARKDOWN, 3) == (
        "0.800 ± 0.010 (n=2, 1 failed)"
    )
    assert auc.format_cell({**row, "n": 0}, auc.MARKDOWN, 3) == tables.DASH
    assert auc.format_cell({**row, "n": 0}, auc.LATEX, 3) == "--"
    assert auc.format_cell({**row, "n": 2, "std": 0.01}, auc.LATEX, 2) == r"$0.800 \pm 0.010$"


def test_tables_are_laid_out_without_padding():
    text = tables.markdown_table(["model", "a|b"], [["GANomaly", "0.850 ± 0.012"], ["", "–"]])
    assert text == "| model | a\\|b |\n|:---|---:|\n| GANomaly | 0.850 ± 0.012 |\n|  | – |"
    assert tables.markdown_table(["field", "value"], [["x", "1"]], numbers=False).splitlines()[1] == "|:---|:---|"
    tex = tables.latex_tabular(["model", "air_plane"], [["GANomaly", r"$0.850 \pm 0.012$ (n=2)"]])
    assert tex.splitlines() == [
        r"\begin{tabular}{lc}", r"\toprule", r"model & air\_plane \\", r"\midrule",
        r"GANomaly & $0.850 \pm 0.012$ (n=2) \\", r"\bottomrule", r"\end{tabular}",
    ]  # fmt: skip


def test_mean_over_classes(sweep_folder: Path, tmp_path: Path):
    stats = report.aggregate(report.load_sweep(sweep_folder), "auc_last")
    ganomaly = stats[stats["model"] == "ganomaly"]
    assert auc.format_mean(ganomaly) == f"{np.mean([0.70 + 0.01 * k for k in range(10)]) - 0.0025:.3f}"
    partial = report.load_sweep(make_sweep(tmp_path, classes=(0, 1), failed=()))
    text = report.auc_markdown(partial, report.aggregate(partial, "auc_last"), "auc_last")
    assert "0.705 (2/10)" in text  # GANomaly: mean of 0.70 and 0.71 over 2 of 10 classes
    assert f"| {tables.DASH} |" in text


def test_summary_fallback_to_result_json(sweep_folder: Path, tmp_path: Path):
    copy = tmp_path / "mnist" / "paper" / "quick"
    shutil.copytree(sweep_folder / "runs", copy / "runs")
    partial = copy / "runs/.partial-ae_c0_s5"  # a run still being built: must be left out
    shutil.copytree(copy / "runs/ae_c0_s0", partial)
    record = json.loads((partial / "result.json").read_text())
    (partial / "result.json").write_text(json.dumps({**record, "seed": 5, "auc_last": 0.0}))
    scanned = report.load_sweep(copy)
    assert (scanned.dataset, scanned.protocol, scanned.preset) == ("mnist", "paper", "quick")
    columns = ["model", "abnormal_class", "mean", "std", "n", "n_failed"]
    pd.testing.assert_frame_equal(
        report.aggregate(scanned, "auc_last")[columns], report.aggregate(report.load_sweep(sweep_folder))[columns]
    )


def test_empty_folder_is_an_error(tmp_path: Path):
    with pytest.raises(report.ReportError):
        report.load_sweep(tmp_path)


# ---------------------------------------------------------------------------------------------------------------------
# Outputs


def test_all_outputs_written(written: dict[str, Path], sweep_folder: Path):
    tables = [f"{m}.{ext}" for m in ("auc_last", "auc_best", "auc_pr_last") for ext in ("md", "tex", "csv")]
    tables += ["paper_comparison.md", "paper_comparison.csv", "best_vs_last.md", "model_comparison.md"]
    kinds = ("auc_by_epoch", "roc", "scores", "training")
    stems = ["auc_by_class", "critical_difference"] + [f"{kind}_{m}" for kind in kinds for m in ("ganomaly", "ae")]
    expected = tables + [f"{stem}.{ext}" for stem in stems for ext in ("png", "pdf")]
    assert sorted(written) == sorted(expected)
    for name in expected:
        path = sweep_folder / name
        assert written[name] == path and path.is_file() and path.stat().st_size > 0, name
    assert (sweep_folder / "auc_by_class.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_csv_is_tidy(written: dict[str, Path]):
    frame = pd.read_csv(written["auc_last.csv"])
    assert list(frame.columns) == list(build.CSV_COLUMNS) and "n_running" not in frame.columns
    row = frame[(frame["model"] == "ganomaly") & (frame["abnormal_class"] == 3)].iloc[0]
    assert (row["n"], row["n_failed"]) == (2, 1) and row["mean"] == pytest.approx(0.705)


def test_best_table_is_labelled(written: dict[str, Path]):
    text = written["auc_best.md"].read_text()
    assert "best-on-test (paper-style, optimistic: selects the epoch on test labels)" in text.lower()
    assert "0.800 ± 0.050" in text  # GANomaly class 5: 0.75, 0.80, 0.85


def test_latex_is_structurally_sound(written: dict[str, Path]):
    tex = written["auc_last.tex"].read_text()
    for env in ("table", "tabular"):
        assert tex.count(rf"\begin{{{env}}}") == tex.count(rf"\end{{{env}}}") == 1
    top, mid, bottom = (tex.index(rule) for rule in (r"\toprule", r"\midrule", r"\bottomrule"))
    assert top < mid < bottom
    rows = [line for line in tex[top:bottom].splitlines() if line.endswith(r"\\")]
    assert len(rows) == 1 + 2  # header + two models
    for line in rows:
        assert len(re.findall(r"(?<!\\)&", line)) == 11, line  # model + 10 classes + mean
        assert line.count("$") % 2 == 0
    assert r"& $0.750 \pm 0.050$ &" in tex and "±" not in tex and tables.DASH not in tex


def test_paper_comparison_difference(written: dict[str, Path]):
    frame = pd.read_csv(written["paper_comparison.csv"])
    assert set(frame["model"]) == {"ganomaly"}  # AE has no paper values
    row = frame[frame["abnormal_class"] == 0].iloc[0]
    assert row["paper"] == pytest.approx(0.850)
    assert row["ours_last"] == pytest.approx(0.70)
    assert row["diff_last"] == pytest.approx(0.70 - 0.85)
    assert row["diff_best"] == pytest.approx(0.75 - 0.85)
    assert "Table 1 (MNIST)" in row["source"]
    text = written["paper_comparison.md"].read_text()
    assert "| GANomaly | ours, last-epoch | 0.700 |" in text
    assert "|  | Δ last − paper | -0.150 |" in text
    assert "arXiv 1805.06725" in text and "AUPRC" in text


def test_comparison_skipped_for_one_class_protocol(tmp_path: Path):
    folder = make_sweep(tmp_path, protocol="one-class", classes=(0,), models=("ganomaly",), failed=())
    written = report.build_report(folder, plots=False)
    assert "not comparable" in written["paper_comparison.md"].read_text()
    assert pd.read_csv(written["paper_comparison.csv"]).empty
    assert "normal class" in written["auc_last.md"].read_text()


def test_out_folder_and_cli(sweep_folder: Path, tmp_path: Path, capsys):
    out = tmp_path / "elsewhere"
    assert report.main([str(sweep_folder), "--out", str(out), "--no-plots", "--metric", "best"]) == 0
    printed = capsys.readouterr().out
    assert "AUC, best-on-test" in printed and str(out / "auc_best.tex") in printed
    assert (out / "auc_last.md").is_file() and not (out / "auc_by_class.png").exists()
    with pytest.raises(SystemExit):
        report.main([])


def test_sweep_table_is_the_last_epoch_table(sweep_folder: Path, tmp_path: Path):
    sweep = report.load_sweep(sweep_folder)
    assert report.sweep_table(sweep_folder) == report.auc_markdown(sweep, report.aggregate(sweep), "auc_last")
    assert report.sweep_table(tmp_path) == "no finished runs"


# ---------------------------------------------------------------------------------------------------------------------
# results/README.md


def test_readme_is_deterministic_and_has_tables(written: dict[str, Path], sweep_folder: Path, tmp_path: Path):
    root = sweep_folder.parents[2]
    make_sweep(tmp_path, dataset="cifar10", classes=(2,), models=("ganomaly",), failed=())
    shutil.copytree(tmp_path / "cifar10", root / "cifar10", dirs_exist_ok=True)
    assert report.find_sweeps(root) == [root / "cifar10/paper/quick", root / "mnist/paper/quick"]
    path = report.write_results_readme(root, report.find_sweeps(root))
    first = path.read_text()
    assert report.main(["--readme", str(root)]) == 0
    assert path.read_text() == first
    table = written["auc_last.md"].read_text().split("\n\n")[1]  # the table under the title
    assert table in first
    command = "python -m benchmarks.run --dataset mnist --all-classes --preset quick --protocol paper"
    assert f"{command} --models ganomaly ae" in first
    assert "--dataset cifar10 --classes 2 --preset quick" in first
    assert "`0123abc`" in first and "`2.21.0`" in first
    assert "(mnist/paper/quick/auc_by_class.png)" in first and "roc_ganomaly.pdf" in first
    assert "Last-epoch versus best-on-test" in first and "BatchNorm at test time" in first
    assert "Skip-GANomaly" in first  # the CIFAR-10 caveat


def test_readme_names_the_runs_not_run_yet(tmp_path: Path):
    folder = make_sweep(tmp_path, failed=())
    summary = pd.read_csv(folder / "summary.csv")
    gone = (summary["model"] == "ae") & (summary["seed"] > 0) & (summary["abnormal_class"].isin([0, 2, 3, 4]))
    summary[~gone].to_csv(folder / "summary.csv", index=False)
    text = report.results_readme(tmp_path, [folder])
    assert "Produced by (the runs so far; the ones not run yet are listed below):" in text
    assert "52 of the 60 runs of its grid (2 models × 10 classes × seeds 0, 1, 2) so far (52 ok)" in text
    assert "not run yet: AE seed 1: 0, 2–4; AE seed 2: 0, 2–4; epochs 3" in text
    partial = make_sweep(tmp_path / "partial", classes=(0, 1), failed=())
    text = selection_markdown(report.load_sweep(partial))
    assert "| mean (2/10) |" in text and "The means cover the 2 of 10 classes with runs." in text


def test_a_rerun_replaces_its_failed_try(tmp_path: Path):
    folder = make_sweep(tmp_path, classes=(0,), models=("ganomaly",), failed=())
    summary = pd.read_csv(folder / "summary.csv")
    rerun = summary.iloc[[0]].assign(status="failed", auc_last=math.nan)  # an earlier failed try of seed 0
    pd.concat([rerun, summary]).to_csv(folder / "summary.csv", index=False)
    sweep = report.load_sweep(folder)
    c = cell(report.aggregate(sweep, "auc_last"), "ganomaly", 0)
    assert (c["n"], c["n_failed"]) == (3, 0)
    assert c["mean"] == pytest.approx(0.70)
    text = report.auc_markdown(sweep, report.aggregate(sweep, "auc_last"), "auc_last")
    assert "| 0.700 ± 0.050 |" in text


def test_missing_artifacts_do_not_break_plots(tmp_path: Path):
    folder = make_sweep(tmp_path, classes=(0, 1), models=("ganomaly",), failed=())
    for path in folder.glob("runs/*/scores.npz"):
        path.unlink()
    (folder / "runs/ganomaly_c0_s0/history.csv").write_text("")
    written = report.build_report(folder)
    assert not any(name.startswith(("roc_", "scores_")) for name in written)
    assert "training_ganomaly.png" in written and "auc_by_class.pdf" in written


def test_readme_without_sweeps(tmp_path: Path):
    text = report.write_results_readme(tmp_path, []).read_text()
    assert "No sweep folders" in text and "Last-epoch versus best-on-test" in text


def test_history_columns_are_metrics_then_losses():
    history = pd.DataFrame({
        "epoch": [1], "auc": [0.9], "g_loss": [1.0], "seconds": [2.0], "train_seconds": [2.0],
        "score_seconds": [0.1], "auc_pr": [0.8], "d_loss": [0.5], "learning_rate": [2e-4], "note": ["x"],
    })  # fmt: skip
    assert plots.history_columns([history]) == ["auc", "auc_pr", "g_loss", "d_loss"]


def test_ranking_by_mean_and_wins(written: dict[str, Path], sweep_folder: Path):
    sweep = report.load_sweep(sweep_folder)
    table = ranking.ranking(sweep.runs, sweep.classes)
    assert list(table["model"]) == ["ganomaly", "ae"] and list(table["wins"]) == [10, 0]
    # GANomaly: 0.70 + 0.01 k over the ten classes, class 3 from seeds 0 and 1 only (0.705, not 0.73); its
    # failed run leaves 29 of the 30 pairs to both models.
    expected = np.mean([0.70 + 0.01 * k for k in range(10)]) - 0.025 / 10
    assert table["mean"].iloc[0] == pytest.approx(expected)
    assert (table["pairs"].iloc[0], table["of"].iloc[0]) == (29, 30)
    statement = ranking.ranking_statement(sweep.runs, sweep.classes)
    assert (
        statement.startswith(
            "By mean last-epoch AUC over 10 classes, on the 29 of 30 (class, seed) pairs every ranked model ran "
            "(so a mean can differ from the cells): GANomaly 0.74"  # 0.7425: the last digit is float rounding
        )
        and "(best on 10), AE 0.64" in statement
    )
    assert statement in (sweep_folder / "auc_last.md").read_text()
    # A model missing a class is named, not ranked.
    vae = sweep.runs.iloc[:1].assign(model="vae", auc_last=0.99)
    statement = ranking.ranking_statement(pd.concat([sweep.runs, vae], ignore_index=True), sweep.classes)
    assert "(best on 10), AE" in statement and statement.endswith("Not ranked, some classes missing: VAE.")


def test_ranking_compares_the_same_seeds(tmp_path: Path):
    """A model run on seed 0 only is ranked against the others' seed 0, not against their mean over seeds."""
    # AE wins every class on seed 0 (0.80 against 0.75); GANomaly's seeds 1 and 2 (0.95) lift its mean over seeds.
    folder = make_sweep(tmp_path, failed=(), auc_of=lambda m, k, s: {"ae": 0.80, "ganomaly": 0.75 + 0.1 * s}[m])
    runs = report.load_sweep(folder).runs
    runs = runs[(runs["model"] == "ganomaly") | (runs["seed"] == 0)]
    table = ranking.ranking(runs, list(range(10))).set_index("model")
    assert table.loc["ae", "wins"] == 10 and table.loc["ganomaly", "wins"] == 0
    assert table.loc["ganomaly", "mean"] == pytest.approx(0.75) and table.loc["ae", "pairs"] == 10
    matrix = ranking.auc_matrix(runs)
    assert "| AE | 1.00 |" in ranking.models_markdown(runs) and ranking.average_ranks(matrix)["ae"] == 1.0


def test_best_against_last_per_class(written: dict[str, Path], sweep_folder: Path):
    sweep = report.load_sweep(sweep_folder)
    table = inflation(sweep, "ganomaly").set_index("abnormal_class")
    # Fabricated: best = last + 0.05 in every run, best epoch 1, seed spread ± 0.05 around 0.70 + 0.01 k.
    assert table.loc[0, "last"] == pytest.approx(0.70) and table.loc[0, "best"] == pytest.approx(0.75)
    assert table.loc[0, "inflation"] == pytest.approx(0.05) and table.loc[0, "best_epochs"] == "1, 1, 1"
    assert table.loc[3, "best_epochs"] == "1, 1"  # the failed run is left out
    assert table.loc[0, "paper"] == pytest.approx(0.850)
    text = written["best_vs_last.md"].read_text()
    assert "| inflation, best − last | +0.050 |" in text and "| paper | 0.850 |" in text
    # Class 3 has two seeds (a failed run): the seeds are counted per class, not taken from the largest.
    assert "| seeds | 3 | 3 | 3 | 2 | 3 |" in text and "Means over 2–3 seeds (row seeds) a class" in text
    aucs = epoch_aucs(sweep, "ganomaly")[0]
    assert list(aucs.index) == [1, 2, 3] and list(aucs.columns) == [0, 1, 2]
    assert aucs.loc[3].tolist() == pytest.approx([0.65, 0.70, 0.75])


def test_titles_are_words():
    sweep = report.Sweep(Path("x"), pd.DataFrame(), "mnist", "paper", "quick")
    assert sweep.title == "MNIST, paper split, 2 epochs on 12,000 training images"
    assert report.Sweep(Path("x"), pd.DataFrame(), "cifar10", "one-class", "paper").title == (
        "CIFAR-10, one-class split, 15 epochs on every training image"
    )


def test_evaluation_notes_footnote_subsets_iterations_and_schedule():
    record = {
        "model": "anogan",
        "status": "ok",
        "epochs": 2,
        "evaluated_epochs": [2],
        "config": {
            "test_subset": 4000,
            "test_subset_seed": 0,
            "eval_every": 0,
            "model_options": {"score_iterations": 50},
        },
    }
    ganomaly = {**record, "model": "ganomaly", "config": {}, "evaluated_epochs": [1, 2]}
    (note,) = auc.evaluation_notes([record, ganomaly])
    assert note.startswith("AnoGAN: scored on a stratified subset of 4,000 test images")
    assert "50 latent-search iterations" in note and "evaluated after the last epoch only" in note
    # Under the model comparison: only what changes the last-epoch AUC, and only where the models differ.
    (caveat,) = auc.measurement_caveats([record, ganomaly])
    assert caveat.startswith("AnoGAN: scored on a stratified subset") and "50 latent-search iterations" in caveat
    assert "evaluated after the last epoch only" not in caveat
    same_subset = {**ganomaly, "config": {"test_subset": 4000, "test_subset_seed": 0}}
    paper_search = {**record, "config": {**record["config"], "model_options": {"score_iterations": 500}}}
    assert auc.measurement_caveats([paper_search, same_subset]) == []


def test_reproduction_statement_sorts_classes_against_the_paper(written: dict[str, Path], sweep_folder: Path):
    text = reproduction_statement(report.load_sweep(sweep_folder))
    # Fabricated GANomaly 0.70 + 0.01 k (class 3: 0.705) against the paper's MNIST row.
    assert text.startswith("GANomaly's last-epoch AUC against the paper's value, class by class: reproduced")
    assert "reproduced (within ±0.05) on 3 classes (4, 5, 7)" in text
    assert "more than 0.05 below on 5 classes (0, 2, 3, 6, 8)" in text
    assert "more than 0.05 above on 2 classes (1, 9)" in text
    assert "would add +0.050 to the mean" in text
    readme = report.results_readme(sweep_folder.parents[2], [sweep_folder])
    assert f"**In short.** {text}" in readme


def test_statistics_across_models(written: dict[str, Path], sweep_folder: Path):
    runs = report.load_sweep(sweep_folder).runs
    matrix = ranking.auc_matrix(runs)
    assert matrix.shape == (30, 2) and matrix["ganomaly"].isna().sum() == 1  # GANomaly's failed run
    assert ranking.average_ranks(matrix).to_dict() == {"ganomaly": 1.0, "ae": 2.0}
    (test,) = ranking.wilcoxon_holm(matrix).itertuples()
    # GANomaly is 0.10 above AE in each of the 29 pairs; one pair of models, so Holm changes nothing.
    assert (test.model_a, test.model_b, test.n) == ("ae", "ganomaly", 29) and test.mean_diff == pytest.approx(-0.10)
    assert test.p < 1e-5 and test.p_holm == pytest.approx(test.p) and test.significant
    boot = ranking.bootstrap_means(runs).set_index("model")
    # Seeds with every class: GANomaly 0 and 1 (0.695, 0.745); AE 0, 1, 2 (0.595, 0.645, 0.695).
    assert boot.loc["ganomaly", "seeds"] == 2 and boot.loc["ganomaly", "mean"] == pytest.approx(0.72)
    assert list(boot.loc["ganomaly", ["lowest", "highest"]]) == pytest.approx([0.695, 0.745])
    assert boot[["ci_low", "ci_high"]].isna().all().all()  # under five seeds: a range, not an interval
    boot = ranking.bootstrap_means(runs, min_seeds=3).set_index("model")
    assert np.isnan(boot.loc["ganomaly", "ci_low"])
    assert 0.595 <= boot.loc["ae", "ci_low"] < 0.645 < boot.loc["ae", "ci_high"] <= 0.695
    text = written["model_comparison.md"].read_text()
    assert "| GANomaly | 2 | 0.720 | 0.695 – 0.745 | – |" in text
    assert "| AE − GANomaly | 29 | -0.100 |" in text and "| yes |" in text
    assert (sweep_folder / "critical_difference.png").read_bytes()[:4] == b"\x89PNG"


def test_critical_difference_diagram_is_the_same_bytes_whatever_the_hash_seed(tmp_path: Path):
    # Three models a little apart, none significantly: one crossbar through three distinct ranks, which
    # scikit-posthocs draws from a set (iteration order follows PYTHONHASHSEED).
    noise = np.random.default_rng(1).normal(0, 0.05, size=(3, 10, 3))
    models = ("ae", "vae", "egbad")
    folder = make_sweep(
        tmp_path,
        models=models,
        failed=(),
        auc_of=lambda m, k, s: 0.6 + 0.01 * models.index(m) + noise[models.index(m), k, s],
    )
    matrix = ranking.auc_matrix(report.load_sweep(folder).runs)
    assert ranking.average_ranks(matrix).nunique() == 3 and not ranking.wilcoxon_holm(matrix)["significant"].any()
    draw = (
        "import sys; from pathlib import Path; from benchmarks import report; "
        "from benchmarks.report.ranking import plot_critical_difference; "
        "plot_critical_difference(report.load_sweep(Path(sys.argv[1])), Path(sys.argv[2]))"
    )
    pdfs = []
    for hash_seed in ("1", "2", "3"):
        out = tmp_path / f"hash{hash_seed}"
        out.mkdir()
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run(
            [sys.executable, "-c", draw, str(folder), str(out)], check=True, env=env, cwd=Path(__file__).parents[1]
        )
        pdfs.append((out / "critical_difference.pdf").read_bytes())
    assert pdfs[0] == pdfs[1] == pdfs[2]


def test_auc_pr_table(written: dict[str, Path]):
    frame = pd.read_csv(written["auc_pr_last.csv"])
    row = frame[(frame["model"] == "ganomaly") & (frame["abnormal_class"] == 0)].iloc[0]
    assert row["mean"] == pytest.approx(0.60)  # fabricated: AUC-PR = AUC - 0.1
    assert "AUC-PR (average precision" in written["auc_pr_last.md"].read_text()
