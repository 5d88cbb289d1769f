# Databricks notebook source
# MAGIC %md
# MAGIC # 07 Score: the registered model on a batch of penguins, inside Spark
# MAGIC
# MAGIC Loads the model from the MLflow registry (by default the version with the alias `champion`),
# MAGIC reads penguins from a CSV file or a table, refuses values the model cannot take, scores every
# MAGIC complete row inside Spark (`mlflow.pyfunc.spark_udf`: each Python worker loads the model once)
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

# DBTITLE 1,Load the model from the registry
from penguin_classifier import registry, scoring, tracking

where = tracking.configure(lab, experiment=None)
print(f"tracking {where.tracking_uri}, registry {where.registry_uri}")
model, spec = registry.load_pyfunc(model_uri)
print(model.metadata.get_input_schema())
print(f"species {spec['species']}, islands {spec['islands']}")

# COMMAND ----------

# DBTITLE 1,Read the input and check every value
species = spec["species"]
typed = scoring.parse(scoring.read_input(spark, source), spec["islands"], len(species)).cache()
scoring.check(typed, source)
display(typed.limit(5))

# COMMAND ----------

# DBTITLE 1,Score inside Spark
predictions = scoring.scored(spark, typed, model_uri, species)
display(predictions.limit(10))

# COMMAND ----------

# DBTITLE 1,Write the predictions and commit
from penguin_classifier.layout import Handover

handover = Handover(output, "07_score", {"input": source, "model": model_uri})
report = scoring.save(handover, predictions, species)
typed.unpersist()
print(report.summary())
dbutils.jobs.taskValues.set("scored_rows", report.rows - report.incomplete)
if report.accuracy is not None:
    dbutils.jobs.taskValues.set("scoring_accuracy", report.accuracy)
