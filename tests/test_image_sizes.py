"""Image sizes beyond 32: every network gains a stride-2 block per doubling, as the official code's do."""

import numpy as np
import pytest

from benchmarks import run as runner
from ganomaly_tf.config import RunConfig
from ganomaly_tf.errors import ConfigError
from ganomaly_tf.models import EGBAD, AnoGAN, AutoEncoder, GANomaly
from ganomaly_tf.models.networks import build_decoder, build_encoder, encoder_body


@pytest.mark.parametrize("size", [16, 64, 128])
def test_networks_shapes(size):
    depth = {16: 1, 64: 3, 128: 4}[size]  # stride-2 blocks after the first (32 has 2), down to 4 x 4
    x = np.zeros((2, size, size, 3), np.float32)
    assert build_encoder(size, 3, latent_dim=10, filters=4)(x).shape == (2, 10)
    assert encoder_body(size, 3, filters=4)(x).shape == (2, 4, 4, 4 * 2**depth)
    assert build_decoder(size, 3, latent_dim=10, filters=4)(np.zeros((2, 10), np.float32)).shape == (2, size, size, 3)


@pytest.mark.parametrize("cls", [GANomaly, AutoEncoder, EGBAD, AnoGAN])
def test_a_training_step_and_scores_at_64(cls, mnist):
    """Real MNIST digits resized to 64 x 64: one step trains, every image gets a finite score."""
    from ganomaly_tf.data import preprocess

    x = preprocess(mnist.x_train[:8], size=64)
    options = {"score_iterations": 2} if cls is AnoGAN else {}
    model = cls(image_size=64, channels=1, latent_dim=8, filters=4, seed=0, **options)
    model.default_compile()
    before = [v.numpy().copy() for v in model.trainable_variables]
    logs = model.train_on_batch(x, return_dict=True)
    assert all(np.isfinite(float(v)) for v in logs.values())
    assert any(not np.array_equal(b, v.numpy()) for b, v in zip(before, model.trainable_variables))
    scores = model.score(x, batch_size=4)
    assert scores.shape == (8,) and np.isfinite(scores).all()


def test_sizes_that_are_not_a_power_of_two_are_refused_with_the_nearest_ones():
    with pytest.raises(ConfigError, match=r"image_size 48: .*power of two.*use 32 or 64"):
        RunConfig(image_size=48)
    with pytest.raises(ConfigError, match="image_size 8: must be at least 16"):
        RunConfig(image_size=8)


def test_a_sweep_at_64_goes_to_its_own_folder_and_trains(data_dir, tmp_path):
    argv = ["--dataset", "cifar10", "--classes", "cat", "--seeds", "0", "--preset", "smoke", "--image-size", "64"]
    grid, sweep = runner.grid_of(argv)
    assert sweep.name == "smoke+size64" and grid[0].image_size == 64
    argv += ["--out", str(tmp_path), "--data-dir", str(data_dir), "-q", "--no-report"]
    assert runner.main(argv) == 0
    from ganomaly_tf.record import read_record

    runs = tmp_path / "cifar10" / "paper" / "smoke+size64" / "runs"
    (run_dir,) = (p for p in runs.iterdir() if p.is_dir() and not p.name.startswith("."))
    record = read_record(run_dir)
    assert record.status == "ok" and record.model_config["image_size"] == 64 and np.isfinite(record.auc_last)
