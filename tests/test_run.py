"""The sweep runner: grid, shards, run identity, resume, locks, failures, a real smoke sweep."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from benchmarks import execution
from benchmarks import grid as sweep_grid
from benchmarks import run as runner
from benchmarks.store import SUMMARY_COLUMNS, RunFolder, rebuild_summary, run_hash, sweep_dir
from ganomaly_tf import atomic
from ganomaly_tf.config import RunConfig
from ganomaly_tf.record import RunRecord

ROOT = Path(__file__).resolve().parents[1]


def smoke_grid(data_dir, classes=(0,), seeds=(0,), models=("ganomaly",), **overrides):
    return sweep_grid.build_grid(
        "mnist",
        list(classes),
        list(seeds),
        list(models),
        preset="smoke",
        overrides={"data_dir": str(data_dir), **overrides},
    )


def test_grid_order_and_filters():
    grid = sweep_grid.build_grid("cifar10", ["cat", "plane", 3], [0, 1], ["ganomaly"], preset="smoke")
    assert [(c.abnormal_class, c.seed) for c in grid] == [(3, 0), (3, 1), (0, 0), (0, 1)]  # duplicates dropped
    assert len(sweep_grid.build_grid("mnist", None, [0, 1, 2], ["ganomaly"], preset="paper")) == 30
    paper = sweep_grid.build_grid("mnist", [0], [0], ["ganomaly"], preset="paper")[0]
    assert (paper.epochs, paper.batch_size, paper.train_subset, paper.test_subset) == (15, 64, None, None)
    quick = sweep_grid.build_grid("mnist", [0], [0], ["ganomaly"], preset="quick", overrides={"epochs": 5})[0]
    assert quick.epochs == 5 and quick.train_subset == 12000


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"models": ["nope"]}, "unknown model"),
        ({"classes": ["zebra"]}, "unknown mnist class"),
        ({"preset": "slow"}, "unknown preset"),
    ],
)
def test_grid_rejects_bad_input(kwargs, message):
    args = {"classes": [0], "seeds": [0], "models": ["ganomaly"], "preset": "smoke", **kwargs}
    preset = args.pop("preset")
    with pytest.raises(ValueError, match=message):
        sweep_grid.build_grid("mnist", args["classes"], args["seeds"], args["models"], preset=preset)


@pytest.mark.parametrize("n", [1, 3, 4, 7])
def test_shards_cover_the_grid_exactly_once(n):
    grid = sweep_grid.build_grid("mnist", None, [0, 1, 2], ["ganomaly", "ae"], preset="smoke")
    names = [RunFolder(Path("x"), c).name for c in grid]
    parts = [[RunFolder(Path("x"), c).name for c in sweep_grid.shard(grid, k, n)] for k in range(n)]
    assert sorted(sum(parts, [])) == sorted(names)
    assert len(set(names)) == len(names)


def test_parse_shard_errors():
    assert sweep_grid.parse_shard("2/4") == (2, 4)
    for bad in ("4/4", "x", "1/0", "-1/2"):
        with pytest.raises(ValueError, match="--shard"):
            sweep_grid.parse_shard(bad)


def test_run_hash_is_stable():
    config = RunConfig()
    # Pinned: a change here re-runs every stored result, so it must be deliberate.
    assert run_hash(config) == "43df2fd5dc"
    assert run_hash(RunConfig(data_dir="/elsewhere")) == run_hash(config)  # where data lives is not identity
    assert run_hash(RunConfig(epochs=14)) != run_hash(config)
    assert run_hash(RunConfig(dataset="cifar10")) != run_hash(config)
    code = (
        "from ganomaly_tf.config import RunConfig\nfrom benchmarks.store import run_hash\nprint(run_hash(RunConfig()))"
    )
    other_process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert other_process.stdout.strip() == run_hash(config)


def test_smoke_sweep_end_to_end(data_dir, tmp_path, capsys):
    rc = runner.main(
        ["--dataset", "mnist", "--classes", "0", "1", "--seeds", "0", "--preset", "smoke"]
        + ["--out", str(tmp_path), "--data-dir", str(data_dir), "--no-report"]
    )
    assert rc == 0
    sweep = sweep_dir(tmp_path, "mnist", "paper", "smoke")
    summary = pd.read_csv(sweep / "summary.csv")
    assert tuple(summary.columns) == SUMMARY_COLUMNS
    assert list(summary.status) == ["ok", "ok"] and list(summary.abnormal_class) == [0, 1]
    for run_dir in summary.run_dir:
        folder = sweep / run_dir
        for name in ("config.json", "result.json", "history.csv", "scores.npz", "run.log"):
            assert (folder / name).is_file(), name
        record = json.loads((folder / "result.json").read_text())
        assert record["preset"] == "smoke" and record["config"]["test_subset"] == 600  # says it subsampled
        with np.load(folder / "scores.npz") as z:  # the recorded AUC is the stored scores' AUC
            assert record["auc_last"] == pytest.approx(roc_auc_score(z["labels"], z["scores"]), abs=1e-12)
    out = capsys.readouterr().out
    assert "AUC, last epoch" in out and "| GANomaly |" in out
    # Rerunning skips everything.
    counts = execution.run_sweep(smoke_grid(data_dir, classes=(0, 1)), sweep, preset="smoke", verbosity=0)
    assert counts["skipped"] == 2 and counts["ok"] == 0


def test_failed_run_is_recorded_and_sweep_goes_on(data_dir, tmp_path):
    bad = smoke_grid(tmp_path / "no-data")[0]  # its data folder does not exist: the run raises
    good = smoke_grid(data_dir, classes=(1,))[0]
    sweep = tmp_path / "sweep"
    counts = execution.run_sweep([bad, good], sweep, preset="smoke", verbosity=0)
    assert counts["failed"] == 1 and counts["ok"] == 1
    summary = pd.read_csv(sweep / "summary.csv").set_index("abnormal_class")
    assert summary.loc[0, "status"] == "failed" and pd.isna(summary.loc[0, "auc_last"])
    record = json.loads((sweep / summary.loc[0, "run_dir"] / "result.json").read_text())
    assert "DataError" in record["error"] and "no such folder" in record["error"]
    assert "Traceback" in record["traceback"]
    assert "auc_last" not in record
    # Redoing only the failed run, deferred at once: its record is still the sweep's, so its table is rebuilt.
    (sweep / "summary.csv").unlink()
    counts = execution.run_sweep([bad], sweep, preset="smoke", verbosity=0, deadline=time.time() - 1)
    assert counts["deferred"] == 1 and counts["ok"] + counts["failed"] + counts["skipped"] == 0
    assert pd.read_csv(sweep / "summary.csv").set_index("abnormal_class").loc[0, "status"] == "failed"


def test_republishing_a_run_swaps_its_folder_whole(tmp_path, monkeypatch):
    from benchmarks import store

    config = smoke_grid(tmp_path / "no-data")[0]
    folder = RunFolder(tmp_path / "sweep", config)
    failure = lambda message: RunRecord.failure(config, RuntimeError(message), "Traceback", backend="tensorflow")  # noqa: E731
    error = lambda: json.loads((folder.final / "result.json").read_text())["error"]  # noqa: E731
    for message in ("first attempt", "second attempt"):  # a failed run replaced, as by a rerun or --force
        folder.publish(failure(message))
        assert message in error()
    assert [p.name for p in folder.final.parent.iterdir()] == [folder.name]  # nothing left aside
    # A swap that fails half-way leaves the run as it was, not without a folder.
    real_replace = os.replace

    def replace(src, dst):
        if Path(src) == folder.partial:
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(store.os, "replace", replace)
    with pytest.raises(OSError, match="disk full"):
        folder.publish(failure("third attempt"))
    assert "second attempt" in error()


def test_two_writers_of_one_file_never_share_a_temporary(tmp_path):
    target = tmp_path / "summary.csv"
    with atomic.replacing(target) as first, atomic.replacing(target) as second:
        assert first != second
        first.write_text("first")
        second.write_text("second")
    assert target.read_text() == "first"  # the outer block ended last; neither rename failed
    assert [p.name for p in tmp_path.iterdir()] == ["summary.csv"]


def test_locked_run_is_left_to_its_owner(data_dir, tmp_path):
    config = smoke_grid(data_dir)[0]
    folder = RunFolder(tmp_path, config)
    with folder.lock() as mine:
        assert mine
        assert execution.execute(tmp_path, config, "smoke", False, 0) == ("locked", 0.0)
    assert not folder.final.exists()


def test_sigkill_loses_nothing_and_resume_finishes(data_dir, tmp_path):
    out = tmp_path / "res"
    cmd = [sys.executable, "-m", "benchmarks.run", "--dataset", "mnist", "--classes", "0", "1", "2"]
    cmd += ["--seeds", "0", "--preset", "smoke", "--out", str(out), "--data-dir", str(data_dir), "--no-report"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    sweep = sweep_dir(out, "mnist", "paper", "smoke")
    deadline = time.time() + 120
    while time.time() < deadline and not list((sweep / "runs").glob("ganomaly-c0-*/result.json")):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = [p for p in (sweep / "runs").glob("ganomaly-*") if p.is_dir()]
    assert finished, "the first run should have finished before the kill"
    for p in finished:  # whatever is under a final name is whole
        assert json.loads((p / "result.json").read_text())["status"] == "ok"
        assert (p / "scores.npz").is_file()
    grid = smoke_grid(data_dir, classes=(0, 1, 2))
    counts = execution.run_sweep(grid, sweep, preset="smoke", verbosity=0)
    assert counts["skipped"] == len(finished) and counts["ok"] == 3 - len(finished)
    summary = rebuild_summary(sweep)
    assert list(summary.status) == ["ok"] * 3
    assert not [p for p in (sweep / "runs").glob(".partial-*") if any(p.iterdir())]


def test_mid_run_resume_from_checkpoint(data_dir, tmp_path):
    from ganomaly_tf.experiment import run

    base = smoke_grid(data_dir)[0]
    first = run(RunConfig.from_dict({**base.to_dict(), "epochs": 1}), backup_dir=tmp_path)
    assert (tmp_path / "history.json").exists()
    resumed = run(RunConfig.from_dict({**base.to_dict(), "epochs": 2}), backup_dir=tmp_path)
    history = resumed.record.history
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[0]["auc"] == first.record.history[0]["auc"]  # epoch 1 was restored, not redone


@pytest.mark.parametrize(
    "text, seconds", [("90m", 5400), ("2h30m", 9000), ("2.5h", 9000), ("45s", 45), ("1h5m30s", 3930)]
)
def test_time_limits_are_read_as_durations(text, seconds):
    assert execution.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "90", "1d", "m", "0m", "2h 30m"])
def test_a_time_limit_that_is_no_duration_is_refused(text):
    with pytest.raises(ValueError, match="--time-limit"):
        execution.parse_duration(text)


def test_time_limit_defers_runs_that_would_not_finish(data_dir, tmp_path, capsys):
    grid = smoke_grid(data_dir, classes=(0, 1, 2))
    sweep = sweep_dir(tmp_path, "mnist", "paper", "smoke")
    from ganomaly_tf.experiment import run  # noqa: F401  (imported now, so the deadline is not spent importing)

    RunFolder(sweep, grid[0]).name  # noqa: B018  (so is Keras, for the run's hash)
    # Nothing to estimate by: the first run starts; afterwards the limit has passed or its
    # finished run says the next one would not fit in what is left.
    counts = execution.run_sweep(grid, sweep, preset="smoke", verbosity=1, deadline=time.time() + 3)
    assert counts["ok"] == 1 and counts["deferred"] == 2
    assert [RunFolder(sweep, c).status() for c in grid] == ["ok", None, None]
    assert "deferred" in capsys.readouterr().out
    # The estimate is the finished run's training and evaluation time, read back from its history.
    history = pd.read_csv(RunFolder(sweep, grid[0]).final / "history.csv")
    spent = history["train_seconds"].sum() + history["score_seconds"].sum()
    assert execution.expected_seconds(RunFolder(sweep, grid[1])) == pytest.approx(spent) and spent > 0
    # An hour is enough for the rest, and nothing is redone.
    counts = execution.run_sweep(grid, sweep, preset="smoke", verbosity=0, deadline=time.time() + 3600)
    assert counts == {"ok": 2, "failed": 0, "skipped": 1, "locked": 0, "deferred": 0}
    # A run that has checkpointed half its epochs is expected to need half the time.
    two_epochs = RunFolder(sweep, smoke_grid(data_dir, classes=(3,), epochs=2)[0])
    two_epochs.partial.mkdir(parents=True)
    (two_epochs.partial / "history.json").write_text(json.dumps({"history": [{"epoch": 1}]}))
    median = execution.expected_seconds(RunFolder(sweep, grid[0]))
    assert execution.expected_seconds(two_epochs) == pytest.approx(median / 2)


def test_a_new_sweep_is_estimated_by_another_datasets_runs_at_its_schedule(data_dir, tmp_path):
    out = tmp_path / "results"
    mnist = sweep_dir(out, "mnist", "paper", "smoke")
    (config,) = smoke_grid(data_dir)
    assert execution.run_sweep([config], mnist, preset="smoke", verbosity=0)["ok"] == 1
    cifar = RunFolder(sweep_dir(out, "cifar10", "paper", "smoke"), config)
    assert execution.expected_seconds(cifar) == execution.expected_seconds(RunFolder(mnist, config)) > 0
    assert execution.expected_seconds(RunFolder(sweep_dir(out, "cifar10", "paper", "quick"), config)) is None
    assert execution.expected_seconds(RunFolder(mnist, smoke_grid(data_dir, models=("ae",))[0])) is None


def test_a_sweep_whose_runs_are_all_deferred_leaves_no_table(data_dir, tmp_path, capsys):
    out = tmp_path / "results"
    argv = ["--dataset", "mnist", "--classes", "0", "--seeds", "0", "--preset", "smoke", "--data-dir", str(data_dir)]
    assert runner.main([*argv, "--out", str(out), "--no-report"]) == 0  # a finished run to estimate by
    capsys.readouterr()
    # A second is too little for a run like it (or has passed while the data was read).
    assert runner.main([*argv, "--dataset", "cifar10", "--out", str(out), "--time-limit", "1s"]) == 0
    out_text = capsys.readouterr().out
    assert "ganomaly class 0 seed 0: deferred: " in out_text and "1 run(s) deferred" in out_text
    assert "no run of this sweep has finished yet" in out_text and "report failed" not in out_text
    # The command it gives runs them: the same sweep without the limit that deferred them.
    (command,) = [line.split("(or no limit): ")[1] for line in out_text.splitlines() if "(or no limit): " in line]
    assert command == runner.resume_command([*argv, "--dataset", "cifar10", "--out", str(out)])
    cifar = sweep_dir(out, "cifar10", "paper", "smoke")
    assert not (cifar / "summary.csv").exists() and not list(cifar.glob("*.png"))


@pytest.mark.parametrize("limit", [["--time-limit", "2h"], ["--time-limit=2h"]])
def test_the_command_for_deferred_runs_has_no_time_limit(limit):
    argv = ["--dataset", "mnist", *limit, "--seeds", "0"]
    assert runner.resume_command(argv, time_limit=False) == "python -m benchmarks.run --dataset mnist --seeds 0"
    assert runner.resume_command(argv) == "python -m benchmarks.run " + " ".join(argv)


def test_time_limit_option_is_checked_before_any_work(tmp_path, capsys):
    argv = ["--dataset", "mnist", "--classes", "0", "--preset", "smoke", "--out", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_:
        runner.main([*argv, "--time-limit", "soon"])
    assert exit_.value.code == 2 and "--time-limit 'soon': not a duration" in capsys.readouterr().err
    assert not (tmp_path / "mnist").exists()


def test_dry_run_prints_the_grid(capsys):
    assert runner.main(["--dataset", "mnist", "--all-classes", "--seeds", "0", "1", "--dry-run", "--shard", "1/2"]) == 0
    out = capsys.readouterr().out
    assert "10 runs (shard 1/2)" in out


def test_dtype_policy_enters_identity_only_when_changed():
    assert "dtype_policy" not in RunConfig().identity()
    assert run_hash(RunConfig(dtype_policy="mixed_bfloat16")) != run_hash(RunConfig())


def test_mixed_bfloat16_run_gives_finite_float32_scores(data_dir):
    import keras
    import numpy as np

    from ganomaly_tf.experiment import run

    config = RunConfig.from_dict({**smoke_grid(data_dir)[0].to_dict(), "dtype_policy": "mixed_bfloat16"})
    try:
        result = run(config)
        assert result.record.environment["dtype_policy"] == "mixed_bfloat16"
    finally:
        keras.config.set_dtype_policy("float32")
    assert result.scores.dtype == np.float32 and np.isfinite(result.scores).all()


def test_later_fields_enter_identity_only_when_set():
    base = run_hash(RunConfig())
    for field, value in (("eval_every", 0), ("test_subset_seed", 0), ("threads", 1)):
        assert field not in RunConfig().identity()
        assert run_hash(RunConfig(**{field: value})) != base, field


def test_anogan_quick_settings_are_its_own():
    anogan, ganomaly = sweep_grid.build_grid("mnist", [0], [0], ["anogan", "ganomaly"], preset="quick")
    assert (anogan.eval_every, anogan.test_subset, anogan.test_subset_seed) == (0, 4000, 0)
    assert anogan.model_options == {"score_iterations": 50}
    assert (ganomaly.eval_every, ganomaly.test_subset, ganomaly.test_subset_seed) == (1, None, None)
    # A command-line setting still wins over the model's preset settings.
    (short,) = sweep_grid.build_grid("mnist", [0], [0], ["anogan"], preset="quick", overrides={"epochs": 1})
    assert short.epochs == 1 and short.test_subset == 4000


def test_parallel_jobs_split_the_cores_and_say_so():
    one, _ = runner.grid_of(["--dataset", "mnist", "--classes", "0", "--seeds", "0"])
    two, _ = runner.grid_of(["--dataset", "mnist", "--classes", "0", "--seeds", "0", "--jobs", "2"])
    assert one[0].threads is None
    assert two[0].threads == max(1, (os.cpu_count() or 1) // 2)
    with pytest.raises(ValueError, match="--jobs 0"):
        runner.grid_of(["--dataset", "mnist", "--classes", "0", "--jobs", "0"])


def test_eval_every_evaluates_the_due_epochs_and_the_last(data_dir):
    from ganomaly_tf.experiment import run

    base = smoke_grid(data_dir)[0].to_dict()
    result = run(RunConfig.from_dict({**base, "epochs": 3, "eval_every": 2, "deterministic": False}))
    history = result.record.history
    assert [h["epoch"] for h in history] == [1, 2, 3]  # every epoch's losses are kept
    assert ["auc" in h for h in history] == [False, True, True]
    assert result.record.evaluated_epochs == [2, 3]
    assert result.record.auc_last == history[-1]["auc"]
    assert result.record.best_epoch in (2, 3)
    assert np.isfinite(history[0]["g_loss"]) and history[0]["train_seconds"] > 0


def test_results_queue_lists_every_step_in_order(tmp_path, capsys):
    from benchmarks import queue

    assert queue.main(["--list", "--out", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(queue.STEPS)
    # The baselines' seed 0 first, AnoGAN first of all; then the paper schedule's seed 0.
    assert "anogan" in lines[0] and "--seeds 0" in lines[0] and "0/10" in lines[0]
    paper = [i for i, line in enumerate(lines) if "--preset paper" in line]
    assert all("--models" in line and "--seeds 0 --" in line for line in lines[: paper[0]])
    assert paper[1] == paper[0] + 1 and all("--seeds 0 --" in lines[i] for i in paper[:2])
    assert all(f"--out {tmp_path}" in line and "--all-classes" in line for line in lines)


def test_the_results_queue_regenerates_every_committed_run():
    """``make results`` on a fresh machine reproduces every run folder under results/ (same identity)."""
    from benchmarks import queue

    results = ROOT / "results"
    committed = {p.relative_to(results) for p in results.glob("*/*/*/runs/*") if not p.name.startswith(".")}
    queued = set()
    for _, options in queue.STEPS:
        grid, sweep = runner.grid_of(queue.step_argv(options, str(results), []))
        queued |= {RunFolder(sweep, config).final.relative_to(results) for config in grid}
    assert len(committed) > 100 and not committed - queued, sorted(committed - queued)[:5]


def test_results_queue_runs_what_is_left_and_passes_finished_steps_by(data_dir, tmp_path, monkeypatch, capsys):
    from benchmarks import queue

    step = ["--dataset", "mnist", "--models", "ae", "--seeds", "0", "--preset", "smoke"]
    monkeypatch.setattr(queue, "STEPS", [("AE smoke", step)])
    sweeps = []
    real_main = runner.main
    monkeypatch.setattr(runner, "main", lambda argv: sweeps.append(argv) or real_main(argv))
    argv = ["--out", str(tmp_path), "--data-dir", str(data_dir), "-q", "--time-limit", "1h"]
    assert queue.main(argv) == 0 and len(sweeps) == 1
    assert "--time-limit" in sweeps[0]  # what is left of the hour, in seconds
    assert len(pd.read_csv(sweep_dir(tmp_path, "mnist", "paper", "smoke") / "summary.csv")) == 10
    assert queue.main(argv) == 0 and len(sweeps) == 1  # a finished step is not loaded, run or reported again
    assert "all 10 runs finished" in capsys.readouterr().out


def test_a_nan_auc_is_a_failed_run_never_ok(data_dir, tmp_path, monkeypatch):
    import math

    from ganomaly_tf import experiment
    from ganomaly_tf.record import RunRecord

    def no_result(config, **kwargs):
        record = RunRecord("ok", config.model, config.dataset, config.protocol, 0, "0", 0, {}, auc_last=math.nan)
        return experiment.RunResult(record=record, scores=None, labels=None, origins=None)

    monkeypatch.setattr(experiment, "run", no_result)
    config = smoke_grid(data_dir)[0]
    sweep = tmp_path / "sweep"
    status, _ = execution.execute(sweep, config, "smoke", force=False, verbosity=0)
    assert status == "failed"
    record = json.loads((RunFolder(sweep, config).final / "result.json").read_text())
    assert record["status"] == "failed" and "AUC is nan" in record["error"]
    assert RunFolder(sweep, config).status() == "failed"  # a rerun redoes it


def test_validation_selected_epoch_is_recorded_and_reported(data_dir, tmp_path):
    """A smoke sweep with --val-fraction 0.1: held-out normals select an epoch without test labels."""
    argv = ["--dataset", "mnist", "--classes", "0", "--seeds", "0", "--preset", "smoke", "--epochs", "2"]
    argv += ["--val-fraction", "0.1", "--out", str(tmp_path), "--data-dir", str(data_dir)]
    assert runner.main(argv) == 0
    sweep = sweep_dir(tmp_path, "mnist", "paper", "smoke+epochs2+val0.1")
    (run_dir,) = [p for p in (sweep / "runs").iterdir() if p.is_dir() and not p.name.startswith(".")]
    record = json.loads((run_dir / "result.json").read_text())
    assert record["data"]["n_train"] + record["data"]["n_val"] == 256 and record["data"]["n_val"] == 26
    assert record["val_epoch"] in (1, 2) and "g_loss" in record["val_rule"] and "no test labels" in record["val_rule"]
    history = pd.read_csv(run_dir / "history.csv")
    chosen = history.loc[history["val_g_loss"].idxmin()]
    assert record["val_epoch"] == chosen["epoch"] and record["auc_val"] == pytest.approx(chosen["auc"])
    assert {"val_score_mean", "val_score_std"} <= set(history.columns)
    summary = pd.read_csv(sweep / "summary.csv")
    assert summary.loc[0, "auc_val"] == pytest.approx(record["auc_val"])
    text = (sweep / "best_vs_last.md").read_text()
    assert "| validation-selected (label-free) |" in text and "it recovers" in text


def test_held_out_normals_never_train(mnist):
    from ganomaly_tf.data import make_split
    from ganomaly_tf.data.splits import hold_out

    split = make_split(mnist, 4, seed=1)
    held = hold_out(split, 0.1, seed=1)
    assert len(held.x_val) == round(0.1 * len(split.x_train)) and len(held.x_train) + len(held.x_val) == len(
        split.x_train
    )
    assert not set(held.val_origin) & set(held.train_origin)
    assert not set(held.val_origin) & set(held.test_origin)  # normals, but not test images
    assert set(held.val_origin) <= set(split.train_origin)
    assert held.fingerprint != split.fingerprint and hold_out(split, 0.1, seed=1).fingerprint == held.fingerprint


def test_real_smoke_sweep_of_two_models_reports_their_statistics(data_dir, tmp_path):
    """End to end on real runs: a smoke sweep of GANomaly and the autoencoder, through the store, to
    the report's ranks, Wilcoxon–Holm table, critical-difference diagram and AUC-PR table."""
    argv = ["--dataset", "mnist", "--classes", "0", "1", "2", "--seeds", "0", "--models", "ganomaly", "ae"]
    assert runner.main([*argv, "--preset", "smoke", "--out", str(tmp_path), "--data-dir", str(data_dir)]) == 0
    sweep = sweep_dir(tmp_path, "mnist", "paper", "smoke")
    summary = pd.read_csv(sweep / "summary.csv")
    assert len(summary) == 6 and set(summary.status) == {"ok"} and summary.config_id.nunique() == 2
    text = (sweep / "model_comparison.md").read_text()
    assert "average rank over classes" in text and "| AE − GANomaly | 3 |" in text
    assert (sweep / "critical_difference.png").stat().st_size > 0
    pr = pd.read_csv(sweep / "auc_pr_last.csv")
    ok = summary.set_index(["model", "abnormal_class"])["auc_pr_last"]
    for row in pr[pr["n"] > 0].itertuples():  # the table lists classes 3-9 too, without runs
        assert row.mean == pytest.approx(ok[(row.model, row.abnormal_class)], abs=1e-6)  # the CSV keeps 6 digits
