"""GANomaly under tf.distribute: MirroredStrategy over two logical CPUs, MultiWorkerMirroredStrategy
over two local worker processes (docs/design.md, Backends and distribution).

Logical devices must be configured before TensorFlow initialises, so the strategies run in
fresh processes (tests/subprocess_jobs.py). The first test that needs one starts all three
(the mirrored run and both workers) at once, so they overlap; the tests check their reports.
"""

import json

import numpy as np
import pytest
from subprocess_jobs import Jobs, free_ports

from ganomaly_tf.backends.tensorflow import get_strategy
from ganomaly_tf.constants import STRATEGIES
from ganomaly_tf.data import preprocess


@pytest.fixture(scope="module")
def jobs(mnist, tmp_path_factory) -> Jobs:
    def start(jobs: Jobs) -> None:
        # 101 real MNIST test images: 16 for the one-step comparison, 64 to train, 37 to score.
        images = jobs.folder / "x.npy"
        np.save(images, preprocess(mnist.x_test[:101]))
        jobs.start_mode("mirrored", "mirrored", images)
        cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(2)]}
        for i in range(2):
            tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
            jobs.start_mode(f"worker{i}", "multi-worker", images, {"TF_CONFIG": tf_config})

    return Jobs(tmp_path_factory, "distribution-jobs").start_once(start)


@pytest.fixture(scope="module")
def mirrored(jobs) -> dict:
    return jobs.report("mirrored")


# -- strategies, in this process -------------------------------------------------------


def test_strategy_names():
    assert STRATEGIES == ("default", "mirrored", "multi-worker")
    with pytest.raises(ValueError, match="unknown strategy"):
        get_strategy("tpu")


def test_multi_worker_needs_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        get_strategy("multi-worker")


# -- MirroredStrategy over two logical CPUs --------------------------------------------


def test_two_replicas_equal_one_replica_sgd(mirrored):
    """One step at 2 x 8 images equals one step at 16 (sync BN): the replica gradients are summed
    by Keras and the TensorFlow backend's train_step divides each replica's mean loss by the replica count.

    Plain SGD (lr 0.5), so the update is proportional to the gradient: a missing or doubled
    1/replicas would move the weights by twice or half as much.
    """
    r = mirrored["sgd"]
    assert mirrored["replicas"] == 2 and mirrored["global_batch"] == 16
    assert r["update_max_abs"] > 0.1  # the step moved the weights by a lot ...
    assert r["trainable_max_abs_2_vs_1"] < 1e-5  # ... and the two runs agree on where to
    assert r["update_max_rel_2_vs_1"] < 1e-4
    assert r["moving_stats_max_abs_2_vs_1"] < 1e-5  # synchronised BN: global batch statistics
    for name, value in r["logs_1"].items():
        assert r["logs_2"][name] == pytest.approx(value, rel=1e-5, abs=1e-7), name


def test_two_replicas_equal_one_replica_adam_with_reinit(mirrored):
    """The paper's Adam, D re-initialisation forced: the same generator step, the same fresh D
    draws on every replica, counted once, Adam iterations counted once per step."""
    r = mirrored["adam_reinit"]
    assert r["g_update_max_abs"] > 1e-4
    assert r["g_max_abs_2_vs_1"] < 1e-5
    assert r["d_max_abs_2_vs_1"] == 0.0 and r["d_moved"] > 1e-2
    assert r["logs_1"]["d_reinits"] == 1.0 and r["logs_2"]["d_reinits"] == 1.0
    assert r["g_iterations_2"] == 1 and r["d_iterations_2"] == 1


def test_mirrored_fit_and_scores(mirrored):
    """A short fit (4 steps of 2 x 8 images) and scoring across the two replicas."""
    fit = mirrored["fit"]
    assert fit["replicas"] == 2 and fit["n_test"] == 37
    for key in ("sync_bn", "unsynced_bn"):
        r = fit[key]
        assert all(np.isfinite(v).all() for v in r["history"].values()), key
        scores = np.array(r["scores"])
        assert r["scores_dtype"] == "float32" and scores.shape == (37,), key
        assert np.isfinite(scores).all() and (scores >= 0).all(), key
    assert fit["unsynced_bn"]["g_iterations"] == 4
    # The sync-BN model continues the equivalence run (1 step, D re-initialised every step).
    r = fit["sync_bn"]
    assert r["g_iterations"] == 5 and r["history"]["d_reinits"] == [4.0]
    # Scored across two replicas (the last batch of 1 image padded) = the same weights on one
    # device, image for image, in order.
    np.testing.assert_allclose(r["scores"], r["plain_scores"], rtol=1e-5)
    # Synchronised BN keeps the replicas' moving statistics identical; batch-mode scoring restores them.
    assert r["moving_stats_replica_max_abs"] == 0.0
    assert np.isfinite(r["batch_scores"]).all() and r["moving_stats_unchanged_by_batch_scoring"]
    assert not np.allclose(r["batch_scores"], r["scores"])


def test_per_image_scoring_across_replicas_is_refused_with_the_fix(mirrored):
    """Batches of one image cannot split across two replicas: a clear error, and the run's build
    refuses the setting before training instead of failing at the first evaluation."""
    errors = mirrored["fit"]["per_image_errors"]
    assert errors["score"].startswith("ValueError: batch_size 1 leaves some of the 2 replicas without images")
    assert "single device" in errors["score"]
    assert errors["build"].startswith("ConfigError: bn_mode 'per-image'") and "strategy 'default'" in errors["build"]


def test_mirrored_unsynced_bn_first_replica_scores_match_one_device(mirrored):
    """Without sync BN, the images the first replica scored (the first 6 of each batch of 12)
    match the single-device copy, whose moving statistics are the first replica's."""
    r = mirrored["fit"]["unsynced_bn"]
    first = [i for i in range(37) if i % 12 < 6]
    np.testing.assert_allclose(np.array(r["scores"])[first], np.array(r["plain_scores"])[first], rtol=1e-5)
    assert r["moving_stats_replica_max_abs"] > 0  # the replicas' copies have drifted apart


@pytest.mark.xfail(
    strict=True,
    reason="Keras BN moving statistics have aggregation='none': without sync_bn each replica keeps "
    "its own copy, so an image's inference score depends on which replica scored it",
)
def test_mirrored_unsynced_bn_scores_match_one_device(mirrored):
    r = mirrored["fit"]["unsynced_bn"]
    assert np.isfinite(r["scores"]).all()
    np.testing.assert_allclose(r["scores"], r["plain_scores"], rtol=1e-4)


# -- MultiWorkerMirroredStrategy: two worker processes ---------------------------------


@pytest.mark.slow
def test_multi_worker_two_processes(jobs):
    """Two workers on 127.0.0.1 train the same model in lockstep and end with identical weights."""
    w0, w1 = jobs.report("worker0"), jobs.report("worker1")
    assert [w0["task"]["index"], w1["task"]["index"]] == [0, 1]
    assert w0["replicas"] == w1["replicas"] == 2
    assert w0["model"] == w1["model"]
    assert w0["g_iterations"] == w1["g_iterations"] == 64 // 16 * 2  # global batch 16, 2 epochs
    assert w0["weights_sha256"] == w1["weights_sha256"]  # sync BN: moving statistics agree too
    assert w0["history"] == w1["history"]
    assert all(np.isfinite(v).all() for v in w0["history"].values())
    assert w0["scores"] == w1["scores"] and len(w0["scores"]) == 37
    np.testing.assert_allclose(w0["scores"], w0["plain_scores"], rtol=1e-5)
    if w0["plain_fit_error"]:
        pytest.xfail(
            "Keras 3 fit() under MultiWorkerMirroredStrategy reduces the step's scalar logs with "
            "strategy.reduce(MEAN, axis=0) and fails (tensorflow/tensorflow#72388); the run above used "
            f"logs of shape (1,). Error: {w0['plain_fit_error'][:200]}"
        )
