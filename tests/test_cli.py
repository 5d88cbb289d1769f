"""The ``penguins`` command: predict, run (all or --only some stages), bench, exit statuses."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest
from penguin_classifier.errors import PenguinInputError
from penguin_classifier.jsonfile import read_json
from penguin_classifier.lab import Lab
from penguin_classifier.runtime import project_root

from penguins.cli import main, print_outcome, print_tracking, program
from penguins.jobs import from_tasks, local_tasks, only_tasks

PREDICT = ["--culmen-length", "50.4", "--culmen-depth", "15.3", "--flipper-length", "200"]
STAGES = "ingest, prepare, model, train, evaluate, distribute, serve"


def penguins(capsys, *args: str) -> tuple[int, str]:
    """Exit status and stderr of ``penguins ARGS`` in this process (argparse exits by itself)."""
    try:
        status = main(list(args))
    except SystemExit as exit:
        status = exit.code
    return status, capsys.readouterr().err


def penguins_process(*args: str) -> subprocess.CompletedProcess:
    """``penguins ARGS`` as a user runs it: its own process, so nothing but its output counts."""
    return subprocess.run(
        [sys.executable, "-m", "penguins.cli", *args],
        cwd=project_root(),
        capture_output=True,
        text=True,
        timeout=120,
    )


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
        ("Dream", "heavy", "argument --body-mass: 'heavy' is not a number"),
        ("Dream", "nan", "argument --body-mass: nan is not a positive number"),
        ("Dream", "-5000", "argument --body-mass: -5000 is not a positive number"),
        # Finite as a Python float, inf as the model's float32: it answered NaN probabilities.
        (
            "Dream",
            "1e39",
            "argument --body-mass: 1e39 is not a positive number up to 3.4e38 (float32)",
        ),
    ],
)
def test_predict_bad_input_is_one_line_and_exit_2(lab, capsys, island, mass, message):
    args = ["predict", "--lab-dir", str(lab.root), "--island", island, *PREDICT]
    assert penguins(capsys, *args, "--body-mass", mass) == (2, f"penguins predict: {message}\n")


def test_predict_never_prints_nan_probabilities(lab, capsys):
    # 3.4e38 fits in float32, but CulmenDepth x its weights does not: inf, then NaN. --json
    # printed NaN, which is not JSON; now the answer is one line and exit 2.
    args = ["predict", "--lab-dir", str(lab.root), "--island", "Dream", "--culmen-length", "50"]
    args += ["--culmen-depth", "3.4e38", "--flipper-length", "200", "--body-mass", "5000"]
    assert penguins(capsys, *args, "--json") == (
        2,
        "penguins predict: the model's probabilities are NaN: these values overflow its float32 "
        "arithmetic, or its weights are not numbers\n",
    )


def test_predict_without_a_trained_model_names_the_stage(tmp_path, capsys):
    args = ["predict", "--lab-dir", str(tmp_path), "--island", "Dream", *PREDICT]
    assert main([*args, "--body-mass", "5000"]) == 2
    assert "run 02_prepare first" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["submit", "--timeout", "0"], "--timeout: 0 is not a positive number"),
        (["run", "--var", "x"], "--var: 'x': expected NAME=VALUE"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(capsys, args, message):
    assert penguins(capsys, *args) == (2, f"penguins {args[0]}: argument {message}\n")


def test_only_runs_one_stage(tmp_path):
    result = penguins_process("run", "--only", "ingest", "--lab-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "tasks (databricks.yml): ingest\n" in result.stdout
    assert (tmp_path / "raw" / "_manifest.json").exists()
    assert not (tmp_path / "prepared").exists()  # the next stage did not run


def test_only_keeps_the_jobs_order():
    assert [t.key for t in only_tasks(local_tasks(), ["train", "ingest"])] == ["ingest", "train"]


def test_from_runs_a_task_and_every_later_one_in_the_jobs_order():
    # The training job's order (databricks.yml): ingest, prepare, model, train, evaluate, ...
    tasks = from_tasks(local_tasks(), "model")
    assert [t.key for t in tasks] == ["model", "train", "evaluate", "distribute", "serve"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "missing.csv"], "penguins run: ingest: source not found: missing.csv"),
        (
            ["--only", "ingest", "--source", "nope.csv"],
            "penguins run: ingest: source not found: nope.csv",
        ),
        (
            ["--only", "ingest,nope"],
            f"penguins run: --only nope: not a task of the job (tasks: {STAGES})",
        ),
        (["--from", "nope"], f"penguins run: --from nope: not a task of the job (tasks: {STAGES})"),
        (
            ["--from", "model", "--only", "model"],
            "penguins run: argument --only: not allowed with argument --from",
        ),
        (["--param", "epochz=3"], "penguins run: no stage has a parameter named epochz"),
        (["--param", "epochs"], "penguins run: argument --param: 'epochs': expected NAME=VALUE"),
    ],
)
def test_run_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    result = penguins_process("run", "--lab-dir", str(tmp_path), *args)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.stderr
    with pytest.raises(PenguinInputError, match="not committed"):
        Lab(tmp_path).require("raw")  # nothing a later stage would use


CORES = os.cpu_count()


@pytest.mark.parametrize(
    ("stage", "params", "message"),
    [
        # NaN compares false with both bounds; inf is above 0.
        (
            "prepare",
            ["test_fraction=nan"],
            "parameter test_fraction: nan is not a finite number above 0.0 and below 1.0",
        ),
        ("train", ["lr=inf"], "parameter lr: inf is not a finite number above 0.0"),
        ("train", ["lr=nan"], "parameter lr: nan is not a finite number above 0.0"),
        # A finite rate that makes the weights inf in the first epoch, then NaN.
        (
            "train",
            ["lr=1e30"],
            "epoch 1: the loss is nan, the weights are no longer finite numbers: "
            "try a smaller learning rate (lr)",
        ),
        ("distribute", ["lr=inf"], "parameter lr: inf is not a finite number above 0.0"),
        # Processes on the driver (TorchDistributor's local mode): one core each.
        (
            "distribute",
            ["backend=torch", f"num_processes={CORES + 1}"],
            f"parameter num_processes: {CORES + 1} processes need {CORES + 1} cores, "
            f"the driver has {CORES}",
        ),
    ],
)
def test_run_refuses_parameters_the_model_cannot_use(tmp_lab, capsys, stage, params, message):
    folder = {"prepare": "prepared", "train": "trained", "distribute": "distributed"}[stage]
    record = tmp_lab.folder(folder) / "_manifest.json"
    before = record.read_bytes()
    args = ["run", "--only", stage, "--lab-dir", str(tmp_lab.root)]
    args += [a for p in params for a in ("--param", p)]
    assert penguins(capsys, *args) == (2, f"penguins run: {stage}: {message}\n")
    # Nothing committed: the stage's folder holds its earlier commit, or none (06 uncommits
    # distributed/ before it launches).
    if record.read_bytes() != before:
        with pytest.raises(PenguinInputError, match="run 06_distribute first"):
            tmp_lab.require(folder)


def test_only_a_later_stage_names_the_stage_to_run_first(tmp_path, capsys):
    # Only the evaluate stage, on an empty lab folder.
    status, err = penguins(capsys, "run", "--only", "evaluate", "--lab-dir", str(tmp_path))
    assert status == 2
    assert err.startswith("penguins run: evaluate: ")
    # prepared/ is missing: prepare and every task up to evaluate, one command to paste.
    rerun = (
        f"run: {program('penguins')} run --lab-dir {tmp_path} --only prepare,model,train,evaluate"
    )
    assert err.endswith(f"(no _manifest.json): {rerun}\n")


def test_the_end_of_a_run_says_where_the_figures_are(lab_run, capsys):
    lab, results = lab_run
    print_outcome(lab, results)
    printed = capsys.readouterr().out.splitlines()
    # 05_evaluate's two plots, where it committed them, to open.
    assert f"figures: {lab.loss_plot}, {lab.confusion_plot}" in printed
    assert (
        lab.loss_plot.read_bytes()[:8]
        == lab.confusion_plot.read_bytes()[:8]
        == b"\x89PNG\r\n\x1a\n"
    )


@pytest.mark.parametrize("on_path", [True, False])
def test_the_commands_printed_run_as_printed(monkeypatch, tmp_path, capsys, on_path):
    # make puts penguins and mlflow in .venv/bin, not on PATH: printed by name only where PATH
    # finds this environment's (an activated .venv), else by their path from here.
    scripts = os.path.dirname(sys.executable)
    monkeypatch.setenv("PATH", scripts if on_path else str(tmp_path))
    monkeypatch.chdir(project_root())
    venv = os.path.relpath(scripts, project_root())  # .venv/bin
    mlflow = "mlflow" if on_path else f"{venv}/mlflow"
    assert program("penguins") == ("penguins" if on_path else f"{venv}/penguins")
    record = {"tracking_uri": "sqlite:////tmp/my runs/mlflow.db", "experiment": "x"}
    print_tracking(record)
    last = capsys.readouterr().out.splitlines()[-1]
    assert (
        last == f"browse them: {mlflow} ui --backend-store-uri 'sqlite:////tmp/my runs/mlflow.db'"
    )
    # As printed, from here: the shell finds the program and the URI is one argument.
    words = shlex.split(last.removeprefix("browse them: "))
    assert shutil.which(words[0]) and words[1:3] == ["ui", "--backend-store-uri"]
    assert words[3:] == ["sqlite:////tmp/my runs/mlflow.db"]


def test_bench_reports_medians_of_the_loops_and_the_floor(lab, tmp_lab, capsys, monkeypatch):
    from penguin_classifier.jsonfile import read_json

    from penguins import bench

    # The bench runs notebook 04, which commits trained/ again: on a copy of the session's lab
    # (removed by the bench when done, as a lab it prepared).
    monkeypatch.setattr(bench, "prepared_lab", lambda **_: tmp_lab)
    assert main(["bench", "loop", "--epochs", "2", "--repeat", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)  # stdout is the JSON only, not the notebook's
    assert (result["epochs"], result["repeat"], result["train_rows"]) == (2, 3, 960)
    # From the same initial weights, 2 epochs end where the session's 100-epoch run was after 2.
    after_two = read_json(lab.history)["history"][1]["train_loss"]
    assert result["project_final_loss"] == pytest.approx(after_two, rel=1e-5)
    for loop in ("lab_loop_s", "project_loop_s", "floor_loop_s"):
        runs = result[loop]["runs"]
        assert len(runs) == 3
        assert result[loop]["median"] == sorted(runs)[1]  # the middle one of 3
        assert result[loop]["min"] == min(runs)
    assert result["ratio_of_medians"] == pytest.approx(
        result["lab_loop_s"]["median"] / result["project_loop_s"]["median"], rel=0.05
    )
    # floor_overhead is notebook / floor - 1 of the medians before they were rounded to the ms;
    # at 2 epochs a median is ~0.025 s, so the rounded ones bound it only this loosely.
    notebook, floor = result["project_loop_s"]["median"], result["floor_loop_s"]["median"]
    low, high = (notebook - 5e-4) / (floor + 5e-4) - 1, (notebook + 5e-4) / (floor - 5e-4) - 1
    assert low - 5e-4 <= result["floor_overhead"] <= high + 5e-4
    # The floor trains as notebook 04 does, less the bookkeeping: the same weights to the bit.
    assert result["floor_same_weights"] is True
    assert result["max_loss_difference"] < 1e-4


BENCH_MODES = ["loop", "accuracy", "distributed", "seed-lab", "scoring", "serving"]


def test_bench_alone_lists_its_modes(capsys):
    assert main(["bench"]) == 0
    out = capsys.readouterr().out
    # argparse's list: each mode 4 spaces in, its help beside it or on the next lines.
    assert re.findall(r"^ {4}(\S+)", out, re.MULTILINE) == BENCH_MODES


def test_make_bench_runs_the_loop_benchmark():
    from penguins.cli import build_parser, cmd_bench_loop

    makefile = (project_root() / "Makefile").read_text()
    command = makefile.split("\nbench:", 1)[1].splitlines()[1].split()
    assert command[0] == "$(BIN)/penguins"
    assert build_parser().parse_args(command[1:]).func is cmd_bench_loop


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["loop", "--repeat", "0"], "penguins bench loop: argument --repeat: 0 is below 1"),
        (
            ["loop", "--epochs", "ten"],
            "penguins bench loop: argument --epochs: 'ten' is not a whole number",
        ),
        (["accuracy", "--seeds", "0"], "penguins bench accuracy: argument --seeds: 0 is below 1"),
        (["scoring", "--rows", "0"], "penguins bench scoring: argument --rows: 0 is below 1"),
        (
            ["serving", "--seconds", "soon"],
            "penguins bench serving: argument --seconds: 'soon' is not a number",
        ),
        # A mode takes only its own options, and the modes are no longer flags.
        (["loop", "--rows", "5"], "penguins: unrecognized arguments: --rows 5"),
        (["seed-lab", "--epochs", "5"], "penguins: unrecognized arguments: --epochs 5"),
        (["--scoring"], "penguins: unrecognized arguments: --scoring"),
        # The list of modes follows (its quoting changes with Python's version).
        (["fast"], "penguins bench: argument MODE: invalid choice: 'fast' (choose from "),
    ],
)
def test_bad_bench_arguments_are_one_line_and_exit_2(capsys, args, message):
    status, err = penguins(capsys, "bench", *args)
    assert status == 2 and err.startswith(message) and err.count("\n") == 1


def test_a_benchmark_phase_is_the_cell_that_calls_its_function_whatever_its_title(tmp_path):
    from penguin_classifier.errors import PenguinRunError

    from penguins.bench import calling_cell, loop_seconds
    from penguins.runner import TaskResult, notebook_cells

    notebooks = project_root() / "notebooks"
    # Notebook 04 with its loop's cell retitled, as a learner may: still the loop.
    retitled = tmp_path / "04_train.py"
    source = (notebooks / "04_train.py").read_text()
    retitled.write_text(source.replace("# DBTITLE 1,Train: the lab's loop", "# DBTITLE 1,Epochs"))
    index = calling_cell(retitled, "train")
    assert index == calling_cell(notebooks / "04_train.py", "train")
    assert notebook_cells(retitled)[index].title == "Epochs"
    assert "for epoch in range(1, epochs + 1):" in notebook_cells(retitled)[index].source
    # loop_seconds reads that cell's time from penguins run's result: each cell's time here is
    # its position, so the loop's is its index.
    cells = [(cell.title, float(i)) for i, cell in enumerate(notebook_cells(retitled))]
    assert loop_seconds(TaskResult("train", 99.0, {}, cells)) == index
    with pytest.raises(PenguinRunError, match=r"^04_train.py ended before its training loop$"):
        loop_seconds(TaskResult("train", 1.0, {}, cells[:index]))
    # Notebook 07's work starts at the first cell that reads the rows; none before it does.
    scoring = notebook_cells(notebooks / "07_score.py")
    reads = calling_cell(notebooks / "07_score.py", "read_input")
    assert "scoring.read_input(spark, source)" in scoring[reads].source
    assert not any("read_input" in cell.source for cell in scoring[:reads])
    with pytest.raises(PenguinRunError, match=r"^04_train.py: no cell calls fit\(\), the phase"):
        calling_cell(retitled, "fit")


def test_predict_with_a_registered_model_answers_as_the_lab_folder(lab, capsys):
    # The session's job registered the lab's model as penguin_classifier@champion.
    args = ["predict", "--island", "Dream", *PREDICT, "--body-mass", "5000", "--json"]
    assert main([*args, "--lab-dir", str(lab.root)]) == 0
    from_lab = json.loads(capsys.readouterr().out)
    assert main([*args, "--model-uri", "models:/penguin_classifier@champion"]) == 0
    from_registry = json.loads(capsys.readouterr().out)
    assert from_registry["species"] == from_lab["species"] == "Gentoo"
    assert from_registry["probabilities"] == pytest.approx(from_lab["probabilities"], rel=1e-5)
    status, err = penguins(capsys, *args, "--model-uri", "models:/nobody@champion")
    assert status == 2 and err.startswith("penguins predict: model models:/nobody@champion: ")
    assert err.count("\n") == 1


def test_bench_scoring_prints_rows_per_second_of_spark_and_pandas(lab, capsys):
    assert main(["bench", "scoring", "--rows", "500", "--repeat", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["rows"], result["repeat"]) == (500, 1)
    assert result["model_udf_rows_per_s"] > 0 and result["pandas_rows_per_s"] > 0


def test_run_the_scoring_job_of_the_bundle(lab, tmp_path, capsys):
    # The penguin_scoring job, locally, on a CSV of new penguins, with the champion that the
    # session's job (``lab``) registered.
    new = tmp_path / "new_penguins.csv"
    new.write_text(
        "Island,CulmenLength,CulmenDepth,FlipperLength,BodyMass\nBiscoe,46.1,13.2,211,4500\n"
    )
    args = ["run", "--job", "penguin_scoring", "--lab-dir", str(tmp_path / "lab")]
    params = ["--param", f"input={new}", "--param", f"output={tmp_path / 'out'}"]
    assert main([*args, *params]) == 0
    out = capsys.readouterr().out
    assert "penguin_scoring tasks (databricks.yml): score" in out
    assert "1 rows: 1 scored (Adelie 0, Gentoo 1, Chinstrap 0)" in out
    assert (tmp_path / "out" / "_manifest.json").is_file()
    status, err = penguins(capsys, "run", "--job", "penguin_nothing")
    assert status == 2 and err.count("\n") == 1


SEEDS = "0 and 4294967295"  # numpy's seed range, 0 to 2**32 - 1


@pytest.mark.parametrize(
    ("stage", "args", "message"),
    [
        # Each was a traceback: a network no memory holds (hidden), a seed past what Spark or
        # torch take, a Spark sequence or a batch past a C long, or days of epochs.
        ("model", ["--param", "hidden=100000000"], "hidden: 100000000 is not between 1 and 4096"),
        (
            "prepare",
            ["--seed", "99999999999999999999"],
            f"seed: 99999999999999999999 is not between {SEEDS}",
        ),
        ("model", ["--seed", "-1"], f"seed: -1 is not between {SEEDS}"),
        (
            "prepare",
            ["--param", f"oversample={10**12}"],
            f"oversample: {10**12} is not between 1 and 100",
        ),
        (
            "train",
            ["--param", f"batch_size={10**20}"],
            f"batch_size: {10**20} is not between 1 and 100000",
        ),
        ("train", ["--epochs", str(10**12)], f"epochs: {10**12} is not between 1 and 100000"),
        (
            "distribute",
            ["--param", f"batch_size={10**12}"],
            f"batch_size: {10**12} is not between 1 and 100000",
        ),
        ("distribute", ["--param", "epochs=0"], "epochs: 0 is not between 1 and 100000"),
    ],
)
def test_every_integer_parameter_has_a_range(tmp_path, capsys, stage, args, message):
    # The stage reads its parameters first: refused before it looks at the lab folder (empty).
    run = ["run", "--only", stage, "--lab-dir", str(tmp_path), *args]
    assert penguins(capsys, *run) == (2, f"penguins run: {stage}: parameter {message}\n")
    assert list(tmp_path.iterdir()) == []  # nothing written, the lock released


def test_a_model_that_did_not_learn_is_announced(tmp_lab, capsys):
    # lr=1000: Adam's steps throw the weights far, but they stay finite: training "succeeds"
    # and 05 registers the model (no alias: the champion gate). 45 of the 102 held-out rows
    # are Adelie: answering Adelie for every penguin scores 45/102 = 0.4412.
    args = ["run", "--only", "train,evaluate", "--lab-dir", str(tmp_lab.root), "--epochs", "3"]
    assert main([*args, "--param", "lr=1000"]) == 0
    out = capsys.readouterr().out
    accuracy = read_json(tmp_lab.evaluation)["accuracy"]
    assert accuracy <= 45 / 102
    assert (
        f"WARNING: test accuracy {accuracy:.4f} is no better than always answering the "
        "commonest species, Adelie (0.4412): the model did not learn; check lr and epochs\n"
    ) in out
    # Where MLflow keeps it, from trained/'s and evaluation/'s mlflow.json; distributed/ was
    # built from the model these replaced: its run is not named.
    run_id = read_json(tmp_lab.folder("trained") / "mlflow.json")["train_run_id"]
    version = read_json(tmp_lab.folder("evaluation") / "mlflow.json")["version"]
    assert f"\n  04_train      run {run_id}\n" in out
    assert "06_distribute run" not in out
    registered = f"version {version} (no alias: below min_accuracy)"
    assert f"\nregistered model: penguin_classifier {registered}\n" in out


def test_a_model_that_learned_is_not_warned_about(lab, capsys):
    from penguins.cli import did_not_learn

    # The session's job learned: about 0.99 on the held-out rows, far above 45/102 = 0.4412.
    assert did_not_learn(read_json(lab.evaluation)) is None
