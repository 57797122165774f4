"""The JAX training path against the TensorFlow one (issue 8), on the CPU with tiny networks.

One process has one Keras backend: the tests run under TensorFlow and start this file as a
script under ``KERAS_BACKEND=jax`` (with two logical CPU devices and TensorFlow made
unimportable, as on a machine without it); the two sides exchange weights, batches, losses and
scores through ``.npz`` files. Starting from the same weights and batches, both must give the
same losses, weights, optimiser state and scores within float32 tolerance.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

SMALL = {"image_size": 16, "channels": 1, "latent_dim": 8, "filters": 4, "seed": 3}
BATCH = 4
FIT_STEPS = 4  # after the first step; run with steps_per_execution=3: one scan of 3, then one step
N_TEST = 11  # scored in batches of 8: the last batch (3) does not split over 2 devices evenly
ALWAYS_REINIT = 1e9  # a D-loss threshold every step falls below
RUN_TRAIN, RUN_TEST = 18, 60  # experiment.run: 4 batches of 4 (2 images dropped), ~60 test images
# float32 tolerances.
LOSS_RTOL = 1e-5
WEIGHT_ATOL = 1e-5
OPTIMISER_RTOL = 1e-4  # of each array's largest magnitude
SCORE_RTOL, SCORE_ATOL = 1e-4, 1e-9


def _inputs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    size = SMALL["image_size"]
    images = np.tanh(rng.normal(size=((1 + FIT_STEPS) * BATCH + N_TEST, size, size, 1))).astype(np.float32)
    return images[: (1 + FIT_STEPS) * BATCH], images[(1 + FIT_STEPS) * BATCH :]


def _optimizer_values(model) -> list[np.ndarray]:
    return [np.asarray(v.numpy()) for opt in model.training_optimizers() for v in opt.variables]


def _pack(prefix: str, arrays: list) -> dict:
    return {f"{prefix}{i}": np.asarray(a) for i, a in enumerate(arrays)}


def _unpack(npz, prefix: str) -> list[np.ndarray]:
    n = sum(1 for k in npz.files if k.startswith(prefix) and k[len(prefix) :].isdigit())
    return [npz[f"{prefix}{i}"] for i in range(n)]


def _logs(logs: dict) -> dict:
    return {k: float(np.asarray(v).reshape(-1)[-1]) for k, v in logs.items()}


# -- the JAX side (this file run as a script) --------------------------------------------------


def _block_tensorflow() -> None:
    """Make TensorFlow look uninstalled: ``import tensorflow`` raises ModuleNotFoundError and
    ``importlib.util.find_spec("tensorflow")`` returns None (a None entry in ``sys.modules``)."""
    sys.modules["tensorflow"] = None  # type: ignore[assignment]


def _tensorflow_imported() -> bool:
    return any(m is not None and name.split(".")[0] == "tensorflow" for name, m in sys.modules.items())


def jax_worker(inputs: Path, out: Path, data_dir: str) -> None:  # pragma: no cover - runs in a child
    _block_tensorflow()
    import jax

    # Identical computations of different models (the data-parallel step and experiment.run's)
    # compile once: XLA's persistent cache, keyed by the computation, in this test's folder.
    jax.config.update("jax_compilation_cache_dir", str(out / "xla-cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    import keras

    from ganomaly_tf.backends import active
    from ganomaly_tf.experiment import RunConfig, run
    from ganomaly_tf.models import GANomaly

    assert keras.backend.backend() == "jax" and len(jax.devices()) == 2, (keras.backend.backend(), jax.devices())
    inp = np.load(inputs)
    init, train, test = _unpack(inp, "w"), inp["train"], inp["test"]
    info: dict = {"steps_module": active().__name__, "seconds": {}, "cpu_seconds": {}}
    t, cpu = time.perf_counter(), time.process_time()

    def lap(name):
        nonlocal t, cpu
        info["seconds"][name] = round(time.perf_counter() - t, 2)
        info["cpu_seconds"][name] = round(time.process_time() - cpu, 2)
        t, cpu = time.perf_counter(), time.process_time()

    def model(steps_per_execution=3, **kwargs):
        m = GANomaly(**SMALL, **kwargs)
        m.default_compile(steps_per_execution=steps_per_execution)
        m.set_weights(init)
        return m

    # Steps: one train_on_batch, then fit with 3 batches per dispatch; scores in both BN modes.
    m = model()
    res = {"logs1": json.dumps(_logs(m.train_on_batch(train[:BATCH], return_dict=True)))}
    res.update(_pack("w1_", m.get_weights()) | _pack("o1_", _optimizer_values(m)))
    lap("first step (compile)")
    history = m.fit(train[BATCH:], batch_size=BATCH, shuffle=False, epochs=1, verbose=0).history
    res["fit_logs"] = json.dumps(_logs(history))
    res.update(_pack("w5_", m.get_weights()) | _pack("o5_", _optimizer_values(m)))
    lap("fit, steps_per_execution=3 (compile)")
    res["scores"] = m.score(test, batch_size=N_TEST)
    res["scores_batch"] = m.score(test, batch_size=N_TEST, bn_mode="batch")
    res.update(_pack("w5after_", m.get_weights()))
    lap("scores (compile)")

    # The re-initialisation rule, forced: every step's D loss is below the threshold.
    m = model(d_reinit_threshold=ALWAYS_REINIT)
    res["reinit_logs"] = json.dumps(_logs(m.train_on_batch(train[:BATCH], return_dict=True)))
    res.update(_pack("rw_", m.get_weights()) | _pack("ro_", _optimizer_values(m)))
    # The rule's draws after the first update: variable i from (seed * 1000 + i, step 1).
    targets = m.discriminator_reinit_targets()
    draws = [
        mean + std * active().replicated_normal(v.shape, m.seed * 1000 + i, 1)
        for i, (v, mean, std) in enumerate(targets)
    ]
    res.update(_pack("rdraw_", draws))
    lap("re-initialisation step (compile)")

    # Data parallel over two devices: two steps in one dispatch, each batch split across them.
    distribution = keras.distribution.DataParallel(devices=jax.devices())
    with distribution.scope():
        m = model(steps_per_execution=2)
        history = m.fit(train[: 2 * BATCH], batch_size=BATCH, shuffle=False, epochs=1, verbose=0).history
        res["dp_logs"] = json.dumps(_logs(history))
        res.update(_pack("dpw_", m.get_weights()) | _pack("dpo_", _optimizer_values(m)))
        sharding = m.trainable_variables[0].value.sharding
        info["dp_sharding"] = f"{type(sharding).__name__} {sharding.spec}"
        lap("data-parallel fit, steps_per_execution=2 (compile)")
        res["dp_scores"] = m.score(test, batch_size=8)  # 8, then 3 padded to 4
        lap("data-parallel scores (compile)")

    # A whole run through experiment.run: NumPy batches, DataParallel over both devices. Same
    # shapes and settings as the data-parallel model above, so its computations come from the cache.
    config = RunConfig(
        dataset="mnist",
        seed=SMALL["seed"],
        epochs=1,
        batch_size=BATCH,
        train_subset=RUN_TRAIN,
        test_subset=RUN_TEST,
        image_size=SMALL["image_size"],
        latent_dim=SMALL["latent_dim"],
        filters=SMALL["filters"],
        score_batch_size=8,
        steps_per_execution=2,
        data_dir=data_dir,
    )
    result = run(config)
    keras.distribution.set_distribution(None)
    info["record"] = {k: getattr(result.record, k) for k in ("environment", "history", "data", "train_images_per_s")}
    info["steps_run"] = int(result.model.g_optimizer.iterations.numpy())
    info["n_scores"] = len(result.scores)
    lap("experiment.run")
    info["tensorflow_imported"] = _tensorflow_imported()
    np.savez(out / "jax.npz", **res)
    (out / "jax.json").write_text(json.dumps(info, default=str))


# -- the baselines: the same procedure on both sides ---------------------------------------------

#: model options of the baseline comparison. EGBAD without dropout: the backends draw different
#: dropout masks (by design, like the training noise below), which would hide everything else.
BASELINES = {"ae": {}, "vae": {}, "anogan": {"score_iterations": 5}, "egbad": {"dropout": 0.0}}


def fixed_noise(model, shape, step, stream: int = 0):
    """Stands in for the backends' training noise (their ``standard_normal``):
    those come from different random generators by design, so both sides get this instead, a
    function of the step alone, and every other difference stays visible."""
    from keras import ops

    grid = ops.reshape(ops.arange(BATCH * SMALL["latent_dim"], dtype="float32"), (BATCH, SMALL["latent_dim"]))
    return ops.sin(grid * 0.37 + ops.cast(step, "float32") * 1.3)


def baseline_model(name: str, weights: list | None = None):
    from ganomaly_tf.models.registry import build_model

    m = build_model(name, **SMALL, **BASELINES[name])
    m.default_compile(steps_per_execution=3)
    if weights is not None:
        m.set_weights(weights)
    return m


def baseline_steps(name: str, weights: list, train: np.ndarray, test: np.ndarray) -> dict:
    """One train_on_batch, then fit over 4 batches (a scan of 3, one step), then scores."""
    m = baseline_model(name, weights)
    out = {"logs1": _logs(m.train_on_batch(train[:BATCH], return_dict=True))}
    out["w1"], out["o1"] = m.get_weights(), _optimizer_values(m)
    out["fit_logs"] = _logs(m.fit(train[BATCH:], batch_size=BATCH, shuffle=False, epochs=1, verbose=0).history)
    out["w5"], out["o5"] = m.get_weights(), _optimizer_values(m)
    # "adam/dense_kernel_momentum" -> "adam momentum"
    out["o_kinds"] = [f"{o.name} {v.path.rsplit('_', 1)[-1]}" for o in m.training_optimizers() for v in o.variables]
    out["scores"] = m.score(test, batch_size=N_TEST)
    out["scores_batch"] = m.score(test, batch_size=N_TEST, bn_mode="batch")
    return out


def _save_baselines(path: Path, results: dict) -> None:
    arrays = {}
    for name, r in results.items():
        arrays[f"{name}.logs"] = json.dumps({"logs1": r["logs1"], "fit_logs": r["fit_logs"]})
        arrays[f"{name}.scores"], arrays[f"{name}.scores_batch"] = r["scores"], r["scores_batch"]
        for key in ("w1", "o1", "w5", "o5"):
            arrays.update(_pack(f"{name}.{key}_", r[key]))
    np.savez(path, **arrays)


def _load_baselines(path: Path) -> dict:
    npz = np.load(path)
    results = {}
    for name in BASELINES:
        r = json.loads(str(npz[f"{name}.logs"]))
        r["scores"], r["scores_batch"] = npz[f"{name}.scores"], npz[f"{name}.scores_batch"]
        r.update({key: _unpack(npz, f"{name}.{key}_") for key in ("w1", "o1", "w5", "o5")})
        results[name] = r
    return results


def jax_baselines_worker(inputs: Path, out: Path) -> None:  # pragma: no cover - runs in a child
    _block_tensorflow()
    from ganomaly_tf.backends import active

    active().standard_normal = fixed_noise  # the module's train_step draws through this name
    inp = np.load(inputs)
    results = {name: baseline_steps(name, _unpack(inp, f"{name}.w"), inp["train"], inp["test"]) for name in BASELINES}
    _save_baselines(out / "jax_baselines.npz", results)
    # EGBAD with its dropout (0.5): the masks' seed state rides in the non-trainable state.
    from ganomaly_tf.models import EGBAD

    m = EGBAD(**SMALL)
    m.default_compile(steps_per_execution=2)
    seeds_before = [np.asarray(v.numpy()).tolist() for v in m.non_trainable_variables if "seed" in v.path]
    history = m.fit(inp["train"][: 2 * BATCH], batch_size=BATCH, shuffle=False, verbose=0).history
    seeds_after = [np.asarray(v.numpy()).tolist() for v in m.non_trainable_variables if "seed" in v.path]
    info = {
        "tensorflow_imported": _tensorflow_imported(),
        "dropout_logs": _logs(history),
        "dropout_seed_states": [seeds_before, seeds_after],
    }
    (out / "jax_baselines.json").write_text(json.dumps(info))


# -- the TensorFlow side --------------------------------------------------------------------


@contextlib.contextmanager
def jax_worker_running(args: list[str], log_path: Path, timeout: float = 600):
    """Runs this file as a script under KERAS_BACKEND=jax with two CPU devices while the body
    runs (the TensorFlow side), then waits for it; it must succeed."""
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2".strip(),
        "PYTHONPATH": os.pathsep.join(p for p in (str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH")) if p),
    }
    with open(log_path, "w") as log:  # a file, not a pipe: the worker never waits on this side
        worker = subprocess.Popen([sys.executable, __file__, *args], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield
            worker.wait(timeout=timeout)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    assert worker.returncode == 0, f"JAX worker failed:\n{log_path.read_text()[-6000:]}"


@pytest.fixture(scope="module")
def sides(tmp_path_factory, data_dir):
    """Run the JAX worker and the same computations on TensorFlow; return both sides' results."""
    import keras

    from ganomaly_tf.models import GANomaly

    if keras.backend.backend() != "tensorflow":
        pytest.skip("the reference side runs on the TensorFlow backend")
    pytest.importorskip("jax")
    tmp = tmp_path_factory.mktemp("jax")
    train, test = _inputs()
    keras.utils.set_random_seed(SMALL["seed"])
    reference = GANomaly(**SMALL)
    reference.default_compile()
    init = reference.get_weights()
    np.savez(tmp / "inputs.npz", train=train, test=test, **_pack("w", init))

    tf: dict = {}
    with jax_worker_running([str(tmp / "inputs.npz"), str(tmp), str(data_dir)], tmp / "worker.log"):
        m = reference
        tf["logs1"] = _logs(m.train_on_batch(train[:BATCH], return_dict=True))
        tf["w1"], tf["o1"] = m.get_weights(), _optimizer_values(m)
        tf["fit_logs"] = _logs(m.fit(train[BATCH:], batch_size=BATCH, shuffle=False, epochs=1, verbose=0).history)
        tf["w5"], tf["o5"] = m.get_weights(), _optimizer_values(m)
        tf["scores"] = m.score(test, batch_size=N_TEST)
        tf["scores_batch"] = m.score(test, batch_size=N_TEST, bn_mode="batch")

        m = GANomaly(**SMALL, d_reinit_threshold=ALWAYS_REINIT)
        m.default_compile()
        m.set_weights(init)
        tf["reinit_logs"] = _logs(m.train_on_batch(train[:BATCH], return_dict=True))
        tf["rw"], tf["ro"] = m.get_weights(), _optimizer_values(m)
        d_weights = {id(v) for v in m.discriminator.weights}
        tf["d_index"] = [i for i, v in enumerate(m.weights) if id(v) in d_weights]
        tf["d_paths"] = [v.path for v in m.discriminator.trainable_variables]
        tf["d_trainable_index"] = [
            next(i for i, w in enumerate(m.weights) if w is v) for v in m.discriminator.trainable_variables
        ]

        m = GANomaly(**SMALL)
        m.default_compile()
        m.set_weights(init)
        tf["two_logs"] = _logs(m.fit(train[: 2 * BATCH], batch_size=BATCH, shuffle=False, verbose=0).history)
        tf["w2"], tf["o2"] = m.get_weights(), _optimizer_values(m)
        tf["scores2"] = m.score(test, batch_size=N_TEST)
    npz = np.load(tmp / "jax.npz")
    jx = {
        **{k: json.loads(str(npz[k])) for k in ("logs1", "fit_logs", "reinit_logs", "dp_logs")},
        **{k: npz[k] for k in ("scores", "scores_batch", "dp_scores")},
        **{k: _unpack(npz, f"{k}_") for k in ("w1", "o1", "w5", "o5", "w5after", "rw", "ro", "rdraw", "dpw", "dpo")},
        "info": json.loads((tmp / "jax.json").read_text()),
    }
    return tf, jx


def _max_error(a: list, b: list) -> float:
    """The largest absolute difference over lists of arrays."""
    assert len(a) == len(b)
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)))) for x, y in zip(a, b))


def _max_relative_error(a: list, b: list) -> float:
    """The largest difference of each array pair relative to the array's largest magnitude
    (elementwise relative errors blow up where a gradient almost cancels)."""
    return _max_relative_error_by_kind(a, b, list(range(len(a))))  # each array a kind of its own


def _max_relative_error_by_kind(a: list, b: list, kinds: list) -> float:
    """The largest difference of each array pair relative to the largest magnitude among the
    arrays of its kind (say, every Adam momentum of one optimiser). Needed where a whole array
    is a sum that cancels: a lone bias of a logit whose gradient is a sum of terms ~0.1 that
    cancel to ~1e-5 differs between the backends by float32 rounding of the terms (~1e-8)."""
    assert len(a) == len(b) == len(kinds)
    scale: dict = {}
    for x, kind in zip(a, kinds):
        scale[kind] = max(scale.get(kind, 1e-30), float(np.max(np.abs(np.asarray(x, np.float64)))))
    return max(
        float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)))) / scale[kind]
        for x, y, kind in zip(a, b, kinds)
    )


def _assert_logs_close(tf_logs: dict, jax_logs: dict) -> float:
    """Same logs within LOSS_RTOL; returns the largest relative difference."""
    assert tf_logs.keys() == jax_logs.keys()
    for k in tf_logs:
        assert jax_logs[k] == pytest.approx(tf_logs[k], rel=LOSS_RTOL, abs=1e-7), k
    return max(abs(jax_logs[k] - tf_logs[k]) / max(abs(tf_logs[k]), 1e-30) for k in tf_logs)


@pytest.mark.slow
def test_jax_backend_is_selected_and_needs_no_tensorflow(sides):
    _, jx = sides
    info = jx["info"]
    print("JAX worker seconds:", info["seconds"])
    print("JAX worker CPU seconds:", info["cpu_seconds"])
    assert info["steps_module"] == "ganomaly_tf.backends.jax"
    assert info["tensorflow_imported"] is False


@pytest.mark.slow
def test_one_step_matches_tensorflow(sides):
    tf, jx = sides
    losses = _assert_logs_close(tf["logs1"], jx["logs1"])
    weights, optimiser = _max_error(tf["w1"], jx["w1"]), _max_relative_error(tf["o1"], jx["o1"])
    print(
        f"one step: losses {losses:.1e} relative; max |w_tf - w_jax| = {weights:.2e}; optimiser state {optimiser:.2e}"
    )
    assert weights < WEIGHT_ATOL
    assert optimiser < OPTIMISER_RTOL  # Adam: iterations, learning rate, m and v of each weight


@pytest.mark.slow
def test_steps_per_execution_matches_tensorflow(sides):
    """Four more steps: a lax.scan over 3 batches, then a single step; TensorFlow steps one by one."""
    tf, jx = sides
    losses = _assert_logs_close(tf["fit_logs"], jx["fit_logs"])
    weights, optimiser = _max_error(tf["w5"], jx["w5"]), _max_relative_error(tf["o5"], jx["o5"])
    print(f"five steps: losses {losses:.1e}; max |w_tf - w_jax| = {weights:.2e}; optimiser state {optimiser:.2e}")
    assert weights < 2 * WEIGHT_ATOL
    assert optimiser < 10 * OPTIMISER_RTOL
    assert int(jx["o5"][0]) == int(tf["o5"][0]) == 1 + FIT_STEPS  # G's iteration count


@pytest.mark.slow
def test_scores_match_tensorflow(sides):
    tf, jx = sides
    for key in ("scores", "scores_batch"):
        assert jx[key].shape == tf[key].shape == (N_TEST,)
        np.testing.assert_allclose(jx[key], tf[key], rtol=SCORE_RTOL, atol=SCORE_ATOL, err_msg=key)
        print(f"{key}: max relative difference {np.max(np.abs(jx[key] / tf[key] - 1)):.2e}")
    # Scoring with per-batch BatchNorm statistics leaves the moving statistics as they were.
    assert _max_error(jx["w5"], jx["w5after"]) == 0.0


@pytest.mark.slow
def test_reinitialisation_rule(sides):
    """D's loss below the threshold: D redrawn after the update, both Adam states kept."""
    tf, jx = sides
    assert jx["reinit_logs"]["d_reinits"] == tf["reinit_logs"]["d_reinits"] == 1.0
    _assert_logs_close(tf["reinit_logs"], jx["reinit_logs"])
    d_index = set(tf["d_index"])
    generator = [i for i in range(len(tf["rw"])) if i not in d_index]
    g_error = _max_error([tf["rw"][i] for i in generator], [jx["rw"][i] for i in generator])
    o_error = _max_relative_error(tf["ro"], jx["ro"])  # D's m and v: from D's gradients, before the redraw
    print(f"re-initialisation: max |w_tf - w_jax| (G) = {g_error:.2e}; optimiser state, relative: {o_error:.2e}")
    assert g_error < WEIGHT_ATOL
    assert o_error < OPTIMISER_RTOL
    # D holds the rule's stateless draws: kernels N(0, .02), gamma N(1, .02), beta 0.
    drawn = [jx["rw"][i] for i in tf["d_trainable_index"]]
    for path, value, expected in zip(tf["d_paths"], drawn, jx["rdraw"]):
        np.testing.assert_allclose(value, expected, rtol=1e-6, atol=1e-8, err_msg=path)  # jit fuses a*z + b
        name = path.split("/")[-1]
        if name == "beta":
            assert np.all(value == 0), path
        elif name == "gamma":
            assert abs(value.mean() - 1) < 0.03 and 0 < value.std() < 0.05, path
        else:
            assert abs(value.mean()) < 0.01 and 0.012 < value.std() < 0.028, path


@pytest.mark.slow
def test_data_parallel_steps_are_the_global_batch_steps(sides):
    """Two devices with half of each batch, two steps in one dispatch, give TensorFlow's
    one-device steps: global-batch means and BatchNorm statistics under jit's sharding, no
    division by the replica count."""
    tf, jx = sides
    assert jx["info"]["dp_sharding"].startswith("NamedSharding")
    losses = _assert_logs_close(tf["two_logs"], jx["dp_logs"])
    weights, optimiser = _max_error(tf["w2"], jx["dpw"]), _max_relative_error(tf["o2"], jx["dpo"])
    print(f"data parallel: losses {losses:.1e}; max |w_tf - w_jax| = {weights:.2e}; optimiser state {optimiser:.2e}")
    assert weights < WEIGHT_ATOL
    assert optimiser < 10 * OPTIMISER_RTOL
    # Scored in batches of 8 over the two devices: the last batch of 3 is padded to 4, then cut.
    assert jx["dp_scores"].shape == (N_TEST,)
    np.testing.assert_allclose(jx["dp_scores"], tf["scores2"], rtol=SCORE_RTOL, atol=SCORE_ATOL)


@pytest.mark.slow
def test_experiment_run_on_jax(sides):
    _, jx = sides
    info = jx["info"]
    env = info["record"]["environment"]
    assert env["backend"] == "jax" and env["replicas"] == 2 and "jax" in env and "tensorflow" not in env
    (epoch,) = info["record"]["history"]
    assert 0.0 <= epoch["auc"] <= 1.0 and np.isfinite(epoch["g_loss"]) and epoch["d_reinits"] == 0
    assert info["steps_run"] == RUN_TRAIN // BATCH  # 2 dispatches of 2; the last partial batch dropped
    data = info["record"]["data"]
    assert data["n_train"] == RUN_TRAIN and info["n_scores"] == data["n_test_normal"] + data["n_test_abnormal"]


@pytest.fixture(scope="module")
def baseline_sides(tmp_path_factory):
    """Each baseline: the same weights, batches and (fixed) training noise on TensorFlow and on JAX."""
    import keras

    from ganomaly_tf.backends import tensorflow as tf_backend

    if keras.backend.backend() != "tensorflow":
        pytest.skip("the reference side runs on the TensorFlow backend")
    pytest.importorskip("jax")
    tmp = tmp_path_factory.mktemp("jax-baselines")
    train, test = _inputs(seed=1)
    keras.utils.set_random_seed(SMALL["seed"])
    init = {name: baseline_model(name).get_weights() for name in BASELINES}
    np.savez(
        tmp / "inputs.npz",
        train=train,
        test=test,
        **{k: v for n in BASELINES for k, v in _pack(f"{n}.w", init[n]).items()},
    )
    with jax_worker_running(["baselines", str(tmp / "inputs.npz"), str(tmp)], tmp / "worker.log"):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(tf_backend, "standard_normal", fixed_noise)
            tf = {name: baseline_steps(name, init[name], train, test) for name in BASELINES}
    info = json.loads((tmp / "jax_baselines.json").read_text())
    return tf, _load_baselines(tmp / "jax_baselines.npz"), info


@pytest.mark.slow
@pytest.mark.parametrize("name", list(BASELINES))
def test_baseline_steps_and_scores_match_tensorflow(baseline_sides, name):
    """One step, then four (a scan of three and one), then scores in both BatchNorm modes (for
    AnoGAN: five steps of its latent search per image, on each side's own search loop)."""
    tf_all, jx_all, info = baseline_sides
    tf, jx = tf_all[name], jx_all[name]
    assert info["tensorflow_imported"] is False
    one = _assert_logs_close(tf["logs1"], jx["logs1"])
    kinds = tf["o_kinds"]
    w1, o1 = _max_error(tf["w1"], jx["w1"]), _max_relative_error_by_kind(tf["o1"], jx["o1"], kinds)
    five = _assert_logs_close(tf["fit_logs"], jx["fit_logs"])
    w5, o5 = _max_error(tf["w5"], jx["w5"]), _max_relative_error_by_kind(tf["o5"], jx["o5"], kinds)
    print(f"{name}: losses {one:.1e} / {five:.1e}; weights {w1:.1e} / {w5:.1e}; optimiser {o1:.1e} / {o5:.1e}")
    assert w1 < WEIGHT_ATOL and o1 < OPTIMISER_RTOL
    assert w5 < 2 * WEIGHT_ATOL and o5 < 10 * OPTIMISER_RTOL
    assert int(jx["o5"][0]) == int(tf["o5"][0]) == 1 + FIT_STEPS  # the (first) optimiser's iteration count
    for key in ("scores", "scores_batch"):
        assert jx[key].shape == tf[key].shape == (N_TEST,)
        np.testing.assert_allclose(jx[key], tf[key], rtol=SCORE_RTOL, atol=SCORE_ATOL, err_msg=f"{name} {key}")


@pytest.mark.slow
def test_egbad_dropout_trains_on_jax(baseline_sides):
    """Dropout's seed state is threaded through the stateless step: it advances, losses stay finite."""
    _, _, info = baseline_sides
    before, after = info["dropout_seed_states"]
    assert len(before) == 3 and before != after  # drop_x, drop_z, drop_joint
    assert all(np.isfinite(v) for v in info["dropout_logs"].values())


def test_jax_training_noise_is_a_deterministic_standard_normal():
    """The JAX steps' noise: the same seed and step give the same draw, another step another."""
    pytest.importorskip("jax")
    code = (
        "from ganomaly_tf.backends.jax import standard_normal\n"
        "import numpy as np\n"
        "class M: seed = 3\n"
        "a, b, c = (np.asarray(standard_normal(M, (64, 100), s)) for s in (0, 0, 1))\n"
        "assert np.array_equal(a, b) and not np.allclose(a, c)\n"
        "assert abs(a.mean()) < 0.03 and abs(a.std() - 1) < 0.03, (a.mean(), a.std())\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]


# -- no JAX process needed ------------------------------------------------------------------


def test_numpy_batches_shuffle_per_epoch_and_drop_the_remainder():
    pytest.importorskip("jax")
    from ganomaly_tf.backends.jax import make_dataset

    images = np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1)
    ds = make_dataset(images, 3, shuffle=True, seed=5, drop_remainder=True)
    epochs = []
    for _ in range(3):
        ds.on_epoch_begin()
        batches = [ds[i][0].reshape(-1) for i in range(len(ds))]
        assert len(batches) == 3 and all(len(b) == 3 for b in batches)
        flat = np.concatenate(batches)
        assert len(set(flat.tolist())) == 9
        epochs.append(flat)
        ds.on_epoch_end()
    assert not np.array_equal(epochs[0], epochs[1])
    again = make_dataset(images, 3, shuffle=True, seed=5, drop_remainder=True)
    again.on_epoch_begin()
    np.testing.assert_array_equal(np.concatenate([again[i][0].reshape(-1) for i in range(3)]), epochs[0])
    ordered = make_dataset(images, 3)
    assert len(ordered) == 4 and ordered[3][0].reshape(-1).tolist() == [9.0]
    with pytest.raises(IndexError):
        ordered[4]


def test_runner_backend_option(monkeypatch):
    """--backend sets KERAS_BACKEND, or runs the sweep in a child if Keras already runs another backend."""
    import keras

    from benchmarks import run

    calls = []
    monkeypatch.setattr(run.subprocess, "call", lambda cmd, env: calls.append((cmd, env)) or 0)
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    current = keras.backend.backend()
    other = "jax" if current == "tensorflow" else "tensorflow"
    assert run.select_backend(None, []) is None and "KERAS_BACKEND" not in os.environ
    assert run.select_backend(current, []) is None and os.environ["KERAS_BACKEND"] == current
    argv = ["--backend", other, "--dataset", "mnist", "--classes", "0"]
    assert run.select_backend(other, argv) == 0
    ((cmd, env),) = calls
    assert cmd[1:] == ["-m", "benchmarks.run", *argv] and env["KERAS_BACKEND"] == other
    assert run.parser().parse_args(argv).backend == other


if __name__ == "__main__":
    if sys.argv[1] == "baselines":
        jax_baselines_worker(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        jax_worker(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])
