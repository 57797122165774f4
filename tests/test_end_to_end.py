"""End to end on real data: a smoke sweep through the runner, the run folders, the store and the report.

Two MNIST digits, two seeds, GANomaly and the autoencoder: every number the report prints is
traced back to the run records, and each record to the scores it stored.
"""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from benchmarks import report
from benchmarks import run as runner
from benchmarks.store import sweep_dir
from ganomaly_tf.record import SCHEMA_VERSION, SUMMARY_COLUMNS, read_record


@pytest.fixture(scope="module")
def results(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    argv = ["--dataset", "mnist", "--classes", "0", "1", "--seeds", "0", "1", "--models", "ganomaly", "ae"]
    argv += ["--preset", "smoke", "--out", str(root), "--data-dir", str(data_dir), "-q"]
    assert runner.main(argv) == 0
    assert report.main(["--readme", str(root)]) == 0
    return root


def test_every_run_is_a_readable_record_with_its_scores(results):
    sweep = sweep_dir(results, "mnist", "paper", "smoke")
    summary = pd.read_csv(sweep / "summary.csv")
    assert tuple(summary.columns) == SUMMARY_COLUMNS and len(summary) == 8 and set(summary.status) == {"ok"}
    for row in summary.itertuples():
        record = read_record(sweep / row.run_dir, with_history=True)
        assert record.schema_version == SCHEMA_VERSION and record.preset == "smoke"
        assert (record.model, record.abnormal_class, record.seed) == (row.model, row.abnormal_class, row.seed)
        assert record.config_id == row.config_id and record.auc_last == pytest.approx(row.auc_last, abs=1e-12)
        assert [h["epoch"] for h in record.history] == [1] and record.history[-1]["auc"] == record.auc_last
        with np.load(sweep / row.run_dir / "scores.npz") as z:
            assert len(z["scores"]) == record.data["n_test_normal"] + record.data["n_test_abnormal"]
            assert roc_auc_score(z["labels"], z["scores"]) == pytest.approx(record.auc_last, abs=1e-12)
    # One configuration a model: the two models differ, each model's four runs share one.
    assert summary.groupby("model").config_id.nunique().tolist() == [1, 1]


def test_the_report_prints_the_records_numbers(results):
    sweep = sweep_dir(results, "mnist", "paper", "smoke")
    summary = pd.read_csv(sweep / "summary.csv")
    table = (sweep / "auc_last.md").read_text()
    assert table.startswith(report.sweep_table(sweep))  # the runner's end-of-sweep table is the report's
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ")}
    for model, name in (("ganomaly", "GANomaly"), ("ae", "AE")):
        cells = [c.strip() for c in rows[name].split("|")[2:-1]]
        for k in (0, 1):
            aucs = summary[(summary.model == model) & (summary.abnormal_class == k)].auc_last
            assert cells[k] == f"{aucs.mean():.3f} ± {aucs.std(ddof=1):.3f}", (model, k)
        mean = summary[summary.model == model].groupby("abnormal_class").auc_last.mean().mean()
        assert cells[-1] == f"{mean:.3f} (2/10)"  # a mean over the two classes run, marked as such
    tidy = pd.read_csv(sweep / "auc_last.csv")
    run = tidy[tidy.abnormal_class.isin([0, 1])]
    assert len(run) == 4 and set(run.n) == {2} and set(tidy.n_failed) == {0}
    assert set(tidy[tidy.n == 0].abnormal_class) == set(range(2, 10))  # the classes not run: no value
    for name in ("auc_by_class.png", "roc_ganomaly.png", "training_ae.png", "summary.csv"):
        assert (sweep / name).is_file(), name
    readme = (results / "README.md").read_text()
    assert "MNIST, paper split" in readme and rows["GANomaly"] in readme
