# Databricks notebook source
# MAGIC %md
# MAGIC # 02 Prepare: clean, encode, scale, split and oversample with Spark
# MAGIC
# MAGIC Reads `<lab_dir>/raw/penguins.csv`, drops incomplete rows, encodes Island with a **sorted**
# MAGIC vocabulary, scales FlipperLength (/10) and BodyMass (/100), splits 70/30 stratified by species
# MAGIC and **then** oversamples the training split only. Writes `train.parquet`, `test.parquet` and
# MAGIC `features.json` to `<lab_dir>/prepared/`. Task 2 of the `penguin_training` job; next: `03_model`.
# MAGIC
# MAGIC | parameter | required | default | meaning |
# MAGIC | --- | --- | --- | --- |
# MAGIC | `lab_dir` | yes on Databricks | `lab` | lab folder |
# MAGIC | `oversample` | no | `4` | copies of each training row (the lab's 4) |
# MAGIC | `test_fraction` | no | `0.3` | share of each species held out for testing |
# MAGIC | `seed` | no | `0` | seed of the split |

# COMMAND ----------

# DBTITLE 1,Widgets
from penguin_classifier.runtime import notebook_runtime

spark, dbutils, display = notebook_runtime(globals())
dbutils.widgets.text("lab_dir", "lab", "Lab folder")
dbutils.widgets.text("oversample", "4", "Copies of each training row")
dbutils.widgets.text("test_fraction", "0.3", "Test fraction")
dbutils.widgets.text("seed", "0", "Split seed")

# COMMAND ----------

# DBTITLE 1,Read parameters
from penguin_classifier import params

lab = params.lab_dir(dbutils)
oversample = params.integer(dbutils, "oversample", minimum=1)
test_fraction = params.number(dbutils, "test_fraction", low=0.0, high=1.0)
seed = params.integer(dbutils, "seed")

# COMMAND ----------

# DBTITLE 1,Prepare the training and test sets
from penguin_classifier.prepare import prepare

report = prepare(spark, lab, oversample, test_fraction, seed)
print(report.summary())
display(spark.read.parquet(str(lab.train)).limit(5))
dbutils.jobs.taskValues.set("train_rows", report.oversampled_rows)
