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
# MAGIC | `hidden` | no | `10` | neurons in each hidden layer, 1 to 4096 |
# MAGIC | `seed` | no | `0` | seed of the initial weights, 0 to 2**32 - 1 (numpy's range) |

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
hidden = params.integer(dbutils, "hidden", minimum=1, maximum=4096)
seed = params.integer(dbutils, "seed", minimum=0, maximum=2**32 - 1)

# COMMAND ----------

# DBTITLE 1,Define the network
import inspect

import torch
from penguin_classifier.layout import read_json
from penguin_classifier.model import PenguinNet

# PenguinNet lives in the library: the registered model loads the same class.
print(inspect.getsource(PenguinNet))
inputs = lab.require("prepared")  # recorded in model/'s record
spec = read_json(lab.features)
with torch.random.fork_rng(devices=[]):  # seeded here, the notebook's own random state untouched
    torch.manual_seed(seed)  # the same seed gives the same initial weights
    model = PenguinNet(len(spec["features"]), hidden, len(spec["species"]))
print(model)

# COMMAND ----------

# DBTITLE 1,Count the parameters
import pandas as pd

rows = [(name, tuple(p.shape), p.numel()) for name, p in model.named_parameters()]
display(pd.DataFrame(rows, columns=["tensor", "shape", "values"]))
# At hidden size 10: 5·10+10 + 10·10+10 + 10·3+3 = 203.
n_parameters = sum(p.numel() for p in model.parameters())
print(f"{n_parameters} parameters")

# COMMAND ----------

# DBTITLE 1,Save the initial weights (on local disk until the commit)
from penguin_classifier.layout import Handover, write_json

config = {
    "n_features": model.fc1.in_features,
    "hidden": hidden,
    "n_classes": model.fc3.out_features,
    "seed": seed,
    "parameters": n_parameters,
}
handover = Handover(lab.folder("model"), "03_model", config, inputs)
write_json(handover.local / lab.model_config.name, config)
torch.save(model.state_dict(), handover.local / lab.initial_weights.name)

# COMMAND ----------

# DBTITLE 1,Commit the hand-over
handover.commit()
print(f"initial weights committed: {lab.initial_weights}")
