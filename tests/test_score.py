"""Scoring new images: models a sweep keeps (``--save-models``), their label-free thresholds, and
``python -m ganomaly_tf.score`` on PNG files written from real MNIST test images.

Two smoke sweeps of one run, the same settings, one with ``--save-models`` and one without: the
kept model and threshold change neither the run's folder nor any of its results.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from benchmarks import run as runner
from benchmarks.store import MODEL_FILE, sweep_dir
from ganomaly_tf import score, train
from ganomaly_tf.config import RunConfig
from ganomaly_tf.data import preprocess
from ganomaly_tf.data.images import read_images
from ganomaly_tf.errors import ConfigError
from ganomaly_tf.experiment import THRESHOLD_PERCENTILE, Prepared, label_free_threshold, prepare, run
from ganomaly_tf.record import RunRecord, read_record

PROG = "python -m ganomaly_tf.score"
SWEEP = ["--dataset", "mnist", "--classes", "0", "--seeds", "0", "--models", "ganomaly", "--preset", "smoke"]
N_EACH = 20  # normal and abnormal test images written as PNG files


def only_run(out: Path) -> Path:
    runs = sweep_dir(out, "mnist", "paper", "smoke") / "runs"
    (folder,) = [p for p in runs.iterdir() if not p.name.startswith(".")]  # not the lock files
    return folder


@pytest.fixture(scope="module")
def runs(data_dir, tmp_path_factory) -> dict[str, Path]:
    """The run folder of the sweep that kept its model ("kept") and of the one that did not ("plain")."""
    root = tmp_path_factory.mktemp("score")
    common = [*SWEEP, "--data-dir", str(data_dir), "--no-report", "-q"]
    assert runner.main([*common, "--out", str(root / "kept"), "--save-models"]) == 0
    assert runner.main([*common, "--out", str(root / "plain")]) == 0
    return {"kept": only_run(root / "kept"), "plain": only_run(root / "plain")}


@pytest.fixture(scope="module")
def digits(runs, mnist, tmp_path_factory) -> tuple[Path, list[Path], np.ndarray, np.ndarray]:
    """PNG files of test images the run scored, in two sub-folders: (folder, paths in the tool's
    order, the images uint8 (n, 28, 28) in that order, the run's own scores of them)."""
    folder = tmp_path_factory.mktemp("digits")
    with np.load(runs["kept"] / "scores.npz") as z:
        scores, labels, origins = z["scores"], z["labels"], z["origins"]
    n_train = len(mnist.x_train)
    written = {}
    for label, name in ((0, "normal"), (1, "abnormal")):
        (folder / name).mkdir()
        for i in np.flatnonzero((labels == label) & (origins >= n_train))[:N_EACH]:
            path = folder / name / f"{i:04d}.png"
            Image.fromarray(mnist.x_test[origins[i] - n_train]).save(path)
            written[path] = (mnist.x_test[origins[i] - n_train], scores[i])
    paths = sorted(written)  # the tool lists a folder sorted by path
    return folder, paths, np.stack([written[p][0] for p in paths]), np.array([written[p][1] for p in paths])


def loaded(run_dir: Path):
    return keras.saving.load_model(run_dir / MODEL_FILE)


def rows(text: str) -> list[list[str]]:
    return [line.split(",") for line in text.strip().splitlines()]


def one_line_error(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as e:
        score.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"{PROG}: error: "), err
    return err[0]


# -- --save-models and the threshold ------------------------------------------------------


def test_a_kept_run_has_its_model_and_a_label_free_threshold(runs):
    kept, plain = runs["kept"], runs["plain"]
    assert kept.name == plain.name  # the same identity: keeping the model changes no hash
    assert (kept / MODEL_FILE).is_file() and not (plain / MODEL_FILE).exists()
    assert "threshold" not in json.loads((plain / "result.json").read_text())
    record = read_record(kept)
    t = record.threshold
    assert t["percentile"] == THRESHOLD_PERCENTILE and t["images"] == "training" and t["bn_mode"] == "inference"
    assert t["n_images"] == record.data["n_train"] == 256  # the smoke preset's training images, under the cap
    assert "trained on these images" in t["rule"] and "biased low" in t["rule"] and "--val-fraction" in t["rule"]
    # It is the 95th percentile of the training images' scores, scored as the run scores its test set.
    data = prepare(RunConfig.from_dict(record.config))
    train_scores = loaded(kept).score(data.x_train, batch_size=record.config["score_batch_size"])
    assert t["value"] == pytest.approx(np.percentile(train_scores.astype(np.float64), 95), rel=1e-6)
    with np.load(kept / "scores.npz") as z:  # measured on the test set once fixed; never chosen there
        assert t["test_false_alarm_rate"] == pytest.approx(np.mean(z["scores"][z["labels"] == 0] > t["value"]))
        assert t["test_detection_rate"] == pytest.approx(np.mean(z["scores"][z["labels"] == 1] > t["value"]))
    assert RunRecord.from_json(record.to_json()).threshold == t


def test_keeping_the_model_changes_no_result(runs):
    kept, plain = (json.loads((runs[k] / "result.json").read_text()) for k in ("kept", "plain"))
    timings = {"train_seconds", "total_seconds", "train_images_per_s", "score_images_per_s", "threshold"}
    assert set(kept) - set(plain) == {"threshold"}
    for key in set(plain) - timings:
        assert kept[key] == plain[key], key
    histories = [pd.read_csv(runs[k] / "history.csv") for k in ("kept", "plain")]
    untimed = [c for c in histories[0].columns if "seconds" not in c]
    pd.testing.assert_frame_equal(histories[0][untimed], histories[1][untimed])
    with np.load(runs["kept"] / "scores.npz") as a, np.load(runs["plain"] / "scores.npz") as b:
        for name in ("scores", "labels", "origins"):
            np.testing.assert_array_equal(a[name], b[name])
    assert (runs["kept"] / "config.json").read_text() == (runs["plain"] / "config.json").read_text()


def test_a_finished_run_without_a_model_is_skipped_and_says_how_to_get_one(runs, data_dir, capsys):
    out = runs["plain"].parents[4]
    argv = [*SWEEP, "--data-dir", str(data_dir), "--no-report", "-q", "--out", str(out), "--save-models"]
    capsys.readouterr()
    assert runner.main(argv) == 0
    err = capsys.readouterr().err
    assert "1 finished run(s)" in err and "no model.keras" in err and "--force" in err
    assert not (runs["plain"] / MODEL_FILE).exists()


def test_the_threshold_of_held_out_normals_and_the_cap(runs):
    """With validation images the threshold is theirs (no bias warning); at most max_images are scored, seeded."""
    record = read_record(runs["kept"])
    config = RunConfig.from_dict({**record.config, "val_fraction": 0.1})
    model = loaded(runs["kept"])
    full = prepare(RunConfig.from_dict(record.config))
    data = Prepared(full.split, full.identity, full.x_train[:200], full.x_test, full.x_train[200:], 1, 32)
    t = label_free_threshold(model, data, config)
    assert t["images"] == "validation" and t["n_images"] == 56
    assert "held-out training normals" in t["rule"] and "without test labels" in t["rule"] and "biased" not in t["rule"]
    assert t["value"] == pytest.approx(np.percentile(model.score(full.x_train[200:]).astype(np.float64), 95))
    capped = label_free_threshold(model, data, config, percentile=90, max_images=20)
    assert capped["n_images"] == 20 and capped["percentile"] == 90 and "20 of the 56" in capped["rule"]
    assert "90th percentile" in capped["rule"]
    assert label_free_threshold(model, data, config, percentile=90, max_images=20) == capped  # seeded
    for bad in (0, 100, -5, "95"):
        with pytest.raises(ConfigError, match="threshold percentile"):
            label_free_threshold(model, data, config, percentile=bad)
    with pytest.raises(ConfigError, match="max_images 0"):
        label_free_threshold(model, data, config, max_images=0)
    with pytest.raises(ConfigError, match="threshold percentile 100"):  # before any data is read or trained
        run(RunConfig(data_dir="/nonexistent"), threshold_percentile=100)


# -- python -m ganomaly_tf.score ----------------------------------------------------------


def test_scoring_a_folder_gives_the_runs_own_scores(runs, digits, capsys):
    folder, paths, images, run_scores = digits
    assert score.main(["--model", str(runs["kept"]), str(folder)]) == 0
    captured = capsys.readouterr()
    out = rows(captured.out)
    assert [Path(r[0]) for r in out] == paths and len(out) == 2 * N_EACH  # one line per image, sub-folders too
    scores = np.array([r[1] for r in out], np.float32)
    # The library on the same images, preprocessed as the run's: the same numbers, to the bit.
    record = read_record(runs["kept"])
    direct = loaded(runs["kept"]).score(preprocess(images, size=32, channels=1), batch_size=1024)
    np.testing.assert_array_equal(scores, direct)
    np.testing.assert_allclose(scores, run_scores, rtol=1e-5)  # what the run scored them in its test set
    value = record.threshold["value"]
    assert [r[2] for r in out] == ["abnormal" if s > value else "normal" for s in scores]
    assert "scored 40 image(s)" in captured.err and "95th percentile" in captured.err


def test_csv_output_and_a_given_threshold(runs, digits, tmp_path, capsys):
    folder, paths, _, _ = digits
    assert score.main(["--model", str(runs["kept"]), str(folder)]) == 0
    stdout = rows(capsys.readouterr().out)
    cut = float(np.median([float(r[1]) for r in stdout]))
    argv = ["--model", str(runs["kept"]), str(folder), "--threshold", repr(cut), "--output", str(tmp_path / "s.csv")]
    assert score.main(argv) == 0
    assert capsys.readouterr().out == ""
    table = pd.read_csv(tmp_path / "s.csv", dtype={"score": str})
    assert list(table.columns) == ["path", "score", "label"] and list(table.path) == [str(p) for p in paths]
    assert list(table.score) == [r[1] for r in stdout]  # the same scores, as printed
    assert list(table.label) == ["abnormal" if float(s) > cut else "normal" for s in table.score]
    assert set(table.label) == {"normal", "abnormal"}
    # Files as well as folders, each image once.
    assert score.main(["--model", str(runs["kept"]), str(paths[0]), str(paths[1]), str(paths[0])]) == 0
    assert [r[0] for r in rows(capsys.readouterr().out)] == [str(paths[0]), str(paths[1])]


def test_a_bare_keras_file_scores_without_labels_unless_given_a_threshold(runs, digits, capsys):
    folder, paths, _, run_scores = digits
    model_file = str(runs["kept"] / MODEL_FILE)
    assert score.main(["--model", model_file, str(folder)]) == 0
    captured = capsys.readouterr()
    out = rows(captured.out)
    assert all(len(r) == 2 for r in out) and "no threshold" in captured.err
    scores = np.array([r[1] for r in out], np.float32)
    # Decoded at the model's size by Pillow (no record says how the training images were resized).
    x = preprocess(read_images(paths, size=32, channels=1), size=32, channels=1)
    np.testing.assert_array_equal(scores, loaded(runs["kept"]).score(x, batch_size=1024))
    assert np.corrcoef(scores, run_scores)[0, 1] > 0.95  # close to the run's: only the resize differs
    assert score.main(["--model", model_file, str(folder), "--threshold", "0"]) == 0
    assert {r[2] for r in rows(capsys.readouterr().out)} == {"abnormal"}


def test_the_errors_name_the_input_and_the_fix(runs, digits, tmp_path, capsys):
    folder = str(digits[0])
    kept, model_file = str(runs["kept"]), str(runs["kept"] / MODEL_FILE)
    (tmp_path / "empty").mkdir()
    (tmp_path / "not_a_run").mkdir()
    (tmp_path / "broken.keras").write_bytes(b"not a zip archive")
    (tmp_path / "weights.h5").write_bytes(b"")
    other = tmp_path / "other_run"  # a run folder whose model.keras is not its run's
    shutil.copytree(runs["kept"], other)
    result = json.loads((other / "result.json").read_text())
    result["model_config"]["channels"] = 3
    (other / "result.json").write_text(json.dumps(result))
    cases = [
        (["--model", str(runs["plain"]), folder], "has no model.keras (its sweep ran without --save-models)"),
        (["--model", str(runs["plain"]), folder], "rerun the sweep with --save-models --force"),
        (["--model", str(tmp_path / "nowhere"), folder], "no such run folder or .keras file"),
        (["--model", str(tmp_path / "not_a_run"), folder], "no readable result.json"),
        (["--model", str(tmp_path / "weights.h5"), folder], "not a .keras file nor a run folder"),
        (["--model", str(tmp_path / "broken.keras"), folder], "cannot be loaded as a Keras model"),
        (["--model", str(other), folder], "result.json records 32 x 32 x 3: the model is not this run's"),
        (["--model", kept, str(tmp_path / "empty")], "no image files in this folder or below it"),
        (["--model", kept, str(tmp_path / "missing.png")], "missing.png: no such image file or folder"),
        (["--model", model_file, folder, "--threshold", "auto"], "no recorded threshold (a bare .keras file"),
        (["--model", kept, folder, "--threshold", "high"], "'high': not a number; give auto or a score"),
        (["--model", kept, folder, "--output", str(tmp_path / "no" / "s.csv")], "does not exist; create it"),
        (["--model", kept, folder, "--batch-size", "0"], "must be at least 1"),
    ]
    for argv, says in cases:
        assert says in one_line_error(capsys, argv), argv
    assert not (tmp_path / "no").exists()


def test_an_unreadable_image_is_named_or_skipped(runs, digits, tmp_path, capsys):
    (tmp_path / "bad.png").write_bytes(b"not an image")
    good = str(digits[1][0])
    line = one_line_error(capsys, ["--model", str(runs["kept"]), good, str(tmp_path / "bad.png")])
    assert "bad.png: not a readable image" in line and "--skip-unreadable" in line
    assert score.main(["--model", str(runs["kept"]), good, str(tmp_path / "bad.png"), "--skip-unreadable"]) == 0
    captured = capsys.readouterr()
    assert [r[0] for r in rows(captured.out)] == [good] and f"skipped {tmp_path / 'bad.png'}: " in captured.err


# -- ganomaly_tf.train --save-model -------------------------------------------------------


def test_train_save_model_records_a_threshold(data_dir, digits, tmp_path, capsys):
    argv = ["--data-dir", str(data_dir), "--train-subset", "128", "--test-subset", "100", "--epochs", "1"]
    argv += ["--image-size", "16"]  # full-width networks (the tool has no --filters): the smallest size is quick
    with pytest.raises(SystemExit) as e:  # refused before any training
        train.main([*argv, "--save-model", str(tmp_path / "model.h5")])
    assert e.value.code == 2 and "give a path ending in .keras" in capsys.readouterr().err
    out = ["--output", str(tmp_path / "run.json"), "--save-model", str(tmp_path / "m.keras")]
    assert train.main([*argv, *out]) == 0
    printed = capsys.readouterr().out
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["threshold"]["n_images"] == 128 and record["threshold"]["images"] == "training"
    value = record["threshold"]["value"]
    assert f"--threshold {value!r}" in printed  # the command that labels new images with it
    assert score.main(["--model", str(tmp_path / "m.keras"), str(digits[0]), "--threshold", repr(value)]) == 0
    out = rows(capsys.readouterr().out)
    assert len(out) == 2 * N_EACH and all(r[2] == ("abnormal" if float(r[1]) > value else "normal") for r in out)
