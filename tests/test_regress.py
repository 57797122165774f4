"""The CI AUC regression: comparison logic, and that a broken model really fails it."""

import json

import pytest
from keras import ops

from benchmarks import regress
from ganomaly_tf.models import GANomaly

BASELINE = {"classes": ["0", "1"], "tolerance": 0.03, "auc_last": {"ganomaly": {"0": 0.80, "1": 0.40}}}


def test_compare_passes_within_tolerance_and_on_rises():
    passed, table = regress.compare({"ganomaly": {"0": 0.78, "1": 0.55}}, BASELINE, 0.03)
    assert passed and table.count(" ok") == 2


def test_compare_fails_on_a_drop_and_on_a_missing_run():
    passed, table = regress.compare({"ganomaly": {"0": 0.70, "1": 0.40}}, BASELINE, 0.03)
    assert not passed and "REGRESSION" in table and "-0.1000" in table
    passed, table = regress.compare({"ganomaly": {"1": 0.40}}, BASELINE, 0.03)
    assert not passed and "MISSING" in table


def test_missing_baseline_says_how_to_make_one(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        regress.main(["--baseline", str(tmp_path / "none.json")])
    assert e.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"python -m benchmarks.regress: error: --baseline {tmp_path / 'none.json'}: no such file")
    assert "--update" in line


@pytest.mark.slow
def test_a_constant_score_model_fails_the_regression(data_dir, tmp_path, monkeypatch, capsys):
    """A deliberately broken GANomaly (every image scored the same) must not pass CI."""
    baseline = json.loads(regress.DEFAULT_BASELINE.read_text())
    k = max(baseline["auc_last"]["ganomaly"], key=baseline["auc_last"]["ganomaly"].get)  # its best class
    monkeypatch.setattr(GANomaly, "anomaly_score", lambda self, x, training=False: ops.zeros(ops.shape(x)[:1]))
    rc = regress.main(["--classes", k, "--data-dir", str(data_dir), "--out", str(tmp_path), "-q"])
    captured = capsys.readouterr()
    assert rc == 1, captured.out
    assert "REGRESSION" in captured.out and "--update" in captured.err
    assert "0.5000" in captured.out  # a constant score has AUC one half
