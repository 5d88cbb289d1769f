# Databricks notebook source
# MAGIC %md
# MAGIC # 02 Prepare: clean, encode, scale, split and oversample with Spark
# MAGIC
# MAGIC Reads `<lab_dir>/raw/penguins.csv`, drops incomplete rows, encodes Island with a **sorted**
# MAGIC vocabulary, scales FlipperLength (/10) and BodyMass (/100), splits 70/30 stratified by species
# MAGIC and **then** oversamples the training split only. Writes `train.parquet`, `test.parquet` and
# MAGIC `features.json` to `<lab_dir>/prepared/` and commits them with `_manifest.json`, written last.
# MAGIC Refuses data from which no valid split can be built. Task 2 of the `penguin_training` job;
# MAGIC next: `03_model`.
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
oversample_copies = params.integer(dbutils, "oversample", minimum=1)
test_fraction = params.number(dbutils, "test_fraction", low=0.0, high=1.0)
seed = params.integer(dbutils, "seed")

# COMMAND ----------

# DBTITLE 1,Read the raw file
from penguin_classifier.layout import Handover
from penguin_classifier.prepare import read_raw

inputs = lab.require("raw")  # the digest of raw/'s record goes into prepared/'s
# The hand-over starts by uncommitting prepared/: if a cell below fails, no later stage uses it.
parameters = {"oversample": oversample_copies, "test_fraction": test_fraction, "seed": seed}
handover = Handover(lab.folder("prepared"), "02_prepare", parameters, inputs)
raw = read_raw(spark, lab.raw)
display(raw)

# COMMAND ----------

# DBTITLE 1,Drop incomplete rows
from penguin_classifier.prepare import clean

data = clean(raw).cache()
rows, complete = raw.count(), data.count()
print(f"{rows} rows: {complete} complete, {rows - complete} with a missing value dropped")

# COMMAND ----------

# DBTITLE 1,Encode the islands
from penguin_classifier.prepare import encode, island_vocabulary

# Sorted, and saved in features.json: index i means the same island in every run.
islands = island_vocabulary(data)
display(spark.createDataFrame(list(enumerate(islands)), "IslandIdx int, Island string"))
# FlipperLength / 10 and BodyMass / 100 bring them near the bill measurements.
encoded = encode(data, islands)
display(encoded.limit(5))

# COMMAND ----------

# DBTITLE 1,Split by species, before oversampling
from penguin_classifier.prepare import split_sizes, split_table, stratified_split

sizes = split_sizes(data, test_fraction)  # refuses data from which no valid split can be built
train, test = stratified_split(encoded, test_fraction, seed)
display(split_table(sizes))

# COMMAND ----------

# DBTITLE 1,Oversample the training split
from penguin_classifier.prepare import oversample

# Only the training rows: copies of test rows must never land in training.
train_oversampled = oversample(train, oversample_copies)
train_rows = sum(n for n, _ in sizes.values())
print(f"{train_rows} training rows x {oversample_copies} = {train_rows * oversample_copies}")

# COMMAND ----------

# DBTITLE 1,Commit the hand-over
from penguin_classifier.prepare import save_prepared

report = save_prepared(handover, lab, train_oversampled, test, islands, sizes)
data.unpersist()
print(report.summary())
dbutils.jobs.taskValues.set("train_rows", report.oversampled_rows)
