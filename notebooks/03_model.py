# Databricks notebook source
# MAGIC %md
# MAGIC # 03 Model: create the lab's PenguinNet
# MAGIC
# MAGIC 5 inputs → hidden → hidden → 3 classes, ReLU, ReLU, log_softmax (203 parameters at hidden
# MAGIC size 10). The class is this notebook's: change it in its cell (a layer, an activation) and
# MAGIC run `penguins run --only model,train,evaluate`. Compiles it with TorchScript and saves the
# MAGIC program (`network.pt`: the network's code and seeded initial weights), the initial weights
# MAGIC (`initial.pt`) and `config.json` to `<lab_dir>/model/`, committed with `_manifest.json`,
# MAGIC written last: every later stage and the registered model rebuild the network from them.
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

# DBTITLE 1,Define the network: change it here
import torch
import torch.nn.functional as F
from torch import nn


class PenguinNet(nn.Module):
    """The lab's network: inputs → hidden → hidden → classes, ReLU, ReLU, log_softmax."""

    def __init__(self, n_features, hidden, n_classes):
        super().__init__()
        self.fc1 = nn.Linear(n_features, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, n_classes)

    def forward(self, x):
        fc1_output = torch.relu(self.fc1(x))
        fc2_output = torch.relu(self.fc2(fc1_output))
        return F.log_softmax(self.fc3(fc2_output).float(), dim=1)


# COMMAND ----------

# DBTITLE 1,Create it with seeded initial weights
from penguin_classifier.jsonfile import read_json

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

# DBTITLE 1,Save the network and its initial weights (on local disk until the commit)
from penguin_classifier.handover import Handover
from penguin_classifier.jsonfile import write_json
from penguin_classifier.model import PROGRAM, program_path, save_model, script

# TorchScript compiles the class above into a program that carries its code with the weights:
# 04, 05, 06, the registered model and serving rebuild this network from network.pt, whatever
# the cell says later (penguin_classifier/model.py says why TorchScript).
network = script(model)  # one line if TorchScript cannot compile the class
config = {
    "n_features": len(spec["features"]),
    "hidden": hidden,
    "n_classes": len(spec["species"]),
    "seed": seed,
    "parameters": n_parameters,
}
handover = Handover(lab.folder("model"), "03_model", config, inputs)
write_json(handover.local / lab.model_config.name, config)
save_model(network, handover.local / PROGRAM, handover.local / lab.initial_weights.name)

# COMMAND ----------

# DBTITLE 1,Commit the hand-over
handover.commit()
print(
    f"network and initial weights committed: {program_path(lab.model_config)}, {lab.initial_weights}"
)
