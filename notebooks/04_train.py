# Databricks notebook source
# MAGIC %md
# MAGIC # 04 Train: the lab's training loop
# MAGIC
# MAGIC CrossEntropyLoss, Adam, batches of 20 rows without shuffling, printing each epoch's training
# MAGIC loss and validation loss and accuracy as the lab does. Batches are slices of in-memory tensors
# MAGIC (no DataLoader workers) on the model's device. Saves `<lab_dir>/trained/penguin_classifier.pt`
# MAGIC and `history.json`. Task 4 of the `penguin_training` job; needs `03_model`; next: `05_evaluate`.
# MAGIC
# MAGIC | parameter | required | default | meaning |
# MAGIC | --- | --- | --- | --- |
# MAGIC | `lab_dir` | yes on Databricks | `lab` | lab folder |
# MAGIC | `epochs` | no | `100` | passes over the training set |
# MAGIC | `lr` | no | `0.001` | Adam learning rate |
# MAGIC | `batch_size` | no | `20` | rows per batch |
# MAGIC | `device` | no | `auto` | `auto` (GPU when there is one), `cpu` or `cuda` |

# COMMAND ----------

# DBTITLE 1,Widgets
from penguin_classifier.runtime import notebook_runtime

spark, dbutils, display = notebook_runtime(globals())
dbutils.widgets.text("lab_dir", "lab", "Lab folder")
dbutils.widgets.text("epochs", "100", "Epochs")
dbutils.widgets.text("lr", "0.001", "Learning rate")
dbutils.widgets.text("batch_size", "20", "Batch size")
dbutils.widgets.text("device", "auto", "Device")

# COMMAND ----------

# DBTITLE 1,Read parameters
from penguin_classifier import params

lab = params.lab_dir(dbutils)
epochs = params.integer(dbutils, "epochs", minimum=1)
lr = params.number(dbutils, "lr", low=0.0)
batch_size = params.integer(dbutils, "batch_size", minimum=1)
device = params.choice(dbutils, "device", ["auto", "cpu", "cuda"])

# COMMAND ----------

# DBTITLE 1,Train
from penguin_classifier.train import train_stage

history = train_stage(lab, epochs, lr, batch_size, device)
print(f"weights saved to {lab.weights}")
dbutils.jobs.taskValues.set("val_accuracy", history[-1].val_accuracy)
