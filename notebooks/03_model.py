# Databricks notebook source
# MAGIC %md
# MAGIC # 03 Model: create the lab's PenguinNet
# MAGIC
# MAGIC 5 inputs → hidden → hidden → 3 classes, ReLU, ReLU, log_softmax (203 parameters at hidden
# MAGIC size 10). Saves the seeded initial weights and `config.json` to `<lab_dir>/model/` and commits
# MAGIC them with `_manifest.json`, written last.
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

# DBTITLE 1,Define the network
import inspect

from penguin_classifier.model import PenguinNet, new_model

print(inspect.getsource(PenguinNet))
model = new_model(lab, hidden, seed)  # the same seed gives the same initial weights
print(model)

# COMMAND ----------

# DBTITLE 1,Count the parameters
from penguin_classifier.model import parameter_count, parameter_table

display(parameter_table(model))
# At hidden size 10: 5·10+10 + 10·10+10 + 10·3+3 = 203.
print(f"{parameter_count(model)} parameters")

# COMMAND ----------

# DBTITLE 1,Save the initial weights
from penguin_classifier.model import save_initial_model

save_initial_model(lab, model, seed)
print(f"initial weights committed: {lab.initial_weights}")
