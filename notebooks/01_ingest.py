# Databricks notebook source
# MAGIC %md
# MAGIC # 01 Ingest: bring the penguin data into the lab folder
# MAGIC
# MAGIC Copies the source CSV to `<lab_dir>/raw/penguins.csv` after checking its header and values,
# MAGIC then prints the row count and the rows with missing values. First task of the
# MAGIC `penguin_training` job; next: `02_prepare`.
# MAGIC
# MAGIC | parameter | required | default | meaning |
# MAGIC | --- | --- | --- | --- |
# MAGIC | `lab_dir` | yes on Databricks | `lab` | lab folder, e.g. `/Volumes/<catalog>/<schema>/deepml_lab` |
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

# DBTITLE 1,Copy and check the CSV
from penguin_classifier.ingest import ingest

report = ingest(source, lab)
print(report.summary())
dbutils.jobs.taskValues.set("raw_rows", report.rows)
