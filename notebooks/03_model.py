# Databricks notebook source
# MAGIC %md
# MAGIC # 03 Model: create the lab's PenguinNet
# MAGIC
# MAGIC 5 inputs → hidden → hidden → 3 classes, ReLU, ReLU, log_softmax (193 parameters at hidden
# MAGIC size 10). Saves the seeded initial weights and `config.json` to `<lab_dir>/model/`.
# MAGIC Task 3 of the `penguin_training` job; needs `02_prepare`; next: `04_train`.
# MAGIC
# MAGIC | parameter | required | default | meaning |
# MAGIC | --- | --- | --- | --- |
# MAGIC | `lab_dir` | yes on Databricks | `lab` | lab folder |
# MAGIC | `hidden` | no | `10` | neurons in each hidden layer |
# MAGIC | `seed` | no | `0` | seed of the initial weights |

# COMMAND ----------

# DBTITLE 1,Widgets
from penguin_classifier.runtime import notebook_runtime

spark, dbutils, display = notebook_runtime(globals())
dbutils.widgets.text("lab_dir", "lab", "Lab folder")
dbutils.widgets.text("hidden", "10", "Hidden layer size")
dbutils.widgets.text("seed", "0", "Weights seed")

# COMMAND ----------

# DBTITLE 1,Read parameters
from penguin_classifier import params

lab = params.lab_dir(dbutils)
hidden = params.integer(dbutils, "hidden", minimum=1)
seed = params.integer(dbutils, "seed")

# COMMAND ----------

# DBTITLE 1,Create and save the model
from penguin_classifier.model import parameter_count, save_initial_model

model = save_initial_model(lab, hidden, seed)
print(model)
print(f"{parameter_count(model)} parameters; initial weights in {lab.initial_weights}")
