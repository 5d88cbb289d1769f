# Databricks notebook source
# MAGIC %md
# MAGIC # 07 Score: the registered model on a batch of penguins, inside Spark
# MAGIC
# MAGIC Loads the model from the MLflow registry (by default the version with the alias `champion`),
# MAGIC reads penguins from a CSV file or a table, refuses values the model cannot take, scores every
# MAGIC complete row inside Spark (an iterator pandas UDF: each Python worker takes the model once, then scores)
# MAGIC and commits `<output>/predictions.parquet` (the input columns, `predicted_species`, one
# MAGIC `probability_<species>` column per species) and `summary.json`, with `_manifest.json` written
# MAGIC last. Rows with a missing measurement are kept, unscored, and counted; with `Species` labels
# MAGIC it reports accuracy. The `penguin_scoring` job; needs a registered model (`05_evaluate`).
# MAGIC
# MAGIC | parameter | required | default | meaning |
# MAGIC | --- | --- | --- | --- |
# MAGIC | `lab_dir` | yes on Databricks | `lab` | lab folder |
# MAGIC | `input` | no | `<lab_dir>/raw/penguins.csv` | CSV path with a header, or a table name, e.g. `<catalog>.<schema>.new_penguins` |
# MAGIC | `model` | yes on Databricks | `models:/penguin_classifier@champion` | model URI; in Unity Catalog `models:/<catalog>.<schema>.penguin_classifier@champion` |
# MAGIC | `output` | no | `<lab_dir>/scored` | folder for the predictions, replaced |

# COMMAND ----------

# DBTITLE 1,Widgets
from penguin_classifier.runtime import notebook_runtime

spark, dbutils, display = notebook_runtime(globals())
dbutils.widgets.text("lab_dir", "lab", "Lab folder")
dbutils.widgets.text("input", "", "Input CSV or table (empty: the lab's raw CSV)")
dbutils.widgets.text("model", "models:/penguin_classifier@champion", "Model URI")
dbutils.widgets.text("output", "", "Output folder (empty: <lab_dir>/scored)")

# COMMAND ----------

# DBTITLE 1,Read parameters
from penguin_classifier import params
from penguin_classifier.errors import PenguinInputError

lab = params.lab_dir(dbutils)
source = params.text(dbutils, "input")
if not source:
    lab.require("raw")
    source = str(lab.raw)
model_uri = params.text(dbutils, "model")
if not model_uri.startswith(("models:/", "runs:/")):
    raise PenguinInputError(f"parameter model: {model_uri!r} is not a models:/ or runs:/ URI")
output = params.output_folder(dbutils, lab, source)  # never the lab, a stage's folder or above
print(f"input: {source}\nmodel: {model_uri}\noutput: {output}")

# COMMAND ----------

# DBTITLE 1,Point MLflow at the registry
from penguin_classifier import tracking

where = tracking.configure(lab, experiment=None)  # scoring reads the registry, logs no run
print(f"tracking {where.tracking_uri}, registry {where.registry_uri}")

# COMMAND ----------

# DBTITLE 1,Load the model from the registry
from penguin_classifier.registry import load_pyfunc

# mlflow.pyfunc.load_model(model_uri), with one line if it cannot be loaded. The features spec
# (island vocabulary, scaling, feature order, species) travels inside the model.
model, spec = load_pyfunc(model_uri)
species = spec["species"]
print(model.metadata.get_input_schema())
print(f"species {species}, islands {spec['islands']}")

# COMMAND ----------

# DBTITLE 1,Read the penguins: a CSV file with a header, or a table
from penguin_classifier import scoring

raw = scoring.read_input(spark, source)  # spark.read.csv(source, header=True) or spark.table
display(raw.limit(5))

# COMMAND ----------

# DBTITLE 1,Check every value before scoring
# Typed columns, null where missing; _problem says why a row cannot be scored (an unknown island,
# a measurement that is not a positive float32, a bad label). One such row stops the run.
typed = scoring.parse(raw, spec).cache()
scoring.check(typed, source)

# COMMAND ----------

# DBTITLE 1,The model as a Spark function
from penguin_classifier.predict import probability_column

# An iterator pandas UDF: each Python worker of Spark takes the model's network and features
# spec once a task (they travel with the function: no MLflow in the workers), then classifies
# the batches of rows that Arrow hands over. The network needs microseconds a row, a batch costs
# a pandas frame and its checks: so batches of 100,000 rows, not Spark's 10,000.
spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", scoring.ARROW_BATCH_ROWS)
predict = scoring.model_udf(model)  # a struct: species, probability_<species> for each
probabilities = [probability_column(s) for s in species]

# COMMAND ----------

# DBTITLE 1,Score the complete rows, keep the others
from penguin_classifier.features import INPUTS
from pyspark.sql import functions as F

rows = typed.drop("_problem")
complete = " AND ".join(f"{c} IS NOT NULL" for c in INPUTS)
# Only complete rows reach the model: F.when(complete, predict(...)) would call it on every row.
scored = rows.where(complete).withColumn("out", predict(*INPUTS))
outputs = [F.col("out.species").alias("predicted_species"), *(f"out.{p}" for p in probabilities)]
scored = scored.select(*rows.columns, *outputs)
# The incomplete rows stay, unscored: their predictions are null.
predictions = scored.unionByName(rows.where(f"NOT ({complete})"), allowMissingColumns=True)
# Nothing has run yet: Spark scores the rows once, while it writes them (next cell).

# COMMAND ----------

# DBTITLE 1,What to count while writing
from penguin_classifier.features import LABEL
from pyspark.sql import Observation

# Counted by Spark as it writes the predictions (DataFrame.observe): no second pass. Per
# predicted species its rows, the incomplete rows (no prediction), the scored rows that carry a
# label and how many of those the model got right.
predicted = F.col("predicted_species")
labels = F.col(LABEL) if LABEL in predictions.columns else F.lit(None).cast("int")
# Label i is species[i]; element_at counts from 1. Guarded: Spark 4.3 answers the last species
# for a null index into this literal array (F.array(...)[None] fails).
named_label = F.when(labels.isNotNull(), F.element_at(F.array(*map(F.lit, species)), labels + 1))
counts = Observation("summary")
# A new name, not predictions: this cell can run again (one plan cannot observe "summary" twice).
observed = predictions.observe(
    counts,
    F.count(F.lit(1)).alias("rows"),
    F.count(F.when(predicted.isNull(), 1)).alias("incomplete"),
    *(F.count(F.when(predicted == s, 1)).alias(s) for s in species),
    F.count(F.when(predicted.isNotNull(), named_label)).alias("labelled"),
    F.count(F.when(predicted == named_label, 1)).alias("right"),
)

# COMMAND ----------

# DBTITLE 1,Write the predictions (the output folder is replaced only now)
from penguin_classifier.handover import Handover

# One row first: the model scores in Spark's Python workers before the last output goes.
rows.where(complete).limit(1).select(predict(*INPUTS)).collect()
handover = Handover(
    output, "07_score", {"input": source, "model": model_uri}, writes=("predictions.parquet",)
)
path = str(handover.folder / "predictions.parquet")
observed.write.parquet(path)  # Spark writes straight into the folder, and counts
typed.unpersist()
display(spark.read.parquet(path).limit(10))  # what was written: no scoring again

# COMMAND ----------

# DBTITLE 1,Count the predictions per species
counted = counts.get
summary = {"rows": counted["rows"], "incomplete": counted["incomplete"]}
summary["per_species"] = {s: counted[s] for s in species}
scored_rows = summary["rows"] - summary["incomplete"]
named = ", ".join(f"{s} {n}" for s, n in summary["per_species"].items())
incomplete = f"{summary['incomplete']} incomplete (not scored)"
print(f"{summary['rows']} rows: {scored_rows} scored ({named}), {incomplete}")

# COMMAND ----------

# DBTITLE 1,Accuracy on the labelled rows
summary["labelled"] = counted["labelled"]  # scored rows with a label
summary["accuracy"] = counted["right"] / summary["labelled"] if summary["labelled"] else None
# The lab's own CSV (the default input) holds the rows 04 trained on: not a held-out figure.
summary["includes_training_rows"] = source == str(lab.raw)
rows_checked = f"{summary['labelled']} labelled rows"
if summary["includes_training_rows"]:
    rows_checked += " (includes the rows the model trained on: not a held-out figure)"
if summary["accuracy"] is not None:  # None: no labelled row was scored
    print(f"accuracy {summary['accuracy']:.4f} on {rows_checked}")

# COMMAND ----------

# DBTITLE 1,Commit
from penguin_classifier.jsonfile import write_json

write_json(handover.local / "summary.json", {**summary, "output": path})
handover.commit()
print(f"written to {path}")
dbutils.jobs.taskValues.set("scored_rows", scored_rows)
if summary["accuracy"] is not None:
    dbutils.jobs.taskValues.set("scoring_accuracy", summary["accuracy"])
