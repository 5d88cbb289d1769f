"""The scoring job (``penguins run --job penguin_scoring``) replaces its output folder only once
the model has scored in Spark's Python workers: a model that fails there leaves the last
commit of the output as it was."""

from __future__ import annotations

import pytest
import torch
from penguin_classifier import scoring
from penguin_classifier.records import verify
from test_scoring import ROWS, score, write_csv

from penguins.cli import main


def with_nan_weights(model_udf):
    """``scoring.model_udf`` of the loaded model once its weights are not numbers (this run's
    copy, loaded from the registry): the Spark function fails in the workers, where the
    network runs."""

    def broken_udf(model):
        with torch.no_grad():
            for weights in model.unwrap_python_model().model.parameters():
                weights.fill_(float("nan"))
        return model_udf(model)

    return broken_udf


def test_a_model_that_fails_in_spark_leaves_the_last_output(
    record, tmp_lab, tmp_path, capsys, monkeypatch
):
    source, output = write_csv(tmp_path / "in.csv", ROWS), tmp_path / "scored"
    assert main(score(tmp_lab, source, output)) == 0
    committed = verify(output, "07_score")
    monkeypatch.setattr(scoring, "model_udf", with_nan_weights(scoring.model_udf))
    with pytest.raises(Exception, match="the model's probabilities are NaN"):
        main(score(tmp_lab, source, output))  # a PythonException from the workers: a traceback
    assert verify(output, "07_score") == committed  # still there, whole, and the same commit
