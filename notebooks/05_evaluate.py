# Databricks notebook source
# MAGIC %md
# MAGIC # 05 Evaluate: loss curves, learned weights, test metrics and a new penguin
# MAGIC
# MAGIC Plots training and validation loss by epoch (`<lab_dir>/evaluation/loss.png`), prints each layer's
# MAGIC weights and biases, computes test loss, accuracy, confusion matrix and per-species precision
# MAGIC and recall (`<lab_dir>/evaluation/evaluation.json`), then reloads the saved weights into a fresh
# MAGIC model and predicts the lab's new penguin. Task 5 of the `penguin_training` job; needs `04_train`.
# MAGIC
# MAGIC | parameter | required | default | meaning |
# MAGIC | --- | --- | --- | --- |
# MAGIC | `lab_dir` | yes on Databricks | `lab` | lab folder |
# MAGIC | `new_penguin` | no | `Dream,50.4,15.3,200,5000` | island, bill length mm, bill depth mm, flipper mm, mass g |

# COMMAND ----------

# DBTITLE 1,Widgets
from penguin_classifier.runtime import notebook_runtime

spark, dbutils, display = notebook_runtime(globals())
dbutils.widgets.text("lab_dir", "lab", "Lab folder")
dbutils.widgets.text("new_penguin", "Dream,50.4,15.3,200,5000", "New penguin")

# COMMAND ----------

# DBTITLE 1,Read parameters
from penguin_classifier import params
from penguin_classifier.predict import Penguin

lab = params.lab_dir(dbutils)
new_penguin = params.text(dbutils, "new_penguin")
Penguin.parse(new_penguin)  # fail fast on a malformed penguin

# COMMAND ----------

# DBTITLE 1,Evaluate
from penguin_classifier.evaluate import evaluate_stage

metrics = evaluate_stage(lab, new_penguin, display=display)
dbutils.jobs.taskValues.set("test_accuracy", metrics["accuracy"])
