"""GANomaly networks, losses, gradients, D re-initialisation, scores and save/load (docs/design.md).

Small networks (filters=8, latent_dim=16) on a few real MNIST images, except where the
paper's sizes are the point.
"""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from ganomaly_tf.data import preprocess
from ganomaly_tf.models import GANomaly

SMALL = {"filters": 8, "latent_dim": 16}
N = 16


@pytest.fixture(scope="module")
def x(mnist):
    """16 real MNIST test images, preprocessed: float32 (16, 32, 32, 1) in [-1, 1]."""
    out = preprocess(mnist.x_test[:N])
    assert out.shape == (N, 32, 32, 1) and out.dtype == np.float32
    return out


def small_model(seed: int = 0, eager: bool = False, **kwargs) -> GANomaly:
    keras.utils.set_random_seed(seed)
    model = GANomaly(**SMALL, **kwargs)
    model.default_compile(run_eagerly=eager)
    return model


def snapshot(variables) -> list[np.ndarray]:
    return [np.array(v.numpy(), copy=True) for v in variables]


def changed(before, variables) -> list[bool]:
    return [not np.array_equal(b, v.numpy()) for b, v in zip(before, variables)]


# -- sizes and layer facts --------------------------------------------------------------


def expected_counts(nc: int, nz: int = 100, f: int = 64) -> dict[str, int]:
    """Trainable parameters from the layer shapes in docs/design.md (4x4 kernels, no biases, BN gamma+beta)."""
    k = 16
    body = k * nc * f + k * f * 2 * f + 2 * 2 * f + k * 2 * f * 4 * f + 2 * 4 * f
    encoder = body + k * 4 * f * nz
    decoder = k * nz * 4 * f + 2 * 4 * f + k * 4 * f * 2 * f + 2 * 2 * f + k * 2 * f * f + 2 * f + k * f * nc
    return {"generator": 2 * encoder + decoder, "discriminator": body + k * 4 * f}


def test_parameter_counts_paper_sizes():
    assert expected_counts(1) == {"generator": 3200384, "discriminator": 661248}  # docs/design.md, Networks
    assert GANomaly(channels=1).parameter_counts() == {"generator": 3200384, "discriminator": 661248}
    counts3 = GANomaly(channels=3).parameter_counts()
    assert counts3 == expected_counts(3)
    # Only the first encoder conv (twice in G, once in D) and the last decoder convT see nc.
    assert counts3["generator"] - 3200384 == 2 * (2 * 16 * 64) + 2 * 16 * 64
    assert counts3["discriminator"] - 661248 == 2 * 16 * 64


def test_small_parameter_counts_match_formula():
    assert GANomaly(**SMALL).parameter_counts() == expected_counts(1, nz=16, f=8)


def all_layers(model: GANomaly) -> list[layers.Layer]:
    subs = [model.encoder1, model.decoder, model.encoder2, model.discriminator.features, model.discriminator.classifier]
    return [layer for sub in subs for layer in sub.layers]


def test_layer_facts():
    model = GANomaly(**SMALL)
    found = {"lrelu": 0, "bn": 0, "conv": 0}
    for layer in all_layers(model):
        if isinstance(layer, layers.LeakyReLU):
            assert layer.negative_slope == pytest.approx(0.2)
            found["lrelu"] += 1
        elif isinstance(layer, layers.BatchNormalization):
            assert layer.momentum == pytest.approx(0.9) and layer.epsilon == pytest.approx(1e-5)
            assert not layer.synchronized
            found["bn"] += 1
        elif isinstance(layer, layers.Conv2D | layers.Conv2DTranspose):
            assert not layer.use_bias and layer.bias is None, layer.name
            assert tuple(layer.kernel_size) == (4, 4)
            found["conv"] += 1
    # 3 x (3 lrelu, 2 bn, 4 conv) in E1, E2, D-body (D-body has 3 convs) + decoder (3 bn, 4 convT) + classifier.
    assert found == {"lrelu": 9, "bn": 2 + 3 + 2 + 2, "conv": 4 + 4 + 4 + 3 + 1}
    synced = GANomaly(**SMALL, sync_bn=True)
    assert all(layer.synchronized for layer in all_layers(synced) if isinstance(layer, layers.BatchNormalization))


def test_output_shapes_and_range(x):
    model = GANomaly(**SMALL)
    z = model.encoder1(x, training=False)
    assert tuple(z.shape) == (N, 16)
    x_hat = model.decoder(z, training=False)
    assert tuple(x_hat.shape) == (N, 32, 32, 1)
    assert np.all(np.abs(x_hat.numpy()) <= 1.0)
    p, feats = model.discriminator(x, training=False)
    assert tuple(p.shape) == (N,) and tuple(feats.shape) == (N, 4, 4, 32)  # 4 * filters
    assert np.all((p.numpy() >= 0) & (p.numpy() <= 1))
    # Decoder output stays in [-1, 1] even for huge latent codes (tanh).
    wild = model.decoder(np.full((2, 16), 1e4, np.float32), training=False).numpy()
    assert np.all(np.abs(wild) <= 1.0)


def test_output_shapes_paper_sizes(x):
    model = GANomaly(channels=1)
    z = model.encoder1(x[:2])
    assert tuple(z.shape) == (2, 100)
    assert tuple(model.decoder(z).shape) == (2, 32, 32, 1)
    assert tuple(model.discriminator(x[:2])[1].shape) == (2, 4, 4, 256)
    model3 = GANomaly(channels=3)
    x3 = np.repeat(x[:2], 3, axis=-1)
    z3 = model3.encoder1(x3)
    assert tuple(z3.shape) == (2, 100)
    assert tuple(model3.decoder(z3).shape) == (2, 32, 32, 3)
    assert tuple(model3.discriminator(x3)[1].shape) == (2, 4, 4, 256)


def test_initialisation():
    model = GANomaly(channels=1)  # paper size: many samples per kernel
    for v in model.trainable_variables:
        w = v.numpy()
        name = v.path.split("/")[-1]
        if name == "kernel":
            assert abs(w.mean()) < 5 * 0.02 / np.sqrt(w.size) + 1e-4, v.path
            assert w.std() == pytest.approx(0.02, rel=0.1), v.path
        elif name == "gamma":
            assert abs(w.mean() - 1) < 0.01 and 0.01 < w.std() < 0.03, v.path
        elif name == "beta":
            assert np.all(w == 0), v.path


# -- losses ----------------------------------------------------------------------------


def bce(p: np.ndarray, target: float) -> float:
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return float(-np.mean(target * np.log(p) + (1 - target) * np.log(1 - p)))


def losses_by_hand(model: GANomaly, x: np.ndarray, training: bool) -> dict[str, float]:
    z = model.encoder1(x, training=training).numpy().astype(np.float64)
    x_hat = model.decoder(z.astype(np.float32), training=training).numpy()
    z_hat = model.encoder2(x_hat, training=training).numpy().astype(np.float64)
    p_real, f_real = (t.numpy().astype(np.float64) for t in model.discriminator(x, training=training))
    p_fake, f_fake = (t.numpy().astype(np.float64) for t in model.discriminator(x_hat, training=training))
    adv = np.mean((f_real - f_fake) ** 2)
    con = np.mean(np.abs(x.astype(np.float64) - x_hat))
    enc = np.mean((z - z_hat) ** 2)
    return {
        "adv_loss": adv,
        "con_loss": con,
        "enc_loss": enc,
        "g_loss": model.w_adv * adv + model.w_con * con + model.w_enc * enc,
        "d_loss": 0.5 * (bce(p_real, 1.0) + bce(p_fake, 0.0)),
    }


@pytest.mark.parametrize("weights", [(1.0, 50.0, 1.0), (2.0, 3.0, 5.0)])
def test_losses_by_hand(x, weights):
    model = GANomaly(**SMALL)
    w_adv, w_con, w_enc = weights
    model.default_compile(w_adv=w_adv, w_con=w_con, w_enc=w_enc)
    got = model.compute_losses(x, training=False)
    want = losses_by_hand(model, x, training=False)
    for name, value in want.items():
        assert got[name].dtype == "float32" and tuple(got[name].shape) == ()
        assert float(got[name]) == pytest.approx(value, rel=1e-5, abs=1e-7), name
    assert float(got["g_loss"]) == pytest.approx(
        w_adv * want["adv_loss"] + w_con * want["con_loss"] + w_enc * want["enc_loss"], rel=1e-5
    )
    assert set(got) == set(GANomaly.loss_names)  # losses only: no x_hat


def test_train_step_metrics_are_pre_step_losses(x):
    """The step's metrics are the losses of its own forward pass: pre-step weights, batch statistics."""
    model = small_model()
    moving = snapshot(model.non_trainable_variables)
    before = {k: float(v) for k, v in model.compute_losses(x, training=True).items()}
    # compute_losses(training=True) moved the BN statistics; the step must not depend on them.
    for v, value in zip(model.non_trainable_variables, moving):
        v.assign(value)
    logs = model.train_on_batch(x, return_dict=True)
    assert set(logs) == {*GANomaly.loss_names, "d_reinits"}
    for name, value in before.items():
        assert logs[name] == pytest.approx(value, rel=1e-5), name
    assert logs["d_reinits"] == 0.0
    # A second step (eager, trackers not reset) reports the mean over both steps.
    moving = snapshot(model.non_trainable_variables)
    second = {k: float(v) for k, v in model.compute_losses(x, training=True).items()}
    for v, value in zip(model.non_trainable_variables, moving):
        v.assign(value)
    logs2 = {k: float(v) for k, v in model.train_step(tf.constant(x)).items()}
    assert logs2["g_loss"] == pytest.approx((before["g_loss"] + second["g_loss"]) / 2, rel=1e-5)


def test_test_step_uses_inference_losses(x):
    model = small_model(eager=True)
    model.train_on_batch(x)
    want = {k: float(v) for k, v in model.compute_losses(x, training=False).items()}
    logs = model.test_on_batch(x, return_dict=True)
    for name, value in want.items():
        assert logs[name] == pytest.approx(value, rel=1e-5), name


# -- gradients -------------------------------------------------------------------------


def test_one_step_changes_every_trainable_variable(x):
    model = small_model()
    nets = {
        "encoder1": model.encoder1,
        "decoder": model.decoder,
        "encoder2": model.encoder2,
        "discriminator": model.discriminator,
    }
    before = {k: snapshot(n.trainable_variables) for k, n in nets.items()}
    moving = snapshot(model.non_trainable_variables)
    model.train_on_batch(x)
    for k, net in nets.items():
        flags = changed(before[k], net.trainable_variables)
        assert all(flags), (k, [v.path for v, c in zip(net.trainable_variables, flags) if not c])
    # BN moving statistics were updated by the training-mode forward passes.
    assert all(changed(moving, model.non_trainable_variables))
    assert int(model.g_optimizer.iterations) == 1 and int(model.d_optimizer.iterations) == 1


def test_gradients_exist_for_every_variable(x):
    model = small_model()
    with tf.GradientTape(persistent=True) as tape:
        losses = model.compute_losses(x, training=True)
    g_grads = tape.gradient(losses["g_loss"], model.generator_variables)
    d_grads = tape.gradient(losses["d_loss"], model.discriminator.trainable_variables)
    for v, g in zip(model.generator_variables, g_grads):
        assert g is not None, v.path
        assert np.any(g.numpy() != 0) and np.all(np.isfinite(g.numpy())), v.path
    for v, g in zip(model.discriminator.trainable_variables, d_grads):
        assert g is not None and np.any(g.numpy() != 0), v.path
    # The step updates G and D from separate variable lists: no weight is in both.
    d_ids = {id(v) for v in model.discriminator.trainable_variables}
    assert not any(id(v) in d_ids for v in model.generator_variables)
    # The generator loss reaches D's feature body (feature matching) but not its classifier.
    adv_d = tape.gradient(losses["adv_loss"], model.discriminator.trainable_variables)
    names = [v.path for v in model.discriminator.trainable_variables]
    assert all(g is not None for g, n in zip(adv_d, names) if n.startswith("features/"))
    assert all(g is None for g, n in zip(adv_d, names) if "classifier" in n)
    del tape


def test_encoder_loss_alone_trains_the_whole_generator(x):
    """w_adv = w_con = 0: only the latent loss; it still reaches E1, the decoder and E2."""
    model = GANomaly(**SMALL)
    model.default_compile(w_adv=0.0, w_con=0.0, w_enc=1.0, run_eagerly=True)
    before = snapshot(model.generator_variables)
    enc = float(model.compute_losses(x, training=True)["enc_loss"])
    logs = model.train_on_batch(x, return_dict=True)
    assert logs["g_loss"] == pytest.approx(logs["enc_loss"], rel=1e-6)
    assert logs["enc_loss"] == pytest.approx(enc, rel=1e-5)
    assert all(changed(before, model.generator_variables))


def test_without_encoder_loss_encoder2_is_untouched(x):
    """w_enc = 0 (and w_con = 0): nothing depends on E2, so its weights must not move."""
    model = GANomaly(**SMALL)
    model.default_compile(w_adv=1.0, w_con=0.0, w_enc=0.0, run_eagerly=True)
    e2 = snapshot(model.encoder2.trainable_variables)
    e1 = snapshot(model.encoder1.trainable_variables)
    dec = snapshot(model.decoder.trainable_variables)
    model.train_on_batch(x)
    assert not any(changed(e2, model.encoder2.trainable_variables))
    assert all(changed(e1, model.encoder1.trainable_variables))
    assert all(changed(dec, model.decoder.trainable_variables))


# -- discriminator re-initialisation ---------------------------------------------------


def adam_slots(optimizer) -> list:
    return [v for v in optimizer.variables if v.path.endswith(("_momentum", "_velocity"))]


def test_reinitialise_discriminator(x):
    model = small_model(d_reinit_threshold=1e9, eager=True)
    d_vars = model.discriminator.trainable_variables
    before = snapshot(d_vars)
    g_before = snapshot(model.generator_variables)
    logs = model.train_on_batch(x, return_dict=True)
    assert logs["d_reinits"] == 1.0
    after = snapshot(d_vars)
    for v, b, a in zip(d_vars, before, after):
        name = v.path.split("/")[-1]
        # Fresh draws: far from "before + one Adam step" (which moves each weight by <~ 2e-4).
        if name == "beta":
            assert np.all(a == 0), v.path
            continue
        assert np.max(np.abs(a - b)) > 1e-2, v.path
        if name == "gamma":
            assert abs(a.mean() - 1) < 5 * 0.02 / np.sqrt(a.size), v.path
            assert 0.005 < a.std() < 0.04, v.path
        else:
            assert name == "kernel", v.path
            assert abs(a.mean()) < 5 * 0.02 / np.sqrt(a.size), v.path
            assert abs(a.std() - 0.02) < 6 * 0.02 / np.sqrt(2 * a.size), (v.path, a.std())
    # The generator is updated normally.
    assert all(changed(g_before, model.generator_variables))
    # D's Adam state is kept: iterations keep counting, moments are non-zero.
    assert int(model.d_optimizer.iterations) == 1
    slots = adam_slots(model.d_optimizer)
    assert len(slots) == 2 * len(d_vars)
    assert all(np.any(s.numpy() != 0) for s in slots)
    logs = model.train_step(tf.constant(x))  # eager, trackers not reset
    assert float(logs["d_reinits"]) == 2.0
    assert int(model.d_optimizer.iterations) == 2
    # Each re-initialisation draws new values (seeded by the step).
    assert any(changed(after, d_vars))


def test_reinitialisation_is_seeded(x):
    a = small_model(seed=0, d_reinit_threshold=1e9, eager=True)
    b = small_model(seed=0, d_reinit_threshold=1e9, eager=True)
    c = small_model(seed=0, d_reinit_threshold=1e9, eager=True)
    c.seed = 1  # same initial weights, another re-initialisation seed
    for m in (a, b, c):
        m.train_on_batch(x)
    wa, wb, wc = (snapshot(m.discriminator.trainable_variables) for m in (a, b, c))
    assert all(np.array_equal(p, q) for p, q in zip(wa, wb))
    assert not all(np.array_equal(p, q) for p, q in zip(wa, wc))


def test_no_reinitialisation_at_threshold_zero(x):
    model = small_model(d_reinit_threshold=0.0, eager=True)
    d_vars = model.discriminator.trainable_variables
    before = snapshot(d_vars)
    logs = model.train_on_batch(x, return_dict=True)
    assert logs["d_reinits"] == 0.0
    for v, b in zip(d_vars, before):
        step = np.max(np.abs(v.numpy() - b))
        assert 0 < step < 1e-3, (v.path, step)  # one Adam step of lr 2e-4


def test_reinitialisation_is_the_models_after_update_hook(x):
    """The backend's step knows nothing of the rule: it calls ``after_update`` after the updates.
    Compiled steps (the tf.function path and its tf.cond): the rule fires through the hook, and
    a subclass whose hook does nothing keeps D's updated weights at the same threshold."""

    class WithoutHook(GANomaly):
        def after_update(self, losses: dict) -> None:
            pass

    keras.utils.set_random_seed(0)
    plain = WithoutHook(**SMALL, d_reinit_threshold=1e9)
    plain.default_compile()
    ruled = small_model(d_reinit_threshold=1e9)
    ruled.set_weights(plain.get_weights())
    before = snapshot(ruled.discriminator.trainable_variables)
    assert ruled.train_on_batch(x, return_dict=True)["d_reinits"] == 1.0
    assert plain.train_on_batch(x, return_dict=True)["d_reinits"] == 0.0
    assert all(np.max(np.abs(v.numpy() - b)) < 1e-3 for v, b in zip(plain.discriminator.trainable_variables, before))
    kernels = [(v, b) for v, b in zip(ruled.discriminator.trainable_variables, before) if v.path.endswith("kernel")]
    assert kernels and all(np.max(np.abs(v.numpy() - b)) > 1e-2 for v, b in kernels)
    # The generator is updated the same either way: the hook runs after the updates.
    for a, b in zip(ruled.generator_variables, plain.generator_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-5)  # graphs differ: rounding


def test_default_threshold_does_not_fire_on_a_fresh_model(x):
    model = small_model(eager=True)
    assert model.d_reinit_threshold == 1e-5
    before = snapshot(model.discriminator.trainable_variables)
    logs = model.train_on_batch(x, return_dict=True)
    assert logs["d_loss"] > 1e-5 and logs["d_reinits"] == 0.0
    assert all(np.max(np.abs(v.numpy() - b)) < 1e-3 for v, b in zip(model.discriminator.trainable_variables, before))


# -- scores ----------------------------------------------------------------------------


def test_scores_inference(x):
    model = small_model(eager=True)
    model.train_on_batch(x)
    scores = model.score(x, batch_size=5)
    assert scores.dtype == np.float32 and scores.shape == (N,)
    assert np.all(np.isfinite(scores)) and np.all(scores >= 0)
    z = model.encoder1(x, training=False).numpy().astype(np.float64)
    z_hat = model.encoder2(model.decoder(z.astype(np.float32), training=False), training=False).numpy()
    np.testing.assert_allclose(scores, np.mean((z - z_hat) ** 2, axis=1), rtol=1e-5)
    # Inference scores do not depend on the batch size.
    np.testing.assert_allclose(model.score(x, batch_size=N), scores, rtol=1e-5)


def test_scores_batch_mode_restores_moving_statistics(x):
    model = small_model()
    model.train_on_batch(x)
    moving = snapshot(model.non_trainable_variables)
    trainable = snapshot(model.trainable_variables)
    inference = model.score(x, batch_size=N)
    batch = model.score(x, batch_size=N, bn_mode="batch")
    assert batch.dtype == np.float32 and batch.shape == (N,) and np.all(np.isfinite(batch))
    assert not np.allclose(batch, inference)
    assert not any(changed(moving, model.non_trainable_variables))
    assert not any(changed(trainable, model.trainable_variables))
    # Batch mode = the training-mode forward pass on each batch.
    want = model.anomaly_score(x, training=True).numpy()
    for v, value in zip(model.non_trainable_variables, moving):
        v.assign(value)
    np.testing.assert_allclose(batch, want, rtol=1e-5)
    # ... so it depends on the batch size, and the inference mode is back afterwards.
    assert not np.allclose(model.score(x, batch_size=4, bn_mode="batch"), batch)
    np.testing.assert_array_equal(model.score(x, batch_size=N), inference)


@pytest.mark.parametrize("bn_mode", ["inference", "per-image"])
def test_inference_and_per_image_scores_do_not_depend_on_batch_or_order(x, bn_mode):
    """An image's score is a function of the image (and the weights) alone in these two modes."""
    model = small_model()
    model.train_on_batch(x)
    moving = snapshot(model.non_trainable_variables)
    scores = model.score(x, batch_size=N, bn_mode=bn_mode)
    reverse = np.arange(N)[::-1]
    np.testing.assert_allclose(model.score(x[reverse], batch_size=3, bn_mode=bn_mode), scores[reverse], rtol=1e-5)
    alone = np.concatenate([model.score(x[i : i + 1], batch_size=1, bn_mode=bn_mode) for i in (0, 7)])
    np.testing.assert_allclose(alone, scores[[0, 7]], rtol=1e-5)
    assert not any(changed(moving, model.non_trainable_variables))


def test_per_image_mode_is_training_mode_on_one_image(x):
    model = small_model()
    model.train_on_batch(x)
    moving = snapshot(model.non_trainable_variables)
    per_image = model.score(x, bn_mode="per-image")
    want = []
    for i in range(N):
        want.append(model.anomaly_score(x[i : i + 1], training=True).numpy()[0])
        for v, value in zip(model.non_trainable_variables, moving):
            v.assign(value)
    np.testing.assert_allclose(per_image, want, rtol=1e-5)
    assert not np.allclose(per_image, model.score(x)) and not np.allclose(per_image, model.score(x, bn_mode="batch"))


def test_batch_mode_depends_on_which_images_share_a_batch(x):
    model = small_model()
    model.train_on_batch(x)
    scores = model.score(x, batch_size=8, bn_mode="batch")
    shuffled = np.random.default_rng(0).permutation(N)
    again = np.empty(N, np.float32)
    again[shuffled] = model.score(x[shuffled], batch_size=8, bn_mode="batch")
    assert not np.allclose(again, scores, rtol=1e-3)


def test_unknown_bn_mode(x):
    with pytest.raises(ValueError, match="bn_mode"):
        GANomaly(**SMALL).score(x, bn_mode="train")


# -- save / load -----------------------------------------------------------------------


def test_save_load_roundtrip(x, tmp_path):
    model = small_model(d_reinit_threshold=0.0, eager=True)
    model.compile(w_con=30.0, run_eagerly=True)
    model.fit(x, batch_size=8, epochs=1, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. Keras's "compile() was not called as part of model loading"
        loaded = keras.models.load_model(path)
    assert isinstance(loaded, GANomaly)
    # Compiled as saved: loss weights, optimiser settings and state.
    assert (loaded.w_adv, loaded.w_con, loaded.w_enc) == (1.0, 30.0, 1.0)
    assert loaded.g_optimizer.get_config() == model.g_optimizer.get_config()
    for name in ("g_optimizer", "d_optimizer"):
        saved, restored = getattr(model, name).variables, getattr(loaded, name).variables
        assert int(restored[0].numpy()) == int(saved[0].numpy()) > 0  # iterations
        for a, b in zip(saved, restored):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    for key in GANomaly.config_keys:
        assert getattr(loaded, key) == getattr(model, key), key
    assert loaded.d_reinit_threshold == 0.0
    assert [v.path for v in loaded.weights] == [v.path for v in model.weights]
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    loaded.run_eagerly = True  # score both the same way (eager here), so equal weights give equal bits
    np.testing.assert_array_equal(loaded.score(x), model.score(x))
    np.testing.assert_array_equal(loaded.score(x, bn_mode="batch"), model.score(x, bn_mode="batch"))
    # The loaded model trains after compiling.
    loaded.default_compile(run_eagerly=True)
    logs = loaded.train_on_batch(x, return_dict=True)
    assert np.isfinite(logs["g_loss"])


def test_config_roundtrip():
    model = GANomaly(image_size=32, channels=3, latent_dim=16, filters=8, seed=3, sync_bn=True, d_reinit_threshold=0.5)
    clone = GANomaly.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    assert clone.parameter_counts() == model.parameter_counts()
