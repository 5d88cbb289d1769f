# Databricks notebook source
# MAGIC %md
# MAGIC # 01 Ingest: bring the penguin data into the lab folder
# MAGIC
# MAGIC Copies the source CSV to `<lab_dir>/raw/penguins.csv` after checking its header and values
# MAGIC (the rows with missing values are kept and shown) and commits it with `_manifest.json`, written
# MAGIC last. First task of the `penguin_training` job; next: `02_prepare`.
# MAGIC
# MAGIC | parameter | required | default | meaning |
# MAGIC | --- | --- | --- | --- |
# MAGIC | `lab_dir` | yes on Databricks | `lab` | lab folder, e.g. `/Volumes/<catalog>/<schema>/deepml_lab_dev_<you>` |
# MAGIC | `source` | no | shipped `data/penguins.csv` | local path, `/Volumes/...` path or http(s) URL, e.g. the lab's CSV |

# COMMAND ----------

# DBTITLE 1,Widgets
from penguin_classifier.runtime import notebook_runtime

spark, dbutils, display = notebook_runtime(globals())
dbutils.widgets.text("lab_dir", "lab", "Lab folder")
dbutils.widgets.text("source", "", "Source CSV (empty: shipped data)")

# COMMAND ----------

# DBTITLE 1,Read parameters
from penguin_classifier import params
from penguin_classifier.runtime import shipped_data

lab = params.lab_dir(dbutils)
source = params.text(dbutils, "source") or str(shipped_data())
print(f"source: {source}\nlab folder: {lab.root}")

# COMMAND ----------

# DBTITLE 1,Open the hand-over
from penguin_classifier.handover import Handover

# raw/ is uncommitted from here: if a cell below fails, no later stage uses it.
handover = Handover(lab.raw.parent, "01_ingest", {"source": source})

# COMMAND ----------

# DBTITLE 1,Read and check the source CSV
import pandas as pd
from penguin_classifier.ingest import parse_rows, read_source

rows = parse_rows(read_source(source), source)  # header, columns, numbers, species, islands
print(f"{len(rows)} penguins")
display(pd.DataFrame(rows).head(10))

# COMMAND ----------

# DBTITLE 1,Rows with missing measurements
from penguin_classifier.features import MEASUREMENTS, MISSING

# Kept here, numbered from 1; 02_prepare drops them.
incomplete = [
    {"row": i, **row}
    for i, row in enumerate(rows, start=1)
    if any(row[c] in MISSING for c in MEASUREMENTS)
]
display(pd.DataFrame(incomplete))

# COMMAND ----------

# DBTITLE 1,Write the lab's format
import csv

from penguin_classifier.features import COLUMNS

# The six columns in the lab's order, a missing value empty, LF line endings, no byte-order mark.
with open(handover.local / lab.raw.name, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({c: "" if row[c] in MISSING else row[c] for c in COLUMNS} for row in rows)

# COMMAND ----------

# DBTITLE 1,Commit raw/penguins.csv
handover.commit()
print(f"{len(rows)} rows committed to {lab.raw}, {len(incomplete)} with missing values")
dbutils.jobs.taskValues.set("raw_rows", len(rows))
