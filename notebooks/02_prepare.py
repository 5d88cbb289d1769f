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
# MAGIC | `oversample` | no | `4` | copies of each training row (the lab's 4), 1 to 100 |
# MAGIC | `test_fraction` | no | `0.3` | share of each species held out for testing |
# MAGIC | `seed` | no | `0` | seed of the split, 0 to 2**32 - 1 (numpy's range) |

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
oversample_copies = params.integer(dbutils, "oversample", minimum=1, maximum=100)
test_fraction = params.number(dbutils, "test_fraction", low=0.0, high=1.0)
seed = params.integer(dbutils, "seed", minimum=0, maximum=2**32 - 1)

# COMMAND ----------

# DBTITLE 1,Read the raw CSV
from penguin_classifier.features import COLUMNS
from pyspark.sql.types import StringType, StructField, StructType

inputs = lab.require("raw")  # committed; the digest of its record goes into prepared/'s
# Every column a string: the numbers are cast once the incomplete rows are gone.
schema = StructType([StructField(c, StringType()) for c in COLUMNS])
raw = spark.read.csv(str(lab.raw), header=True, schema=schema)
display(raw)

# COMMAND ----------

# DBTITLE 1,Drop incomplete rows, cast the numbers
from penguin_classifier.features import LABEL, MEASUREMENTS
from pyspark.sql import functions as F

columns = [
    "Island",
    *(F.col(c).cast("float").alias(c) for c in MEASUREMENTS),  # float32, as the model computes
    F.col(LABEL).cast("int").alias(LABEL),
]
data = raw.dropna().select(*columns).cache()
rows, complete = raw.count(), data.count()
print(f"{rows} rows: {complete} complete, {rows - complete} with a missing value dropped")

# COMMAND ----------

# DBTITLE 1,Refuse data that cannot be split
import math
from collections import Counter

from penguin_classifier.errors import PenguinInputError
from penguin_classifier.features import MEASUREMENT, SPECIES, is_measurement

# One Spark job, before any encoding: the rows of each species on each island, and values that
# break the rule.
bad_values = [F.count_if(~is_measurement(F.col(c))).alias(c) for c in MEASUREMENTS]
stats = data.groupBy(LABEL, "Island").agg(F.count("*").alias("rows"), *bad_values).collect()
for c in MEASUREMENTS:
    if bad := sum(row[c] for row in stats):  # e.g. 1e-50: a float32 0
        raise PenguinInputError(f"column {c}: {bad} value(s) are not {MEASUREMENT} once cast")
if not stats:
    raise PenguinInputError("no complete rows: every row has a missing value")
species_rows = Counter()
for row in stats:
    species_rows[row[LABEL]] += row["rows"]
sizes = {}  # {species: (train rows, test rows)}, as the split below makes them
for label, n in species_rows.items():
    n_test = math.floor(n * test_fraction + 0.5)
    sizes[label] = (n - n_test, n_test)
small = [f"{SPECIES[s]} ({sum(n)} rows)" for s, n in sorted(sizes.items()) if 0 in n]
if small:
    raise PenguinInputError(
        "too few complete rows to have every species in both train and test at "
        f"test_fraction {test_fraction}: {', '.join(small)}"
    )

# COMMAND ----------

# DBTITLE 1,The island vocabulary, sorted
import pandas as pd

# The islands of the complete rows (counted above), sorted and saved in features.json: index i
# means the same island in every run.
islands = sorted({row["Island"] for row in stats})
display(pd.DataFrame({"IslandIdx": range(len(islands)), "Island": islands}))

# COMMAND ----------

# DBTITLE 1,Encode the island, scale the measurements
from penguin_classifier.features import FEATURES, SCALING

index = F.create_map(*(x for i, name in enumerate(islands) for x in (F.lit(name), F.lit(i))))
# FlipperLength / 10 and BodyMass / 100 bring them near the bill measurements.
encoded = data.select(
    index[F.col("Island")].cast("float").alias("IslandIdx"),
    "CulmenLength",
    "CulmenDepth",
    (F.col("FlipperLength") / SCALING["FlipperLength"]).cast("float").alias("FlipperScaled"),
    (F.col("BodyMass") / SCALING["BodyMass"]).cast("float").alias("MassScaled"),
    LABEL,
)
display(encoded.limit(5))

# COMMAND ----------

# DBTITLE 1,Split by species, before oversampling
import pandas as pd
from pyspark.sql import Window

# Each species' rows in the order of a seeded hash of their values: the split depends on the
# seed and the data only, not on partitioning. The first round(n * test_fraction) go to test.
by_species = Window.partitionBy(LABEL)
ranked = (
    encoded.withColumn("_key", F.xxhash64(F.lit(seed), *FEATURES, LABEL))
    .withColumn("_rank", F.row_number().over(by_species.orderBy("_key", *FEATURES)))
    .withColumn("_n_test", F.floor(F.count("*").over(by_species) * test_fraction + 0.5))
)
test = ranked.where(F.col("_rank") <= F.col("_n_test")).drop("_rank", "_n_test")
train = ranked.where(F.col("_rank") > F.col("_n_test")).drop("_rank", "_n_test")
table = [(SPECIES[s], *n) for s, n in sorted(sizes.items())]
display(pd.DataFrame(table, columns=["species", "train", "test"]))

# COMMAND ----------

# DBTITLE 1,Oversample the training split
# Only the training rows: copies of test rows must never land in training. Copy 1, then copy
# 2, ... as the lab's union of the data with itself.
copies = F.explode(F.sequence(F.lit(1), F.lit(oversample_copies))).alias("_copy")
train_oversampled = train.select("*", copies)
train_rows, oversampled_rows = sum(n for n, _ in sizes.values()), train_oversampled.count()
print(f"{train_rows} training rows, {oversampled_rows} once oversampled")

# COMMAND ----------

# DBTITLE 1,Open the hand-over
from penguin_classifier.handover import Handover

# Only now, once the input is checked and Spark has run the steps above, does prepared/'s last
# commit go: prepared/ is uncommitted from here, and if a cell below fails no stage uses it.
parameters = {"oversample": oversample_copies, "test_fraction": test_fraction, "seed": seed}
writes = ("train.parquet", "test.parquet")  # Spark writes these straight into the folder
handover = Handover(lab.folder("prepared"), "02_prepare", parameters, inputs, writes=writes)

# COMMAND ----------

# DBTITLE 1,Write the splits
# One Parquet file each, rows in a fixed order: training reads its batches in this order. Spark
# writes straight into the lab folder (on Databricks, into the volume through cloud storage).
ordered_train = train_oversampled.coalesce(1).sortWithinPartitions("_copy", "_key")
ordered_train.select(*FEATURES, LABEL).write.parquet(str(lab.train))
test.coalesce(1).sortWithinPartitions("_key").select(*FEATURES, LABEL).write.parquet(str(lab.test))

# COMMAND ----------

# DBTITLE 1,Commit the hand-over
from penguin_classifier.features import feature_spec
from penguin_classifier.jsonfile import write_json

warnings = [f"species {s} has no complete rows" for i, s in enumerate(SPECIES) if i not in sizes]
counts = {
    "complete": complete,
    "train": train_rows,
    "test": complete - train_rows,
    "train_oversampled": oversampled_rows,
    "per_species": {SPECIES[s]: {"train": a, "test": b} for s, (a, b) in sizes.items()},
}
spec = {**feature_spec(islands), **parameters, "rows": counts, "warnings": warnings}
write_json(handover.local / lab.features.name, spec)
handover.commit()
data.unpersist()
print(f"committed: {counts['train_oversampled']} training rows, {counts['test']} test rows")
for warning in warnings:
    print(f"WARNING: {warning}")
dbutils.jobs.taskValues.set("train_rows", counts["train_oversampled"])
