"""What ``penguins run --job penguin_scoring`` says: on the lab's own CSV (its default input) the
labelled rows include those 04 trained on, and its accuracy says so; a refused row is numbered
as serving numbers a request's records (from 1, ``record 2`` the second)."""

from __future__ import annotations

from penguin_classifier.jsonfile import read_json
from test_scoring import ROWS, refused, score, write_csv

from penguins.cli import main

TRAINED_ON = " (includes the rows the model trained on: not a held-out figure)"


def test_the_lab_datas_accuracy_says_it_includes_the_training_rows(record, tmp_lab, capsys):
    assert main(["run", "--job", "penguin_scoring", "--lab-dir", str(tmp_lab.root)]) == 0
    printed = capsys.readouterr().out.splitlines()
    accuracy = [line for line in printed if line.startswith("accuracy ")]
    # The shipped data: 344 rows, 2 without measurements, the 342 others labelled; 04 trained
    # on 70 % of them (prepared/train.parquet).
    assert len(accuracy) == 1 and accuracy[0].endswith(f" on 342 labelled rows{TRAINED_ON}")
    summary = read_json(tmp_lab.folder("scored") / "summary.json")
    assert (summary["labelled"], summary["includes_training_rows"]) == (342, True)


def test_a_refused_input_names_its_first_bad_row_as_serving_does(tmp_lab, tmp_path, capsys):
    # Two rows the model cannot take, the 2nd and the 4th of the file: the 2nd is named.
    bad = ["Anvers,46.1,13.2,211,4500,1", "Biscoe,46.1,13.2,211,heavy,1"]
    source = write_csv(tmp_path / "in.csv", [ROWS[0], bad[0], ROWS[1], bad[1]])
    vocabulary = "['Biscoe', 'Dream', 'Torgersen']"
    assert refused(capsys, score(tmp_lab, source, tmp_path / "scored")) == (
        f"penguins run: score: input {source}: 2 rows cannot be scored; record 2, island "
        f"'Anvers' is not in the saved vocabulary {vocabulary}"
    )
