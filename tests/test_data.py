"""The data layer on the real files: readers, verification, split protocols, preprocessing."""

import gzip
import hashlib
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ganomaly_tf
from ganomaly_tf.data import DataError, load_dataset, make_split, preprocess, resolve_class, subsample
from ganomaly_tf.data.datasets import SPECS
from ganomaly_tf.data.preprocess import resize_bilinear

MNIST_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR_BIN = "cifar-10-batches-bin"
ARRAYS = ("x_train", "y_train", "x_test", "y_test")


# --- helpers ---------------------------------------------------------------------------


def origin_labels(ds, origin):
    """Labels of the original images at ``origin`` (train index, or len(train) + test index)."""
    n = len(ds.y_train)
    out = np.empty(len(origin), ds.y_train.dtype)
    in_train = origin < n
    out[in_train] = ds.y_train[origin[in_train]]
    out[~in_train] = ds.y_test[origin[~in_train] - n]
    return out


def origin_images(ds, origin):
    n = len(ds.y_train)
    return np.stack([ds.x_train[o] if o < n else ds.x_test[o - n] for o in origin])


def assert_same_arrays(a, b):
    for key in ARRAYS:
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)
        assert getattr(a, key).dtype == getattr(b, key).dtype == np.uint8


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """Only the data_dir a test passes is searched: no $GANOMALY_DATA_DIR, Keras cache or TFDS dir."""
    monkeypatch.delenv("GANOMALY_DATA_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "no-keras-home"))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "no-tfds"))
    monkeypatch.setenv("GANOMALY_OFFLINE", "1")


def mnist_copy(data_dir, root):
    """root/mnist/ with links to the four real .gz files; tests replace one of them."""
    folder = root / "mnist"
    folder.mkdir()
    for stem in MNIST_STEMS:
        (folder / f"{stem}.gz").symlink_to(data_dir / "mnist" / f"{stem}.gz")
    return folder


def cifar_copy(data_dir, root):
    folder = root / "cifar10" / CIFAR_BIN
    folder.mkdir(parents=True)
    for f in (data_dir / "cifar10" / CIFAR_BIN).iterdir():
        (folder / f.name).symlink_to(f)
    return folder


def replace_with_raw(folder, stem, edit):
    """Swap ``stem.gz`` for an uncompressed IDX file whose bytes went through ``edit``."""
    gz = folder / f"{stem}.gz"
    raw = bytearray(gzip.decompress(gz.read_bytes()))
    gz.unlink()
    (folder / stem).write_bytes(bytes(edit(raw)))


# --- the datasets ----------------------------------------------------------------------


def test_mnist_arrays(mnist):
    assert mnist.name == "mnist" and mnist.channels == 1
    assert mnist.x_train.shape == (60000, 28, 28) and mnist.x_test.shape == (10000, 28, 28)
    assert mnist.y_train.shape == (60000,) and mnist.y_test.shape == (10000,)
    assert all(getattr(mnist, k).dtype == np.uint8 for k in ARRAYS)
    assert np.bincount(mnist.y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(mnist.y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert mnist.y_train[0] == 5 and mnist.y_test[0] == 7
    assert mnist.class_names == tuple("0123456789")


def test_cifar10_arrays(cifar10):
    assert cifar10.name == "cifar10" and cifar10.channels == 3
    assert cifar10.x_train.shape == (50000, 32, 32, 3) and cifar10.x_test.shape == (10000, 32, 32, 3)
    assert cifar10.y_train.shape == (50000,) and cifar10.y_test.shape == (10000,)
    assert all(getattr(cifar10, k).dtype == np.uint8 for k in ARRAYS)
    assert np.bincount(cifar10.y_train).tolist() == [5000] * 10
    assert np.bincount(cifar10.y_test).tolist() == [1000] * 10
    assert cifar10.y_train[0] == 6 and cifar10.y_test[0] == 3  # frog, cat
    assert cifar10.class_names[6] == "frog" and cifar10.class_names[3] == "cat"


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_hashes(request, name):
    ds = request.getfixturevalue(name)
    assert ds.sha256 == SPECS[name].sha256
    for key in ARRAYS:  # the hashes really are those of the arrays handed out
        assert hashlib.sha256(np.ascontiguousarray(getattr(ds, key)).tobytes()).hexdigest() == ds.sha256[key]


def test_data_package_does_not_import_tensorflow():
    code = "import sys, ganomaly_tf.data; assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    root = Path(ganomaly_tf.__file__).parents[1]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


# --- bad inputs --------------------------------------------------------------------------


def test_missing_data_dir(tmp_path, isolated):
    with pytest.raises(DataError, match="no such folder"):
        load_dataset("mnist", tmp_path / "nowhere")


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_empty_data_dir(tmp_path, isolated, name):
    with pytest.raises(DataError, match=f"no {name} files there"):
        load_dataset(name, tmp_path)


def test_explicit_data_dir_is_the_only_place_searched(tmp_path, data_dir, monkeypatch):
    """An explicit data_dir that holds nothing is an error, even with good data in $GANOMALY_DATA_DIR."""
    monkeypatch.setenv("GANOMALY_DATA_DIR", str(data_dir))
    monkeypatch.setenv("GANOMALY_OFFLINE", "1")
    with pytest.raises(DataError, match=f"data_dir {tmp_path}: no mnist files there"):
        load_dataset("mnist", tmp_path)
    assert load_dataset("mnist").source.startswith(str(data_dir))  # without data_dir the environment's is used


def test_another_dataset_in_mnist_format_is_named_as_such(data_dir, tmp_path, isolated):
    """Labels with Fashion-MNIST's balanced counts: the error says another dataset, not a damaged download."""
    folder = mnist_copy(data_dir, tmp_path)

    def balanced(raw):  # 6,000 labels of each class, as Fashion-MNIST's training set has
        raw[8:] = bytes(np.repeat(np.arange(10, dtype=np.uint8), 6000))
        return raw

    replace_with_raw(folder, "train-labels-idx1-ubyte", balanced)
    with pytest.raises(DataError, match="another dataset in the same format") as e:
        load_dataset("mnist", tmp_path)
    assert "\n" not in str(e.value)


def test_incomplete_mnist_folder(data_dir, tmp_path, isolated):
    folder = mnist_copy(data_dir, tmp_path)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError):
        load_dataset("mnist", tmp_path)


def test_mnist_copy_loads(data_dir, tmp_path, isolated, mnist):
    mnist_copy(data_dir, tmp_path)
    ds = load_dataset("mnist", tmp_path)
    assert ds.source == str(tmp_path / "mnist")
    assert_same_arrays(ds, mnist)


def test_truncated_gz(data_dir, tmp_path, isolated):
    folder = mnist_copy(data_dir, tmp_path)
    name = "train-labels-idx1-ubyte.gz"
    good = (folder / name).read_bytes()
    (folder / name).unlink()
    (folder / name).write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match=name) as e:
        load_dataset("mnist", tmp_path)
    assert "truncated or corrupted" in str(e.value)


@pytest.mark.parametrize(
    "edit, says",
    [
        (lambda raw: raw[:-100], "truncated or corrupted"),  # a raw IDX cut short
        (lambda raw: raw[:10], "header"),  # cut inside the header
        (lambda raw: b"\x00\x00\x0d\x03" + raw[4:], "bad magic"),  # float IDX, not uint8
        (lambda raw: b"", "bad magic"),  # empty
    ],
    ids=["truncated", "header", "magic", "empty"],
)
def test_broken_raw_idx(data_dir, tmp_path, isolated, edit, says):
    folder = mnist_copy(data_dir, tmp_path)
    replace_with_raw(folder, "t10k-images-idx3-ubyte", edit)
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte") as e:
        load_dataset("mnist", tmp_path)
    assert says in str(e.value)


def _change_label(raw):
    raw[8] = (raw[8] + 1) % 10  # first label 5 -> 6: per-class counts change
    return raw


def _swap_labels(raw):
    raw[8], raw[9] = raw[9], raw[8]  # labels 5 and 0 swapped: counts equal, content not
    return raw


@pytest.mark.parametrize(
    "stem, edit, says",
    [
        ("train-labels-idx1-ubyte", _change_label, "per-class counts"),
        ("train-labels-idx1-ubyte", _swap_labels, "SHA-256"),
        ("t10k-images-idx3-ubyte", lambda raw: raw[:-1] + bytes([raw[-1] ^ 0xFF]), "SHA-256"),
    ],
    ids=["label-changed", "labels-swapped", "pixel-flipped"],
)
def test_corrupted_but_well_formed_idx(data_dir, tmp_path, isolated, stem, edit, says):
    folder = mnist_copy(data_dir, tmp_path)
    replace_with_raw(folder, stem, edit)
    with pytest.raises(DataError, match=says) as e:
        load_dataset("mnist", tmp_path)
    assert str(folder) in str(e.value)


def test_corrupted_gz_stream(data_dir, tmp_path, isolated):
    folder = mnist_copy(data_dir, tmp_path)
    name = "train-labels-idx1-ubyte.gz"
    data = bytearray(gzip.compress(gzip.decompress((folder / name).read_bytes()), mtime=0))
    for i in range(100, 120):
        data[i] ^= 0xFF
    (folder / name).unlink()
    (folder / name).write_bytes(bytes(data))
    with pytest.raises(DataError, match=name):
        load_dataset("mnist", tmp_path)


def test_truncated_cifar_batch(data_dir, tmp_path, isolated):
    folder = cifar_copy(data_dir, tmp_path)
    batch = folder / "data_batch_1.bin"
    good = batch.read_bytes()
    batch.unlink()
    batch.write_bytes(good[:10000])
    with pytest.raises(DataError, match="data_batch_1.bin") as e:
        load_dataset("cifar10", tmp_path)
    assert "truncated or corrupted" in str(e.value)


def test_cifar_batch_short_by_whole_records(data_dir, tmp_path, isolated):
    folder = cifar_copy(data_dir, tmp_path)
    batch = folder / "test_batch.bin"
    good = batch.read_bytes()
    batch.unlink()
    batch.write_bytes(good[:-3073])  # one record fewer: decodes, but the dataset is short
    with pytest.raises(DataError, match=r"test_batch\.bin: holds 9999 images"):
        load_dataset("cifar10", tmp_path)


def test_missing_cifar_batch(data_dir, tmp_path, isolated):
    folder = cifar_copy(data_dir, tmp_path)
    (folder / "data_batch_3.bin").unlink()
    with pytest.raises(DataError, match="missing data_batch_3.bin"):
        load_dataset("cifar10", tmp_path)


def test_unknown_dataset(data_dir):
    with pytest.raises(ValueError, match="mnist, cifar10"):
        load_dataset("fashion-mnist", data_dir)
    with pytest.raises(ValueError, match="mnist, cifar10"):
        resolve_class("svhn", 0)


# --- other formats: CIFAR-10 python pickles and the Keras mnist.npz ---------------------------


@pytest.fixture(scope="module")
def cifar_pickles(tmp_path_factory, cifar10):
    """A cifar-10-batches-py folder pickled from the real arrays (CHW-flattened rows, label lists)."""
    root = tmp_path_factory.mktemp("cifar-py")
    folder = root / "cifar-10-batches-py"
    folder.mkdir()

    def write(name, x, y):
        batch = {
            b"batch_label": name.encode(),
            b"labels": y.tolist(),
            b"data": x.transpose(0, 3, 1, 2).reshape(-1, 3072),
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)

    for i in range(5):
        part = slice(10000 * i, 10000 * (i + 1))
        write(f"data_batch_{i + 1}", cifar10.x_train[part], cifar10.y_train[part])
    write("test_batch", cifar10.x_test, cifar10.y_test)
    return root


def test_cifar_python_pickles(cifar_pickles, cifar10, isolated):
    ds = load_dataset("cifar10", cifar_pickles)
    assert ds.source == str(cifar_pickles)
    assert ds.sha256 == cifar10.sha256
    assert_same_arrays(ds, cifar10)


def test_truncated_cifar_pickle(cifar_pickles, tmp_path, isolated):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for f in (cifar_pickles / "cifar-10-batches-py").iterdir():
        (folder / f.name).symlink_to(f)
    good = (folder / "data_batch_2").read_bytes()
    (folder / "data_batch_2").unlink()
    (folder / "data_batch_2").write_bytes(good[: len(good) // 3])
    with pytest.raises(DataError, match="data_batch_2"):
        load_dataset("cifar10", tmp_path)


def test_mnist_npz(mnist, tmp_path, isolated):
    np.savez(tmp_path / "mnist.npz", **{key: getattr(mnist, key) for key in ARRAYS})
    ds = load_dataset("mnist", tmp_path)
    assert ds.source == str(tmp_path)
    assert_same_arrays(ds, mnist)


def test_truncated_mnist_npz(mnist, tmp_path, isolated):
    path = tmp_path / "mnist.npz"
    np.savez(path, **{key: getattr(mnist, key)[:100] for key in ARRAYS})
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError, match="mnist.npz"):
        load_dataset("mnist", tmp_path)


# --- split protocols -------------------------------------------------------------------------


def test_paper_sizes_mnist(mnist):
    s = make_split(mnist, 0, seed=0)
    assert s.x_train.shape == (50477, 28, 28)
    assert (s.y_test == 0).sum() == 12620 and (s.y_test == 1).sum() == 6903
    assert len(s.x_test) == len(s.y_test) == len(s.test_origin) == 12620 + 6903


def test_paper_sizes_cifar10(cifar10):
    for k in range(10):
        s = make_split(cifar10, k, seed=0)
        assert s.x_train.shape == (43200, 32, 32, 3), k
        assert (s.y_test == 0).sum() == 10800 and (s.y_test == 1).sum() == 6000, k


@pytest.mark.parametrize("k", range(10))
@pytest.mark.parametrize("protocol", ["paper", "one-class"])  # fixed: tests/test_sources.py
@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_no_abnormal_image_in_training(request, name, protocol, k):
    ds = request.getfixturevalue(name)
    s = make_split(ds, k, seed=1, protocol=protocol)
    train_labels = origin_labels(ds, s.train_origin)
    test_labels = origin_labels(ds, s.test_origin)
    assert len(s.x_train) == len(s.train_origin) and len(s.x_test) == len(s.y_test) == len(s.test_origin)
    assert not np.intersect1d(s.train_origin, s.test_origin).size
    if protocol == "paper":  # k is the abnormal class
        assert not (train_labels == k).any()
        np.testing.assert_array_equal(s.y_test, test_labels == k)
        every = np.sort(np.concatenate([s.train_origin, s.test_origin]))
        np.testing.assert_array_equal(every, np.arange(len(ds.y_train) + len(ds.y_test)))
    else:  # k is the normal class
        assert (train_labels == k).all()
        np.testing.assert_array_equal(s.train_origin, np.flatnonzero(ds.y_train == k))
        np.testing.assert_array_equal(s.test_origin, len(ds.y_train) + np.arange(len(ds.y_test)))
        np.testing.assert_array_equal(s.y_test, test_labels != k)
    assert s.abnormal_class == k and s.class_name == ds.class_names[k] and s.protocol == protocol


@pytest.mark.parametrize(
    "name, k, protocol", [("mnist", 3, "paper"), ("cifar10", 2, "one-class"), ("cifar10", 9, "paper")]
)
def test_origins_index_the_right_images(request, name, k, protocol):
    ds = request.getfixturevalue(name)
    s = make_split(ds, k, seed=0, protocol=protocol)
    rng = np.random.default_rng(0)
    for images, origin in ((s.x_train, s.train_origin), (s.x_test, s.test_origin)):
        i = np.concatenate([[0, len(origin) - 1], rng.choice(len(origin), 300, replace=False)])
        np.testing.assert_array_equal(images[i], origin_images(ds, origin[i]))


@pytest.mark.parametrize("seed", [0, 42])
def test_paper_permutation_is_the_official_one(mnist, seed):
    k = 6
    n = len(mnist.y_train)
    normal = np.concatenate([np.flatnonzero(mnist.y_train != k), n + np.flatnonzero(mnist.y_test != k)])
    abnormal = np.concatenate([np.flatnonzero(mnist.y_train == k), n + np.flatnonzero(mnist.y_test == k)])
    state = np.random.get_state()
    try:  # exactly what the official code does, on NumPy's legacy global generator
        np.random.seed(seed)
        idx = np.arange(len(normal))
        np.random.shuffle(idx)
    finally:
        np.random.set_state(state)
    cut = int(0.8 * len(normal))
    s = make_split(mnist, k, seed=seed)
    np.testing.assert_array_equal(s.train_origin, normal[idx[:cut]])
    np.testing.assert_array_equal(s.test_origin, np.concatenate([normal[idx[cut:]], abnormal]))
    np.testing.assert_array_equal(s.y_test, np.r_[np.zeros(len(normal) - cut), np.ones(len(abnormal))])
    assert s.seed == seed


def test_same_seed_same_split_other_seed_other_split(mnist):
    a, b, c = make_split(mnist, 4, seed=3), make_split(mnist, 4, seed=3), make_split(mnist, 4, seed=4)
    assert a.fingerprint == b.fingerprint
    for key in ("x_train", "x_test", "y_test", "train_origin", "test_origin"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    assert a.fingerprint != c.fingerprint
    assert set(a.train_origin.tolist()) != set(c.train_origin.tolist())
    n_abnormal = int(a.y_test.sum())  # the abnormal images are the same whatever the seed
    np.testing.assert_array_equal(a.test_origin[-n_abnormal:], c.test_origin[-n_abnormal:])


def test_one_class_ignores_seed(cifar10):
    assert make_split(cifar10, 5, seed=0, protocol="one-class").fingerprint == (
        make_split(cifar10, 5, seed=9, protocol="one-class").fingerprint
    )


def test_class_by_name(cifar10, mnist):
    for plane in ("plane", "airplane", "Airplane", "0", np.int64(0)):
        assert resolve_class("cifar10", plane) == 0
    for car in ("car", "automobile", 1):
        assert resolve_class("cifar10", car) == 1
    assert resolve_class("CIFAR-10", "plane") == 0
    assert make_split(cifar10, "plane").fingerprint == make_split(cifar10, 0).fingerprint
    assert make_split(cifar10, "airplane").fingerprint == make_split(cifar10, 0).fingerprint
    car = make_split(cifar10, "car", protocol="one-class")
    assert car.abnormal_class == 1 and car.class_name == "automobile"
    assert car.fingerprint == make_split(cifar10, 1, protocol="one-class").fingerprint
    assert make_split(mnist, "7").fingerprint == make_split(mnist, 7).fingerprint


@pytest.mark.parametrize("bad", ["tiger", 10, -1, "plane2", True])
def test_unknown_class(cifar10, bad):
    with pytest.raises(ValueError, match="airplane.*truck"):
        make_split(cifar10, bad)


def test_unknown_mnist_class(mnist):
    with pytest.raises(ValueError, match="index 0-9"):
        make_split(mnist, "ten")


def test_unknown_protocol(mnist):
    with pytest.raises(ValueError, match="paper, one-class"):
        make_split(mnist, 0, protocol="deep-svdd")


def test_subsample_keeps_the_protocol(mnist):
    s = make_split(mnist, 2, seed=0)
    sub = subsample(s, train=500, test=300, seed=1)
    assert len(sub.x_train) == 500 and 295 <= len(sub.x_test) <= 305
    assert set(np.unique(sub.y_test).tolist()) == {0, 1}
    assert np.isin(sub.train_origin, s.train_origin).all() and np.isin(sub.test_origin, s.test_origin).all()
    assert not (origin_labels(mnist, sub.train_origin) == 2).any()
    np.testing.assert_array_equal(sub.y_test, origin_labels(mnist, sub.test_origin) == 2)
    np.testing.assert_array_equal(sub.x_test[:20], origin_images(mnist, sub.test_origin[:20]))


# --- preprocessing ------------------------------------------------------------------------------


def test_preprocess_mnist(mnist):
    x = preprocess(mnist.x_train[:256])
    assert x.dtype == np.float32 and x.shape == (256, 32, 32, 1)
    assert x.min() == -1.0 and 0.9 < x.max() <= 1.0
    rgb = preprocess(mnist.x_train[:8], channels=3)
    assert rgb.shape == (8, 32, 32, 3)
    np.testing.assert_array_equal(rgb, np.repeat(x[:8], 3, axis=-1))


def test_preprocess_cifar10(cifar10):
    x = preprocess(cifar10.x_test[:256], chunk=100)
    assert x.dtype == np.float32 and x.shape == (256, 32, 32, 3)
    assert -1.0 <= x.min() and x.max() <= 1.0
    np.testing.assert_allclose(x, cifar10.x_test[:256] / 127.5 - 1.0, atol=1e-6)  # already 32x32: scaling only


def test_resize_matches_tensorflow(mnist):
    import tensorflow as tf

    images = mnist.x_test[:64, ..., None]
    expected = tf.image.resize(images, (32, 32), method="bilinear").numpy()
    np.testing.assert_allclose(resize_bilinear(images, 32), expected, atol=1e-4)
    np.testing.assert_allclose(preprocess(mnist.x_test[:64]), expected / 127.5 - 1.0, atol=1e-5)


def test_fixed_test_subset_seed_keeps_the_abnormal_images_across_seeds(mnist):
    subsets = [subsample(make_split(mnist, 3, s), test=1000, seed=s, test_seed=0) for s in (0, 1)]
    abnormal = [set(sub.test_origin[sub.y_test == 1]) for sub in subsets]
    assert abnormal[0] == abnormal[1]
    full = make_split(mnist, 3, 0)
    for sub in subsets:  # stratified: the proportion of abnormal images is kept
        assert abs(sub.y_test.mean() - full.y_test.mean()) < 0.002
        assert len(sub.x_train) == len(full.x_train)  # the training set is untouched
    # Without a fixed subset seed each seed draws its own abnormal images.
    own = [subsample(make_split(mnist, 3, s), test=1000, seed=s) for s in (0, 1)]
    assert set(own[0].test_origin[own[0].y_test == 1]) != set(own[1].test_origin[own[1].y_test == 1])
