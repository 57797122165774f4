"""Fresh-process jobs for the tests, and the tests' side of running them.

Some checks need a process of their own: logical CPU devices must be configured before
TensorFlow initialises, op determinism is process-wide, MultiWorkerMirroredStrategy needs one
process per worker. Run as a script this module is such a job::

    python tests/subprocess_jobs.py mirrored IMAGES.npy OUT.json
    python tests/subprocess_jobs.py multi-worker IMAGES.npy OUT.json   # with TF_CONFIG set
    python tests/subprocess_jobs.py experiment CONFIG.json OUT.json    # also writes OUT.npz

and writes a JSON report to OUT.json. Imported by a test module, :class:`Jobs` starts jobs in
the background in a folder shared by the pytest-xdist workers of one test run, once, and
waits for their reports, so no job runs twice whichever worker gets which test.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 600  # seconds per job, generous: the two cores are often shared; the job is killed after it

# -- the tests' side -----------------------------------------------------------------------


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Jobs:
    """A folder of background jobs: NAME.json (report), NAME.log, then NAME.rc (exit status)."""

    def __init__(self, tmp_path_factory, name: str):
        base = tmp_path_factory.getbasetemp()
        # pytest-xdist workers of one run share the parent of their base folders.
        self.folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / name
        self.folder.mkdir(exist_ok=True)

    def start_once(self, starter: Callable[[Jobs], None]) -> Jobs:
        """Call ``starter(self)`` unless some process of this test run already did."""
        with open(self.folder / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (self.folder / "started").exists():
                starter(self)
                (self.folder / "started").write_text("")
        return self

    def start(self, name: str, args: list[str], env: dict | None = None) -> None:
        """Run ``python ARGS`` in the repository root, in the background, killed after TIMEOUT."""
        log, rc = self.folder / f"{name}.log", self.folder / f"{name}.rc"
        script = (
            f"timeout -k 10 {TIMEOUT} {shlex.join([sys.executable, *args])} > {shlex.quote(str(log))} 2>&1; "
            f"echo $? > {shlex.quote(str(rc))}.tmp; mv {shlex.quote(str(rc))}.tmp {shlex.quote(str(rc))}"
        )
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
        subprocess.Popen(["bash", "-c", script], cwd=ROOT, env=env)

    def start_mode(self, name: str, mode: str, source: Path, env: dict | None = None) -> None:
        self.start(name, [__file__, mode, str(source), str(self.folder / f"{name}.json")], env)

    def wait(self, name: str) -> str:
        """Wait for a job to end; fail unless it exited 0; return its log."""
        import pytest

        rc_file = self.folder / f"{name}.rc"
        deadline = time.monotonic() + TIMEOUT + 30
        while not rc_file.exists():
            if time.monotonic() > deadline:
                pytest.fail(f"job {name}: no exit status after {TIMEOUT + 30} s")
            time.sleep(0.25)
        rc = int(rc_file.read_text())
        log = (self.folder / f"{name}.log").read_text()
        assert rc == 0, f"job {name} exited {rc} (124: timed out)\n{log[-5000:]}"
        return log

    def report(self, name: str) -> dict:
        self.wait(name)
        return json.loads((self.folder / f"{name}.json").read_text())


# -- the jobs ------------------------------------------------------------------------------

SMALL = {"filters": 8, "latent_dim": 16}


def weights_digest_of(arrays) -> str:
    h = hashlib.sha256()
    for w in arrays:
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


def weights_digest(model) -> str:
    return weights_digest_of(model.get_weights())


def max_abs_diff(a: list, b: list) -> float:
    return float(max(np.max(np.abs(p.astype(np.float64) - q.astype(np.float64))) for p, q in zip(a, b)))


def equivalence(x: np.ndarray):
    """One step on the same global batch: 2 replicas x b versus 1 replica x 2b, same initial weights.

    Returns the report and the two-replica model of the Adam run (sync BN), for ``mirrored_fit``.
    """
    from ganomaly_tf.backends.tensorflow import split_logical_cpus

    split_logical_cpus(2)
    import keras
    import tensorflow as tf

    from ganomaly_tf.backends.tensorflow import get_strategy
    from ganomaly_tf.models import GANomaly

    keras.utils.set_random_seed(0)
    two = get_strategy("mirrored")  # all local devices: the two logical CPUs
    default = tf.distribute.get_strategy()
    assert two.num_replicas_in_sync == 2
    reference = GANomaly(**SMALL, sync_bn=True)
    initial = reference.get_weights()
    ds = tf.data.Dataset.from_tensors(x)  # one global batch of 2b

    def step(strategy, optimizer: str, sync_bn: bool = True, threshold: float = 1e-5):
        with strategy.scope():
            model = GANomaly(**SMALL, sync_bn=sync_bn, d_reinit_threshold=threshold)
            model.set_weights(initial)
            if optimizer == "sgd":
                # Plain SGD: the update is proportional to the gradient, so a replica-count
                # scaling error shows (Adam's first step, ~lr * sign(g), would hide it).
                model.compile(keras.optimizers.SGD(0.5), keras.optimizers.SGD(0.5))
            else:
                model.default_compile()
        logs = model.fit(ds, epochs=1, shuffle=False, verbose=0).history
        return model, {k: float(v[-1]) for k, v in logs.items()}

    def trainable(model, net=None) -> list[np.ndarray]:
        return [v.numpy() for v in (net or model).trainable_variables]

    report: dict = {"global_batch": len(x), "replicas": two.num_replicas_in_sync}
    w0 = trainable(reference)
    # SGD, sync BN, default threshold (does not fire): every trainable weight compared.
    m1, logs1 = step(default, "sgd")
    m2, logs2 = step(two, "sgd")
    w1, w2 = trainable(m1), trainable(m2)
    report["sgd"] = {
        "update_max_abs": max_abs_diff(w0, w1),
        "trainable_max_abs_2_vs_1": max_abs_diff(w2, w1),
        "update_max_rel_2_vs_1": float(
            max(np.max(np.abs(c - b)) / max(np.max(np.abs(b - a)), 1e-12) for a, b, c in zip(w0, w1, w2))
        ),
        "moving_stats_max_abs_2_vs_1": max_abs_diff(
            [v.numpy() for v in m2.non_trainable_variables], [v.numpy() for v in m1.non_trainable_variables]
        ),
        "logs_1": logs1,
        "logs_2": logs2,
    }
    # Adam (the paper's optimiser) with D re-initialisation forced: the generator's update
    # and the discriminator's fresh draws must agree, and the re-initialisation counts once.
    m1, logs1 = step(default, "adam", threshold=1e9)
    m2, logs2 = step(two, "adam", threshold=1e9)
    report["adam_reinit"] = {
        "g_update_max_abs": max_abs_diff(
            [v.numpy() for v in reference.generator_variables], [v.numpy() for v in m1.generator_variables]
        ),
        "g_max_abs_2_vs_1": max_abs_diff(
            [v.numpy() for v in m2.generator_variables], [v.numpy() for v in m1.generator_variables]
        ),
        "d_max_abs_2_vs_1": max_abs_diff(trainable(m2, m2.discriminator), trainable(m1, m1.discriminator)),
        "d_moved": max_abs_diff(trainable(m2, m2.discriminator), trainable(reference, reference.discriminator)),
        "g_iterations_2": int(m2.g_optimizer.iterations.numpy()),
        "d_iterations_2": int(m2.d_optimizer.iterations.numpy()),
        "logs_1": logs1,
        "logs_2": logs2,
    }
    return report, m2


def mirrored_fit(x: np.ndarray, synced) -> dict:
    """A short fit and scoring under MirroredStrategy over two logical CPUs (after ``equivalence``).

    ``synced``: the two-replica sync-BN model of the equivalence run (its step function is
    already traced for 8 images per replica; it re-initialises D every step, which the checks
    here do not care about). Also a fresh model as ``experiment.run`` builds it (sync_bn off).
    """
    import keras

    from ganomaly_tf.backends.tensorflow import get_strategy, make_dataset
    from ganomaly_tf.models import GANomaly

    strategy = get_strategy("mirrored")  # the instance ``equivalence`` used: one per process
    assert strategy.num_replicas_in_sync == 2
    train, test = x[:64], x[64:]
    report: dict = {"replicas": strategy.num_replicas_in_sync, "n_test": len(test)}
    for sync_bn in (True, False):
        if sync_bn:
            model = synced
        else:
            keras.utils.set_random_seed(0)
            with strategy.scope():
                model = GANomaly(**SMALL)
                model.default_compile()
        history = model.fit(make_dataset(train, 16, shuffle=True, drop_remainder=True), epochs=1, verbose=0).history
        # 37 test images in batches of 12: the last batch (1 image) is smaller than the replica count.
        scores = model.score(test, batch_size=12)
        # The same weights on one device (what get_weights and save see: the first replica's copy).
        plain = GANomaly(**SMALL, sync_bn=sync_bn)
        plain.set_weights(model.get_weights())
        plain_scores = plain.score(test, batch_size=12)
        copies = [
            [np.asarray(c) for c in v.value.values] for v in model.non_trainable_variables
        ]  # per-replica copies of the BN moving statistics
        entry = {
            "history": {k: [float(v) for v in vs] for k, vs in history.items()},
            "g_iterations": int(model.g_optimizer.iterations.numpy()),
            "scores": scores.tolist(),
            "scores_dtype": str(scores.dtype),
            "plain_scores": plain_scores.tolist(),
            "moving_stats_replica_max_abs": float(max(np.max(np.abs(c[0] - c[1])) for c in copies)),
        }
        if sync_bn:
            entry["batch_scores"] = model.score(test, batch_size=32, bn_mode="batch").tolist()
            entry["moving_stats_unchanged_by_batch_scoring"] = all(
                np.array_equal(np.asarray(c), p)
                for v, cs in zip(model.non_trainable_variables, copies)
                for c, p in zip(v.value.values, cs)
            )
        report["sync_bn" if sync_bn else "unsynced_bn"] = entry
    report["per_image_errors"] = per_image_errors(synced, test)
    return report


def per_image_errors(model, test: np.ndarray) -> dict:
    """What per-image scoring (batches of one) says across two replicas: from the model, and from
    ``experiment.build`` before any training."""
    from ganomaly_tf import experiment
    from ganomaly_tf.config import RunConfig

    errors = {}
    calls = {
        "score": lambda: model.score(test[:3], bn_mode="per-image"),
        "build": lambda: experiment.build(RunConfig(strategy="mirrored", bn_mode="per-image", filters=8), 1),
    }
    for name, call in calls.items():
        try:
            call()
            errors[name] = None
        except Exception as e:  # the test reads the type and message
            errors[name] = f"{type(e).__name__}: {e}"
    return errors


def mirrored(x: np.ndarray) -> dict:
    start = time.perf_counter()
    report, synced = equivalence(x[:16])
    report["equivalence_seconds"] = time.perf_counter() - start
    report["fit"] = mirrored_fit(x, synced)
    report["fit_seconds"] = time.perf_counter() - start - report["equivalence_seconds"]
    return report


def multi_worker(x: np.ndarray) -> dict:
    """One worker of a MultiWorkerMirroredStrategy cluster (TF_CONFIG): a tiny fit, then scoring.

    First the project's own model, as ``experiment.run`` would train it; if Keras's ``fit``
    rejects its scalar logs under this strategy (tensorflow/tensorflow#72388: Keras 3 reduces
    step outputs with ``strategy.reduce(MEAN, v, axis=0)`` there), the error is recorded and
    the run is repeated with the logs given a length-1 axis, so the rest is still checked.
    """
    import keras
    import tensorflow as tf

    from ganomaly_tf.backends.tensorflow import get_strategy, make_dataset
    from ganomaly_tf.models import GANomaly

    class VectorLogsGANomaly(GANomaly):
        def update_trackers(self, losses: dict) -> dict:
            return {k: tf.reshape(v, [1]) for k, v in super().update_trackers(losses).items()}

    strategy = get_strategy("multi-worker")
    train, test = x[:64], x[64:]
    report: dict = {"task": json.loads(os.environ["TF_CONFIG"])["task"], "replicas": strategy.num_replicas_in_sync}
    for cls in (GANomaly, VectorLogsGANomaly):
        keras.utils.set_random_seed(0)
        with strategy.scope():
            model = cls(**SMALL, sync_bn=True)
            model.default_compile()
        try:
            history = model.fit(make_dataset(train, 16, drop_remainder=True), epochs=2, verbose=0).history
        except ValueError as e:
            report["plain_fit_error"] = str(e).splitlines()[0][:400]
            continue
        report.setdefault("plain_fit_error", None)
        break
    report["model"] = cls.__name__
    scores = model.score(test, batch_size=12)
    plain = GANomaly(**SMALL, sync_bn=True)
    plain.set_weights(model.get_weights())
    report.update(
        history={k: [float(v) for v in vs] for k, vs in history.items()},
        g_iterations=int(model.g_optimizer.iterations.numpy()),
        weights_sha256=weights_digest(model),
        trainable_sha256=weights_digest_of([v.numpy() for v in model.trainable_variables]),
        scores=scores.tolist(),
        plain_scores=plain.score(test, batch_size=12).tolist(),
    )
    return report


def experiment(config: dict, out: Path) -> dict:
    """``experiment.run`` on a config (JSON); the record, plus scores/labels/origins in OUT.npz."""
    from ganomaly_tf.config import RunConfig
    from ganomaly_tf.experiment import run

    result = run(RunConfig.from_dict(config), keep_model=False)
    np.savez(out.with_suffix(".npz"), scores=result.scores, labels=result.labels, origins=result.origins)
    return {**result.record.to_json(), "history": result.record.history}


def main(argv: list[str]) -> int:
    mode, source, out = argv
    if mode == "experiment":
        report = experiment(json.loads(Path(source).read_text()), Path(out))
    else:
        report = {"mirrored": mirrored, "multi-worker": multi_worker}[mode](np.load(source))
    import resource

    from ganomaly_tf import atomic

    usage = resource.getrusage(resource.RUSAGE_SELF)
    report["job_cpu_seconds"] = usage.ru_utime + usage.ru_stime
    atomic.write_json(out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
