"""experiment.run and the CLI: determinism across fresh processes, the run record, bn_mode.

Op determinism is process-wide, so the deterministic runs and the CLI run in fresh processes
(tests/subprocess_jobs.py), all started at once; the in-process run uses deterministic=False.
"""

import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score
from subprocess_jobs import Jobs

from ganomaly_tf.callbacks import score_test_set
from ganomaly_tf.config import RunConfig
from ganomaly_tf.data import preprocess
from ganomaly_tf.experiment import prepare_split, run

TINY = {
    "train_subset": 256,
    "test_subset": 400,
    "epochs": 2,
    "batch_size": 32,
    "filters": 8,
    "latent_dim": 16,
}
LOSSES = ("g_loss", "adv_loss", "con_loss", "enc_loss", "d_loss", "d_reinits")


def small_counts(nc: int = 1, nz: int = 16, f: int = 8) -> dict:
    """Trainable parameters from the layer shapes (docs/design.md, Networks); see tests/test_ganomaly.py."""
    body = 16 * nc * f + 16 * f * 2 * f + 4 * f + 16 * 2 * f * 4 * f + 8 * f
    decoder = 16 * nz * 4 * f + 8 * f + 16 * 4 * f * 2 * f + 4 * f + 16 * 2 * f * f + 2 * f + 16 * f * nc
    return {"generator": 2 * (body + 16 * 4 * f * nz) + decoder, "discriminator": body + 16 * 4 * f}


@pytest.fixture(scope="module")
def config(data_dir) -> dict:
    return RunConfig(**TINY, data_dir=str(data_dir)).to_dict()


@pytest.fixture(scope="module")
def jobs(config, data_dir, tmp_path_factory) -> Jobs:
    def start(jobs: Jobs) -> None:
        path = jobs.folder / "config.json"
        path.write_text(json.dumps(config))
        for name in ("run_a", "run_b"):
            jobs.start_mode(name, "experiment", path)
        cli = ["--data-dir", str(data_dir), "--train-subset", "128", "--test-subset", "300", "--epochs", "1"]
        out = ["--output", str(jobs.folder / "cli.json"), "--scores", str(jobs.folder / "cli.npz")]
        jobs.start("cli", ["-m", "ganomaly_tf.train", *cli, *out])

    return Jobs(tmp_path_factory, "experiment-jobs").start_once(start)


@pytest.fixture(scope="module")
def runs(jobs) -> list[tuple[dict, dict]]:
    """The two identical deterministic runs: (record, arrays) each."""
    out = []
    for name in ("run_a", "run_b"):
        record = jobs.report(name)
        with np.load(jobs.folder / f"{name}.npz") as z:
            out.append((record, {k: z[k] for k in z.files}))
    return out


@pytest.mark.usefixtures("jobs")  # start the subprocesses first: they overlap with this run
def test_batch_bn_mode_in_process(data_dir):
    """bn_mode="batch" is recorded, and the stored scores are the per-batch-statistics scores."""
    config = RunConfig(
        **{**TINY, "train_subset": 128, "test_subset": 200, "epochs": 1},
        bn_mode="batch",
        deterministic=False,  # op determinism would stay on for the rest of this process
        data_dir=str(data_dir),
    )
    result = run(config)
    record = result.record
    assert record.bn_mode == "batch" and record.config["bn_mode"] == "batch"
    assert record.environment["deterministic"] is False
    assert result.scores.shape == (200,) and np.isfinite(result.scores).all()
    assert record.auc_last == roc_auc_score(result.labels, result.scores)
    split, _ = prepare_split(config)
    x_test = preprocess(split.x_test)
    np.testing.assert_array_equal(split.y_test, result.labels)
    # Scored as the official code's MNIST test loader fed it: shuffled batches of the training batch
    # size, batch statistics; the scores come back in the split's order.
    again = score_test_set(result.model, x_test, config, epoch=1)
    np.testing.assert_allclose(result.scores, again, rtol=1e-5)
    in_order = result.model.score(x_test, batch_size=config.batch_size, bn_mode="batch")
    assert not np.allclose(result.scores, in_order, rtol=1e-3)  # other batch-mates, other scores
    inference = result.model.score(x_test, batch_size=config.batch_size)
    assert not np.allclose(result.scores, inference, rtol=1e-3)


def test_run_rejects_bad_options(data_dir):
    with pytest.raises(ValueError, match="bn_mode"):
        run(RunConfig(bn_mode="eval", data_dir=str(data_dir)))
    with pytest.raises(ValueError, match="unknown run option"):
        RunConfig.from_dict({"epochs": 1, "epoch": 2})
    with pytest.raises(ValueError, match="fewer training images than one batch"):
        run(RunConfig(**{**TINY, "train_subset": 16}, deterministic=False, data_dir=str(data_dir)))


def test_deterministic_across_processes(runs):
    (rec_a, arr_a), (rec_b, arr_b) = runs
    for key in ("scores", "labels", "origins"):
        assert np.array_equal(arr_a[key], arr_b[key]), key
    assert arr_a["scores"].dtype == np.float32
    assert rec_a["auc_last"] == rec_b["auc_last"] and rec_a["auc_best"] == rec_b["auc_best"]
    assert rec_a["best_epoch"] == rec_b["best_epoch"]
    for ha, hb in zip(rec_a["history"], rec_b["history"], strict=True):
        for key in (*LOSSES, "auc", "auc_pr"):
            assert ha[key] == hb[key], key
    assert rec_a["data"] == rec_b["data"]


def test_record(runs, config):
    record, arrays = runs[0]
    for key in ("auc_last", "auc_best", "best_epoch", "auc_pr_last", "history", "params", "environment", "config"):
        assert key in record, key
    assert record["status"] == "ok" and record["model"] == "ganomaly" and record["dataset"] == "mnist"
    assert record["bn_mode"] == "inference" and "optimistic" in record["best_is"]
    assert record["config"] == config
    assert record["params"] == small_counts()
    assert record["epochs"] == 2 and [h["epoch"] for h in record["history"]] == [1, 2]
    for h in record["history"]:
        for key in (*LOSSES, "auc", "auc_pr", "train_seconds", "score_seconds"):
            assert np.isfinite(h[key]), key
        assert h["train_seconds"] > 0 and h["score_seconds"] > 0
        assert h["g_loss"] > 0 and h["d_loss"] > 0
    aucs = [h["auc"] for h in record["history"]]
    assert record["auc_last"] == aucs[-1]
    assert record["auc_best"] == max(aucs) and aucs[record["best_epoch"] - 1] == max(aucs)
    assert record["auc_pr_last"] == record["history"][-1]["auc_pr"]
    assert record["train_images_per_s"] > 0 and record["score_images_per_s"] > 0
    env = record["environment"]
    for key in ("python", "numpy", "keras", "tensorflow", "backend", "device", "dtype_policy", "git_commit"):
        assert key in env, key
    assert env["backend"] == "tensorflow" and env["device"] == "CPU"
    assert env["replicas"] == 1 and env["deterministic"] is True and env["dtype_policy"] == "float32"
    data = record["data"]
    assert data["n_train"] == 256 and data["n_test_normal"] + data["n_test_abnormal"] == 400
    # The saved arrays are the last epoch's scores of the whole test set: AUCs recompute from them.
    scores, labels = arrays["scores"], arrays["labels"]
    assert scores.shape == labels.shape == arrays["origins"].shape == (400,)
    assert int(labels.sum()) == data["n_test_abnormal"]
    assert roc_auc_score(labels, scores) == pytest.approx(record["auc_last"], abs=1e-12)
    assert average_precision_score(labels, scores) == pytest.approx(record["auc_pr_last"], abs=1e-12)


def test_cli(jobs):
    log = jobs.wait("cli")
    record = json.loads((jobs.folder / "cli.json").read_text())
    assert record["config"]["epochs"] == 1 and record["config"]["train_subset"] == 128
    assert record["config"]["compile_options"] == {"w_adv": 1.0, "w_con": 50.0, "w_enc": 1.0}
    assert record["params"] == {"generator": 3200384, "discriminator": 661248}  # the CLI trains the paper's size
    assert record["data"]["n_train"] == 128
    assert len(record["history"]) == 1
    with np.load(jobs.folder / "cli.npz") as z:
        assert z["scores"].shape == z["labels"].shape == z["origins"].shape == (300,)
        assert np.isfinite(z["scores"]).all()
        assert roc_auc_score(z["labels"], z["scores"]) == pytest.approx(record["auc_last"], abs=1e-12)
    summary = json.loads([line for line in log.splitlines() if line.startswith('{"auc_last"')][-1])
    assert summary["auc_last"] == record["auc_last"]


def test_threads_are_applied_first_or_refused():
    """A thread count is applied before TensorFlow starts; a different one later is an error."""
    import subprocess
    import sys

    code = (
        "import tensorflow as tf\n"
        "from ganomaly_tf.reproducibility import set_threads\n"
        "set_threads(1)\n"
        "assert tf.config.threading.get_intra_op_parallelism_threads() == 1\n"
        "assert tf.config.threading.get_inter_op_parallelism_threads() == 1\n"
        "tf.constant(1.0) + 1.0\n"
        "set_threads(1)  # the same count again is fine\n"
        "try:\n"
        "    set_threads(2)\n"
        "except ValueError as e:\n"
        "    print('refused:', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "refused: threads=2" in out and "start a new process" in out
