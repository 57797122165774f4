"""What a new user meets: bad input stopped before any work with one named line, settings never
mixed, quiet logs, clean interrupts. Each case checks the exit code, the message and that nothing
was written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from benchmarks import presets, report
from benchmarks import run as runner
from ganomaly_tf import train
from ganomaly_tf.config import RunConfig
from ganomaly_tf.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ["--dataset", "mnist", "--classes", "0", "--seeds", "0", "--preset", "smoke", "--no-report"]


def one_line_error(capsys, call, prog: str) -> str:
    """Run ``call``; it must exit with 2 and print exactly one line, ``prog: error: ...``."""
    with pytest.raises(SystemExit) as e:
        call()
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"{prog}: error: "), err
    return err[0]


def nothing_written(folder: Path) -> bool:
    return not folder.exists() or not any(folder.rglob("*"))


@pytest.mark.parametrize(
    "options, says",
    [
        (["--epochs", "0"], "epochs 0: must be at least 1"),
        (["--batch-size", "0"], "batch_size 0: must be at least 1"),
        (["--seeds", "-1"], "seed -1: must be at least 0"),
        (["--jobs", "0"], "--jobs 0: need at least 1"),
        (["--train-subset", "10"], "train_subset 10: fewer training images than one batch of 32"),
        (["--classes", "11"], "unknown mnist class '11'"),
    ],
)
def test_sweep_options_are_checked_before_any_work(options, says, tmp_path, data_dir, capsys):
    argv = [*SMOKE, "--out", str(tmp_path / "out"), "--data-dir", str(data_dir), *options]
    line = one_line_error(capsys, lambda: runner.main(argv), "python -m benchmarks.run")
    assert says in line
    assert nothing_written(tmp_path / "out")


def test_a_split_smaller_than_a_batch_is_refused_for_the_whole_grid(tmp_path, data_dir, capsys):
    """One-class MNIST digit 0 trains on its 5,923 images: a batch of 6,000 does not fit, for either seed."""
    argv = [*SMOKE, "--protocol", "one-class", "--seeds", "0", "1", "--batch-size", "6000", "--train-subset", "0"]
    argv += ["--out", str(tmp_path / "out"), "--data-dir", str(data_dir)]
    line = one_line_error(capsys, lambda: runner.main(argv), "python -m benchmarks.run")
    assert "batch_size 6000" in line and "gives 5923 training images" in line and "1 more run" in line
    assert nothing_written(tmp_path / "out" / "mnist" / "one-class" / "smoke+batch6000+trainall")


def test_explicit_empty_data_dir_is_an_error_even_with_the_environment_set(tmp_path, data_dir, capsys, monkeypatch):
    monkeypatch.setenv("GANOMALY_DATA_DIR", str(data_dir))
    (tmp_path / "empty").mkdir()
    argv = [*SMOKE, "--out", str(tmp_path / "out"), "--data-dir", str(tmp_path / "empty")]
    line = one_line_error(capsys, lambda: runner.main(argv), "python -m benchmarks.run")
    assert f"data_dir {tmp_path / 'empty'}: no mnist files there" in line


@pytest.mark.parametrize("where", ["a_file", "under_a_file", "/proc/ganomaly-tf-test"])
def test_an_output_folder_that_cannot_be_written_is_refused_up_front(where, tmp_path, data_dir, capsys):
    (tmp_path / "a_file").write_text("not a folder")
    out = {"a_file": tmp_path / "a_file", "under_a_file": tmp_path / "a_file" / "results"}.get(where, Path(where))
    argv = [*SMOKE, "--out", str(out), "--data-dir", str(data_dir)]
    line = one_line_error(capsys, lambda: runner.main(argv), "python -m benchmarks.run")
    assert f"--out {out}: cannot create or write a folder there" in line
    assert (tmp_path / "a_file").read_text() == "not a folder"


def test_an_empty_shard_says_so_and_succeeds(tmp_path, data_dir, capsys):
    argv = [*SMOKE, "--shard", "1/2", "--out", str(tmp_path), "--data-dir", str(data_dir)]
    assert runner.main([a for a in argv if a != "--no-report"]) == 0
    captured = capsys.readouterr()
    assert "holds no runs: nothing to do" in captured.out and captured.err == ""
    assert nothing_written(tmp_path)


def test_preset_overrides_go_to_a_folder_of_their_own():
    _, plain = runner.grid_of(SMOKE)
    _, longer = runner.grid_of([*SMOKE, "--epochs", "2"])
    _, same = runner.grid_of([*SMOKE, "--epochs", "1"])  # the preset's own value: no new folder
    _, batch_bn = runner.grid_of([*SMOKE, "--bn-mode", "batch", "--jobs", "2"])
    assert plain.name == "smoke" and same == plain
    assert longer.name == "smoke+epochs2" and longer.parent == plain.parent
    assert batch_bn.name == f"smoke+bn-batch+threads{max(1, (os.cpu_count() or 1) // 2)}"
    # Every setting in a run's identity that a sweep's options can change names a folder of its own.
    _, dispatch = runner.grid_of([*SMOKE, "--steps-per-execution", "4", "--skip-unreadable"])
    assert dispatch.name == "smoke+steps4+skip-unreadable"
    assert presets.describe(dispatch.name).endswith(", but 4 batches a dispatch, unreadable image files left out")
    assert presets.describe("smoke+epochs2").endswith(", but 2 epochs")
    # A subset at least as large as the data leaves it whole, and the words say so.
    assert presets.describe("smoke") == "1 epoch on 256 training images, 600 test images, 8-filter networks"
    assert presets.describe("smoke", n_train=256, n_test=599) == presets.describe("smoke")
    assert presets.describe("smoke+epochs2", n_train=90, n_test=140).startswith("1 epoch on every training image, 8-")


def test_a_table_never_averages_two_configurations(tmp_path):
    """Runs of two configurations in one folder: the table takes one and says what it left out."""
    folder = tmp_path / "mnist" / "paper" / "smoke"
    rows = []
    for seed, (config_id, auc) in enumerate([("aaaa", 0.6), ("aaaa", 0.7), ("bbbb", 0.1)]):
        run_dir = folder / "runs" / f"ganomaly-c0-s{seed}"
        run_dir.mkdir(parents=True)
        row = {"dataset": "mnist", "protocol": "paper", "preset": "smoke", "model": "ganomaly", "abnormal_class": 0,
               "class_name": "0", "seed": seed, "status": "ok", "auc_last": auc, "auc_best": auc, "best_epoch": 1,
               "auc_pr_last": auc, "epochs": 1, "train_seconds": 1.0, "config_id": config_id,
               "run_dir": f"runs/ganomaly-c0-s{seed}"}  # fmt: skip
        (run_dir / "result.json").write_text(json.dumps(row))
        rows.append(row)
    pd.DataFrame(rows).to_csv(folder / "summary.csv", index=False)
    sweep = report.load_sweep(folder)
    stats = report.aggregate(sweep, "auc_last")
    cell = stats[stats["abnormal_class"] == 0].iloc[0]
    assert cell["n"] == 2 and cell["mean"] == pytest.approx(0.65)
    (note,) = sweep.notes
    assert "2 configurations of GANomaly" in note and "leave out 1 run(s)" in note
    assert note in report.auc_markdown(sweep, stats, "auc_last")


def test_config_errors_are_typed_in_the_python_api():
    for bad in ({"epochs": 0}, {"batch_size": 0}, {"seed": -1}, {"model": "x"}, {"threads": 0}, {"eval_every": -1}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            RunConfig(**bad)


@pytest.mark.parametrize(
    "options, says",
    [
        (["--abnormal-class", "dog"], "abnormal_class 'dog'"),
        (["--model", "x"], "argument --model: invalid choice: 'x'"),
        (["--epochs", "0"], "epochs 0"),
    ],
)
def test_train_cli_errors_are_one_line(options, says, capsys):
    line = one_line_error(capsys, lambda: train.main(options), "python -m ganomaly_tf.train")
    assert says in line


def test_train_cli_missing_data_dir(tmp_path, capsys):
    line = one_line_error(
        capsys, lambda: train.main(["--data-dir", str(tmp_path / "nowhere")]), "python -m ganomaly_tf.train"
    )
    assert f"data_dir {tmp_path / 'nowhere'}: no such folder" in line


@pytest.mark.parametrize("option, example", [("--output", "record.json"), ("--scores", "scores.npz")])
def test_train_checks_where_it_writes_before_training(option, example, tmp_path, monkeypatch, capsys):
    from ganomaly_tf import experiment

    monkeypatch.setattr(experiment, "run", lambda *a, **k: pytest.fail("trained before checking its outputs"))
    missing = tmp_path / "no" / example
    line = one_line_error(capsys, lambda: train.main([option, str(missing)]), "python -m ganomaly_tf.train")
    assert f"{option} {missing}: folder {missing.parent} does not exist; create it" in line
    line = one_line_error(capsys, lambda: train.main([option, str(tmp_path)]), "python -m ganomaly_tf.train")
    assert f"{option} {tmp_path}: a folder; give a file path, e.g. {tmp_path / example}" in line


def test_train_checks_its_model_file_before_training(tmp_path, monkeypatch, capsys):
    from ganomaly_tf import experiment

    monkeypatch.setattr(experiment, "run", lambda *a, **k: pytest.fail("trained before checking its outputs"))
    missing = tmp_path / "no" / "model.keras"
    line = one_line_error(capsys, lambda: train.main(["--save-model", str(missing)]), "python -m ganomaly_tf.train")
    assert f"--save-model {missing}: folder {missing.parent} does not exist; create it" in line


def test_train_without_arguments_says_what_it_will_do_first(data_dir, monkeypatch, capsys):
    monkeypatch.setenv("GANOMALY_DATA_DIR", str(data_dir))

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    from ganomaly_tf import experiment

    monkeypatch.setattr(experiment, "run", interrupted)
    line = one_line_error(capsys, lambda: train.main([]), "python -m ganomaly_tf.train")
    assert "interrupted; nothing was written" in line
    plan = train.plan(RunConfig(data_dir=str(data_dir)))
    assert plan.startswith("ganomaly on mnist, class 0, seed 0, paper split: 15 epoch(s) x 50,477 training images")
    assert "19,523 test images scored 15 time(s)" in plan and "min on a 2-core CPU" in plan
    # Held-out normals are not trained on: 50,477 less round(0.1 x 50,477) = 5,048.
    assert "x 45,429 training images" in train.plan(RunConfig(data_dir=str(data_dir), val_fraction=0.1))


def test_report_takes_a_results_root_and_names_a_missing_folder(tmp_path, capsys):
    from test_report import make_sweep

    for dataset in ("mnist", "cifar10"):
        make_sweep(tmp_path / "results", dataset=dataset, models=("ganomaly",))
    assert report.main([str(tmp_path / "results"), "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert out.count("Wrote ") == 2
    assert (tmp_path / "results" / "cifar10" / "paper" / "quick" / "auc_last.md").is_file()
    line = one_line_error(capsys, lambda: report.main([str(tmp_path / "nowhere")]), "python -m benchmarks.report")
    assert f"folder {tmp_path / 'nowhere'}: no such folder" in line


def test_ctrl_c_ends_a_sweep_with_one_line_and_no_noise(tmp_path, data_dir):
    """SIGINT during a real smoke sweep: exit 130, one line saying what finished and how to resume, no
    traceback, and none of TensorFlow's start-up lines. Ten runs, so that the sweep cannot finish between the
    first run's line and the signal on a loaded machine."""
    argv = [*SMOKE, "--classes", *"0123456789", "--out", str(tmp_path), "--data-dir", str(data_dir)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.run", *argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell's background job starts with SIGINT ignored, and so would the sweep: give it Ctrl-C.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 240
    lines = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if line.startswith("[1/10]") and ": ok" in line:  # the first run is finished
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (lines, out, err)
    err_lines = [line for line in err.splitlines() if line.strip()]
    assert len(err_lines) == 1 and err_lines[0].startswith("interrupted: "), err
    assert "of 10 runs finished" in err_lines[0] and "Resume: python -m benchmarks.run" in err_lines[0]
    noise = ("Traceback", "absl", "cuInit", "cuda drivers", "oneDNN", "use_unbounded_threadpool")
    assert not any(word in err + "".join(lines) + out for word in noise)


RETRACE_SIX_TIMES = """
import tensorflow as tf
from ganomaly_tf.cli import quiet_native_logs

quiet_native_logs()
f = tf.function(lambda x: x)
for i in range(6):  # each Python number is a new trace
    f(i)
"""


def test_tensorflows_retracing_warning_is_left_out_unless_debugging():
    """A sweep traces one new predict function a run, so TensorFlow warns of retracing every few runs."""
    for debug, expected in (("1", True), ("", False)):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "GANOMALY_DEBUG": debug}
        done = subprocess.run([sys.executable, "-c", RETRACE_SIX_TIMES], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert ("triggered tf.function retracing" in done.stderr) is expected, done.stderr


@pytest.mark.parametrize(
    "module, options, says",
    [
        ("throughput", ["--steps", "0"], "argument --steps: 0: must be at least 1"),
        ("throughput", ["--models", "x"], "argument --models: invalid choice: 'x'"),
        ("regress", ["--tolerance", "-1"], "argument --tolerance: -1.0: an AUC drop lies between 0 and 1"),
        ("regress", ["--threads", "0"], "argument --threads: 0: must be at least 1"),
        ("regress", ["--classes", "12"], "unknown mnist class '12'"),
        ("report", ["--metric", "mean"], "argument --metric: invalid choice: 'mean'"),
    ],
)
def test_every_tool_checks_its_options(module, options, says, capsys):
    import importlib

    tool = importlib.import_module(f"benchmarks.{module}")
    line = one_line_error(capsys, lambda: tool.main(options), f"python -m benchmarks.{module}")
    assert says in line
