"""Datasets from files other than MNIST's and CIFAR-10's: image folders (three layouts), IDX files, TFDS.

Each source is built on the fly from the real MNIST and CIFAR-10 images (PNG folders, IDX files,
a prepared tensorflow-datasets dataset), so the tests check the splits image for image against
the files they came from.
"""

import gzip
import hashlib
import shlex
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from benchmarks import run as runner
from benchmarks.report.readme import reconstruct_command
from benchmarks.report.sweeps import load_sweep
from benchmarks.store import run_hash, sweep_dir
from ganomaly_tf.config import RunConfig
from ganomaly_tf.data import DataError, class_names, fixed_split, load_dataset, make_split, parse_source
from ganomaly_tf.errors import ConfigError
from ganomaly_tf.experiment import prepare_split
from ganomaly_tf.record import read_record


def _save(folder: Path, images: np.ndarray, prefix: str = "") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, a in enumerate(images):
        paths.append(folder / f"{prefix}{i:04d}.png")
        Image.fromarray(a).save(paths[-1])
    return paths


def _key(image: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()


@pytest.fixture(scope="module")
def official(mnist, tmp_path_factory) -> Path:
    """The official code's layout from real MNIST: digit 0 abnormal, 300 training normals."""
    root = tmp_path_factory.mktemp("data") / "digits"
    _save(root / "train" / "0.normal", mnist.x_train[mnist.y_train != 0][:300])
    _save(root / "test" / "0.normal", mnist.x_test[mnist.y_test != 0][:100])
    _save(root / "test" / "1.abnormal", mnist.x_test[mnist.y_test == 0][:40])
    return root


@pytest.fixture(scope="module")
def mvtec(mnist, cifar10, tmp_path_factory) -> Path:
    """An MVTec AD root of two categories, one RGB (CIFAR-10) and one greyscale (MNIST), with masks."""
    root = tmp_path_factory.mktemp("data") / "mvtec"
    for name, d in (("planes", cifar10), ("ones", mnist)):
        k = 0 if name == "planes" else 1
        _save(root / name / "train" / "good", d.x_train[d.y_train != k][:96])
        _save(root / name / "test" / "good", d.x_test[d.y_test != k][:40])
        _save(root / name / "test" / "crack", d.x_test[d.y_test == k][:10])
        _save(root / name / "test" / "scratch", d.x_test[d.y_test == k][10:25])
        _save(root / name / "ground_truth" / "crack", np.zeros((10, 8, 8), np.uint8))
    return root


@pytest.fixture(scope="module")
def labelled(mnist, tmp_path_factory) -> Path:
    """One sub-folder per class: digits 3, 5, 8 of real MNIST, 120 images each."""
    root = tmp_path_factory.mktemp("data") / "three"
    for name, digit in (("three", 3), ("five", 5), ("eight", 8)):
        _save(root / name, mnist.x_train[mnist.y_train == digit][:120])
    return root


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array, np.uint8).tobytes())


@pytest.fixture(scope="module")
def idx(mnist, tmp_path_factory) -> Path:
    """Four IDX files of another dataset: MNIST digits 1, 4, 7 renumbered 0, 1, 2."""
    root = tmp_path_factory.mktemp("data") / "idx147"
    root.mkdir()
    for part, prefix, n in (("train", "train", 150), ("test", "t10k", 40)):
        x, y = getattr(mnist, f"x_{part}"), getattr(mnist, f"y_{part}")
        keep = np.concatenate([np.flatnonzero(y == d)[:n] for d in (1, 4, 7)])
        _write_idx(root / f"{prefix}-images-idx3-ubyte.gz", x[keep])
        _write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", np.repeat(np.arange(3), n))
    return root


@pytest.fixture(scope="module")
def tfds_dir(cifar10, tmp_path_factory) -> Path:
    """A tensorflow-datasets data dir with one prepared dataset, built from 3 CIFAR-10 classes."""
    import tensorflow_datasets as tfds

    x_train, y_train = cifar10.x_train, cifar10.y_train

    class CifarThree(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            features = {
                "image": tfds.features.Image(shape=(32, 32, 3)),
                "label": tfds.features.ClassLabel(names=["plane", "car", "bird"]),
            }
            return tfds.core.DatasetInfo(
                builder=self, features=tfds.features.FeaturesDict(features), supervised_keys=("image", "label")
            )

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(range(0, 100)), "test": self._generate_examples(range(100, 130))}

        def _generate_examples(self, positions):
            for k in range(3):
                idx = np.flatnonzero(y_train == k)
                for i in positions:
                    yield f"{k}-{i}", {"image": x_train[idx[i]], "label": k}

    data_dir = tmp_path_factory.mktemp("tfds")
    CifarThree(data_dir=str(data_dir)).download_and_prepare()
    return data_dir


# --- layouts and splits -----------------------------------------------------------------


def test_the_official_layout_is_a_fixed_split_of_its_folders(official, mnist):
    d = load_dataset(f"folder:{official}", image_size=32)
    assert (d.layout, d.class_names, d.fixed_split, d.channels) == ("official", ("digits",), True, 1)
    assert fixed_split(f"folder:{official}") and "official code's layout" in d.source
    split = make_split(d, 0, seed=3, protocol="fixed")
    assert (len(split.x_train), int(np.sum(split.y_test == 0)), int(np.sum(split.y_test == 1))) == (300, 100, 40)
    assert make_split(d, 0, seed=0, protocol="fixed").fingerprint == split.fingerprint  # no seed in the split
    # Image for image: each part is its folder's PNGs, decoded and resized in path order.
    abnormal = {_key(a) for a in load_dataset(f"folder:{official}", image_size=32).x_test[-40:]}
    assert not abnormal & {_key(a) for a in split.x_train}
    native = load_dataset(f"folder:{official}")  # their own 28 x 28
    np.testing.assert_array_equal(native.x_train[..., 0], mnist.x_train[mnist.y_train != 0][:300])
    np.testing.assert_array_equal(native.x_test[100:, ..., 0], mnist.x_test[mnist.y_test == 0][:40])
    with pytest.raises(ValueError, match="use protocol 'fixed'"):
        make_split(d, 0, protocol="paper")


def test_an_mvtec_root_has_one_class_a_category_and_every_defect_is_abnormal(mvtec):
    d = load_dataset(f"folder:{mvtec}", image_size=32)
    assert (d.layout, d.class_names, d.channels) == ("mvtec", ("ones", "planes"), 3)  # the greyscale one as RGB
    assert class_names(f"folder:{mvtec}") == d.class_names
    for k in (0, 1):
        split = make_split(d, k, protocol="fixed")
        assert (len(split.x_train), int(np.sum(split.y_test == 0)), int(np.sum(split.y_test == 1))) == (96, 40, 25)
    one = load_dataset(f"folder:{mvtec / 'planes'}", image_size=32)  # a single category folder
    assert one.class_names == ("planes",) and len(one.x_train) == 96
    np.testing.assert_array_equal(one.x_test, d.x_test[d.y_test == 1])
    assert list((mvtec / "planes" / "ground_truth").rglob("*.png"))[0] not in one.manifest.entries


def test_a_labelled_folder_takes_both_protocols_and_no_abnormal_image_trains(labelled, mnist):
    d = load_dataset(f"folder:{labelled}")
    assert (d.layout, d.class_names, d.fixed_split, d.image_size) == ("labelled", ("eight", "five", "three"), False, 28)
    assert len(d.x_train) + len(d.x_test) == 360 and len(d.x_test) == 3 * 24  # a fixed 20% of each class
    assert load_dataset(f"folder:{labelled}").sha256 == d.sha256
    three = {_key(a) for a in mnist.x_train[mnist.y_train == 3][:120]}
    paper = make_split(d, "three", seed=1, protocol="paper")
    assert len(paper.x_train) == int(0.8 * 240) and int(np.sum(paper.y_test)) == 120
    assert not three & {_key(a[..., 0]) for a in paper.x_train}
    assert {_key(a[..., 0]) for a in paper.x_test[paper.y_test == 1]} == three
    assert make_split(d, "three", seed=2).fingerprint != paper.fingerprint  # the seed permutes the normals
    one = make_split(d, 2, protocol="one-class")  # normal = "three", its own 96 training images
    assert len(one.x_train) == 96 and {_key(a[..., 0]) for a in one.x_train} <= three
    assert int(np.sum(one.y_test == 0)) == 24 and int(np.sum(one.y_test == 1)) == 48


def test_idx_files_of_another_dataset(idx, mnist):
    d = load_dataset(f"idx:{idx}")
    assert d.class_names == ("0", "1", "2") and d.x_train.shape == (450, 28, 28) and d.layout == "idx"
    np.testing.assert_array_equal(d.x_train[:150], mnist.x_train[mnist.y_train == 1][:150])
    split = make_split(d, 1, seed=0)  # abnormal: the 4s
    assert len(split.x_train) == int(0.8 * (300 + 80)) and int(np.sum(split.y_test)) == 150 + 40
    assert [e.path for e in d.manifest.entries][0] == "train-images-idx3-ubyte.gz"


def test_a_tfds_dataset(tfds_dir, cifar10):
    d = load_dataset("tfds:cifar_three", tfds_dir)
    assert d.class_names == ("plane", "car", "bird") and d.x_train.shape == (300, 32, 32, 3)
    assert np.sum(d.y_test == 2) == 30
    plane = {_key(a) for a in cifar10.x_train[cifar10.y_train == 0][:130]}
    assert {_key(a) for a in d.x_train[d.y_train == 0]} | {_key(a) for a in d.x_test[d.y_test == 0]} == plane
    assert load_dataset("tfds:cifar_three", tfds_dir, image_size=16).x_train.shape == (300, 16, 16, 3)
    with pytest.raises(DataError, match="tfds:no_such_set"):
        load_dataset("tfds:no_such_set", tfds_dir)


# --- identity, cache, skipping ------------------------------------------------------------


def test_the_manifest_digest_follows_the_files_and_the_cache_follows_the_digest(official, tmp_path):
    copy = tmp_path / "digits"
    shutil.copytree(official, copy)
    before = load_dataset(f"folder:{copy}", image_size=32)
    assert load_dataset(f"folder:{copy}", image_size=32).manifest.digest == before.manifest.digest
    assert before.manifest.digest == load_dataset(f"folder:{official}", image_size=32).manifest.digest
    first = copy / "train" / "0.normal" / "0000.png"
    Image.fromarray(np.full((28, 28), 255, np.uint8)).save(first)  # a changed image
    after = load_dataset(f"folder:{copy}", image_size=32)
    assert after.manifest.digest != before.manifest.digest
    assert after.x_train[0].min() == 255 and not np.array_equal(after.x_train[0], before.x_train[0])


def test_a_runs_identity_is_the_data_not_its_location(official, tmp_path):
    copy = tmp_path / "elsewhere" / "digits"
    shutil.copytree(official, copy)
    here, there = (RunConfig(dataset=f"folder:{p}", protocol="fixed", image_size=32) for p in (official, copy))
    assert here.identity() == there.identity() and run_hash(here) == run_hash(there)
    assert here.identity()["dataset"] == "folder-digits" == parse_source(here.dataset).label
    (copy / "train" / "0.normal" / "0000.png").unlink()
    assert run_hash(RunConfig(dataset=f"folder:{copy}", protocol="fixed", image_size=32)) != run_hash(here)


def test_unreadable_images_stop_the_read_unless_skipped_and_then_the_record_lists_them(official, tmp_path):
    copy = tmp_path / "digits"
    shutil.copytree(official, copy)
    bad = copy / "train" / "0.normal" / "0007.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(DataError, match=r"0007\.png: not a readable image \(not an image format.*--skip-unreadable"):
        load_dataset(f"folder:{copy}", image_size=32)
    d = load_dataset(f"folder:{copy}", image_size=32, skip_unreadable=True)
    assert len(d.x_train) == 299 and [s[0] for s in d.skipped] == ["train/0.normal/0007.png"]
    assert d.skipped[0][1] == "not a readable image (not an image format Pillow reads, or a corrupt file)"
    config = RunConfig(dataset=f"folder:{copy}", protocol="fixed", image_size=32, skip_unreadable=True)
    _, identity = prepare_split(config)
    assert identity["skipped"][0][0] == "train/0.normal/0007.png" and identity["layout"] == "official"
    assert identity["manifest_sha256"] == d.manifest.digest and identity["n_files"] == 440


def _bad_folder(tmp_path: Path, mnist, case: str) -> tuple[Path, dict]:
    root = tmp_path / case
    images = mnist.x_train[:20]
    if case in ("empty class", "one class"):
        _save(root / "a", images)
        (root / "b").mkdir()
        if case == "one class":
            shutil.rmtree(root / "b")
    elif case in ("abnormal in training", "missing abnormal"):
        for part in ("train/0.normal", "test/0.normal", "test/1.abnormal"):
            _save(root / part, images)
        if case == "abnormal in training":
            _save(root / "train" / "1.abnormal", images[:2])
        else:
            shutil.rmtree(root / "test" / "1.abnormal")
    elif case == "mixed sizes":
        _save(root / "a", images)
        _save(root / "b", np.zeros((3, 40, 40), np.uint8))
    elif case == "not square":
        _save(root / "a", np.zeros((3, 32, 48), np.uint8))
        _save(root / "b", np.zeros((3, 32, 48), np.uint8))
    return root, {}


@pytest.mark.parametrize(
    "case, message",
    [
        ("empty class", r"b: class 'b': the folder holds no images"),
        ("one class", r"1 sub-folder\(s\); a labelled dataset needs one sub-folder per class"),
        ("abnormal in training", r"train/1.abnormal: training uses normal images only; move these"),
        ("missing abnormal", r"needs train/0.normal, test/0.normal, test/1.abnormal; missing test/1.abnormal"),
        ("mixed sizes", r"b/0000.png: 40 x 40 pixels, but .*a/0000.png is 28 x 28 pixels.*--image-size S"),
        ("not square", r"48 x 32 pixels is not square; pass --image-size S"),
    ],
)
def test_bad_folders_are_named_errors(tmp_path, mnist, case, message):
    root, _ = _bad_folder(tmp_path, mnist, case)
    with pytest.raises(DataError, match=message):
        load_dataset(f"folder:{root}")


def test_too_few_images_for_a_batch_and_bad_idx_headers_are_named(official, idx, tmp_path):
    d = load_dataset(f"folder:{official}", image_size=32)
    with pytest.raises(ConfigError, match="class 'digits' under the fixed protocol gives 300 training images"):
        RunConfig(dataset=f"folder:{official}", protocol="fixed", batch_size=512).check_fits(d)
    with pytest.raises(ConfigError, match="images are 28 x 28 pixels.*--image-size 16 or 32"):
        RunConfig(dataset=f"folder:{official}", protocol="fixed").check_fits(load_dataset(f"folder:{official}"))
    bad = tmp_path / "idx"
    shutil.copytree(idx, bad)
    _write_idx(bad / "t10k-labels-idx1-ubyte.gz", np.zeros(7, np.uint8))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz: header gives \(7,\) labels for the 120 images"):
        load_dataset(f"idx:{bad}")
    (bad / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match="incomplete IDX folder, missing t10k-images-idx3-ubyte"):
        load_dataset(f"idx:{bad}")
    with pytest.raises(ConfigError, match="unknown; give one of mnist, cifar10, folder:PATH"):
        RunConfig(dataset="imagenet")


# --- end to end: the README's commands on every source ---------------------------------------


def _sweep(tmp_path, dataset: str, *extra: str) -> pd.DataFrame:
    out = tmp_path / "results"
    argv = ["--dataset", dataset, *extra, "--preset", "smoke", "--seeds", "0", "--out", str(out), "-q"]
    assert runner.main(argv) == 0
    folders = list(out.glob("*/*/smoke*/summary.csv"))  # smoke+size16: another image size
    assert len(folders) == 1
    return pd.read_csv(folders[0]), folders[0].parent


@pytest.mark.parametrize("layout", ["official", "mvtec"])
def test_a_smoke_sweep_of_a_fixed_split_folder(layout, official, mvtec, tmp_path):
    root = {"official": official, "mvtec": mvtec}[layout]
    summary, sweep = _sweep(tmp_path, f"folder:{root}", "--all-classes", "--image-size", "32")
    assert sweep == sweep_dir(tmp_path / "results", f"folder:{root}", "fixed", "smoke")
    assert sweep.parts[-3] == f"folder-{root.name}" and set(summary.status) == {"ok"}
    assert list(summary.class_name) == list(load_dataset(f"folder:{root}", image_size=32).class_names)
    record = read_record(sweep / summary.run_dir[0])
    assert record.protocol == "fixed" and record.data["manifest_sha256"] and record.data["image_shape"][0] == 32
    assert record.config["dataset"] == f"folder:{root}" and np.isfinite(record.auc_last)
    title = (sweep / "auc_last.md").read_text().splitlines()[0]
    # The smoke preset's 600-image test subset is larger than these folders' test sets: not claimed.
    assert "image folder" in title and "test images" not in title


def test_smoke_sweeps_of_a_labelled_folder_idx_files_and_tfds(labelled, idx, tfds_dir, tmp_path):
    grid, _ = runner.grid_of(["--dataset", f"folder:{labelled}", "--all-classes", "--seeds", "0", "1"])
    assert [(c.abnormal_class, c.seed) for c in grid] == [(k, s) for k in range(3) for s in (0, 1)]
    assert {c.protocol for c in grid} == {"paper"}
    for dataset, extra in (
        (f"folder:{labelled}", ["--classes", "five", "--image-size", "32"]),
        (f"idx:{idx}", ["--classes", "2", "--image-size", "16"]),
        ("tfds:cifar_three", ["--classes", "car", "--data-dir", str(tfds_dir)]),
    ):
        summary, sweep = _sweep(tmp_path / parse_source(dataset).label, dataset, *extra)
        assert set(summary.status) == {"ok"} and len(summary) == 1, dataset
        record = read_record(sweep / summary.run_dir[0])
        assert record.data["manifest_sha256"] and np.isfinite(record.auc_last), dataset
        # The results README's command for the sweep, variant options included, names this very grid.
        command = shlex.split(reconstruct_command(load_sweep(sweep)))
        assert command[:3] == ["python", "-m", "benchmarks.run"], command
        data_dir = ["--data-dir", str(tfds_dir)] if dataset.startswith("tfds:") else []
        grid, folder = runner.grid_of([*command[3:], *data_dir, "--out", str(sweep.parents[2])])
        assert folder == sweep and [(c.abnormal_class, c.seed) for c in grid] == [(record.abnormal_class, 0)]


def test_the_train_plan_names_where_a_source_was_read_and_what_it_found(official, data_dir):
    from ganomaly_tf.train import plan

    folder = plan(RunConfig(dataset=f"folder:{official}", protocol="fixed", epochs=1, image_size=32))
    first, found = folder.splitlines()
    assert first.startswith(f"ganomaly on folder:{official}, class 0, seed 0, fixed split: 1 epoch(s) x 300 training")
    assert found.startswith(f"dataset {official}") and "official" in found
    assert len(plan(RunConfig(data_dir=str(data_dir), epochs=1)).splitlines()) == 1
