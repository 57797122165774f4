"""tf.data pipelines from preprocessed real images, alone and under tf.distribute strategies."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import ganomaly_tf
from ganomaly_tf.backends.tensorflow import make_dataset
from ganomaly_tf.data import preprocess

N = 100  # 3 full batches of 32 and a remainder of 4


@pytest.fixture(scope="module")
def images(mnist):
    x = preprocess(mnist.x_test[:N])
    assert len({img.tobytes() for img in x}) == N  # distinct, so an image identifies its position
    return x


def positions(ds, images):
    """Where each yielded image sits in ``images``: the order the dataset produced."""
    where = {img.tobytes(): i for i, img in enumerate(images)}
    return [where[img.tobytes()] for batch in ds for img in batch.numpy()]


def test_batches(images):
    ds = make_dataset(images, 32)
    out = [b.numpy() for b in ds]
    assert [len(b) for b in out] == [32, 32, 32, 4]
    assert all(b.dtype == np.float32 and b.shape[1:] == (32, 32, 1) for b in out)
    assert ds.element_spec.dtype == tf.float32 and ds.element_spec.shape.as_list() == [None, 32, 32, 1]
    np.testing.assert_array_equal(np.concatenate(out), images)


def test_cifar_batches(cifar10):
    x = preprocess(cifar10.x_test[:40])
    out = [b.numpy() for b in make_dataset(x, 16)]
    assert [b.shape for b in out] == [(16, 32, 32, 3), (16, 32, 32, 3), (8, 32, 32, 3)]


def test_drop_remainder(images):
    ds = make_dataset(images, 32, drop_remainder=True)
    assert ds.element_spec.shape.as_list() == [32, 32, 32, 1]
    out = [b.numpy() for b in ds]
    assert [len(b) for b in out] == [32, 32, 32]
    np.testing.assert_array_equal(np.concatenate(out), images[:96])


def test_shuffle_is_seeded(images):
    plain = positions(make_dataset(images, 16), images)
    a = positions(make_dataset(images, 16, shuffle=True, seed=1), images)
    b = positions(make_dataset(images, 16, shuffle=True, seed=1), images)
    c = positions(make_dataset(images, 16, shuffle=True, seed=2), images)
    assert plain == list(range(N))
    assert sorted(a) == plain  # a permutation: nothing lost or repeated
    assert a == b
    assert a != plain and a != c


def test_reshuffles_each_epoch_deterministically(images):
    ds1 = make_dataset(images, 16, shuffle=True, seed=5)
    ds2 = make_dataset(images, 16, shuffle=True, seed=5)
    first, second = positions(ds1, images), positions(ds1, images)
    assert first != second
    assert [positions(ds2, images), positions(ds2, images)] == [first, second]


@pytest.mark.parametrize(
    "make_strategy",
    [lambda: tf.distribute.OneDeviceStrategy("/cpu:0"), lambda: tf.distribute.MirroredStrategy(["/cpu:0"])],
    ids=["one-device", "mirrored"],
)
def test_distributed_single_replica(images, make_strategy):
    strategy = make_strategy()
    dist = strategy.experimental_distribute_dataset(make_dataset(images, 32, drop_remainder=True))
    seen, count = [], 0
    for batch in dist:
        (local,) = strategy.experimental_local_results(batch)
        assert local.shape == (32, 32, 32, 1) and local.dtype == tf.float32
        seen.append(local.numpy())
        per_replica = strategy.run(lambda x: tf.shape(x)[0], args=(batch,))
        count += int(strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None))
    assert count == 96
    np.testing.assert_array_equal(np.concatenate(seen), images[:96])


MIRRORED_TWO_CPUS = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from ganomaly_tf.backends.tensorflow import make_dataset

    x = np.load(sys.argv[1])
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    dist = strategy.experimental_distribute_dataset(make_dataset(x, 32, drop_remainder=True))
    seen, count = [], 0
    for batch in dist:
        parts = strategy.experimental_local_results(batch)
        assert [tuple(p.shape) for p in parts] == [(16, 32, 32, 1)] * 2, [p.shape for p in parts]
        seen.append(np.concatenate([p.numpy() for p in parts]))
        per_replica = strategy.run(lambda b: tf.shape(b)[0], args=(batch,))
        count += int(strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None))
    assert count == 96, count
    np.testing.assert_array_equal(np.concatenate(seen), x[:96])
    print("OK")
    """
)


def test_mirrored_two_cpu_replicas(images, tmp_path):
    """Two logical CPUs must be configured before TensorFlow starts, hence a fresh process."""
    np.save(tmp_path / "x.npy", images)
    root = Path(ganomaly_tf.__file__).parents[1]
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_TWO_CPUS, str(tmp_path / "x.npy")],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0 and "OK" in result.stdout, result.stderr[-3000:]
