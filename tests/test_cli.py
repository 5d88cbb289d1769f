"""The ``penguins`` command: predict, run's bad inputs, bench, exit statuses."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from penguin_classifier.cli import main
from penguin_classifier.runtime import project_root

PREDICT = ["--culmen-length", "50.4", "--culmen-depth", "15.3", "--flipper-length", "200"]


def test_predict_prints_species_and_probabilities(lab, capsys):
    args = ["predict", "--lab-dir", str(lab.root), "--island", "Dream", *PREDICT]
    assert main([*args, "--body-mass", "5000", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["species"] in {"Adelie", "Gentoo", "Chinstrap"}
    assert set(out["probabilities"]) == {"Adelie", "Gentoo", "Chinstrap"}
    assert max(out["probabilities"], key=out["probabilities"].get) == out["species"]


@pytest.mark.parametrize(
    ("island", "mass", "message"),
    [
        (
            "Anvers",
            "5000",
            "island 'Anvers' is not in the saved vocabulary ['Biscoe', 'Dream', 'Torgersen']",
        ),
        ("Dream", "heavy", "--body-mass: 'heavy' is not a number"),
        ("Dream", "nan", "--body-mass: nan is not a positive number"),
        ("Dream", "-5000", "--body-mass: -5000 is not a positive number"),
    ],
)
def test_predict_bad_input_is_one_line_and_exit_2(lab, capsys, island, mass, message):
    args = ["predict", "--lab-dir", str(lab.root), "--island", island, *PREDICT]
    assert main([*args, "--body-mass", mass]) == 2
    err = capsys.readouterr().err
    assert err == f"penguins predict: {message}\n"


def test_predict_without_a_trained_model_names_the_stage(tmp_path, capsys):
    args = ["predict", "--lab-dir", str(tmp_path), "--island", "Dream", *PREDICT]
    assert main([*args, "--body-mass", "5000"]) == 2
    assert "run 02_prepare first" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "missing.csv"], "penguins run: ingest: source not found: missing.csv"),
        (["--param", "epochz=3"], "penguins run: no stage has a parameter named epochz"),
        (["--param", "epochs"], "penguins run: --param 'epochs': expected NAME=VALUE"),
    ],
)
def test_run_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    # A subprocess, as a user runs it: no traceback, nothing but the one line on stderr.
    result = subprocess.run(
        [sys.executable, "-m", "penguin_classifier.cli", "run", "--lab-dir", str(tmp_path), *args],
        cwd=project_root(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(message)
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "raw" / "_manifest.json").exists()


def test_run_stage_after_a_missing_one_names_the_stage_to_run_first(tmp_path, capsys):
    # Only the evaluate stage, on an empty lab folder.
    from penguin_classifier.jobs import local_tasks
    from penguin_classifier.runner import run_tasks

    evaluate = [t for t in local_tasks() if t.key == "evaluate"]
    with pytest.raises(Exception, match=r"prepared is not committed .*: run 02_prepare first"):
        run_tasks(evaluate, {"lab_dir": str(tmp_path)}, spark=object(), log=lambda *_: None)


def test_bench_json_has_the_promised_keys(lab, capsys, monkeypatch):
    from penguin_classifier import bench

    monkeypatch.setattr(bench, "prepared_lab", lambda spark=None: lab)
    assert main(["bench", "--epochs", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"epochs", "lab_loop_s", "project_loop_s", "ratio", "peak_rss_mb"} <= set(result)
    assert result["epochs"] == 2
    assert result["ratio"] == pytest.approx(
        result["lab_loop_s"] / result["project_loop_s"], rel=0.05
    )
    assert result["max_loss_difference"] < 1e-4
