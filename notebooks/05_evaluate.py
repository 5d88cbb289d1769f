# Databricks notebook source
# MAGIC %md
# MAGIC # 05 Evaluate: loss curves, learned weights, test metrics and a new penguin
# MAGIC
# MAGIC Plots training and validation loss by epoch, prints each layer's weights and biases, computes
# MAGIC held-out loss, accuracy, per-species precision, recall and F1 and the confusion matrix (with
# MAGIC scikit-learn), then reloads the saved weights into a fresh model and predicts the lab's new
# MAGIC penguin. Logs the held-out metrics and the figures into 04's MLflow run and registers its
# MAGIC model: the alias `champion` goes to the new version only if its held-out accuracy is at
# MAGIC least `min_accuracy`. Commits `loss.png`, `confusion_matrix.png`, `evaluation.json` and
# MAGIC `mlflow.json` (the version) in `<lab_dir>/evaluation/`.
# MAGIC Task 5 of the `penguin_training` job; needs `04_train`.
# MAGIC
# MAGIC | parameter | required | default | meaning |
# MAGIC | --- | --- | --- | --- |
# MAGIC | `lab_dir` | yes on Databricks | `lab` | lab folder |
# MAGIC | `new_penguin` | no | `Dream,50.4,15.3,200,5000` | island, bill length mm, bill depth mm, flipper mm, mass g |
# MAGIC | `model_name` | yes on Databricks | `penguin_classifier` | registered model; in Unity Catalog `<catalog>.<schema>.penguin_classifier` |
# MAGIC | `min_accuracy` | no | `0.97` | held-out accuracy the new version needs to become `champion` |

# COMMAND ----------

# DBTITLE 1,Widgets
from penguin_classifier.runtime import notebook_runtime

spark, dbutils, display = notebook_runtime(globals())
dbutils.widgets.text("lab_dir", "lab", "Lab folder")
dbutils.widgets.text("new_penguin", "Dream,50.4,15.3,200,5000", "New penguin")
dbutils.widgets.text("model_name", "penguin_classifier", "Registered model")
dbutils.widgets.text("min_accuracy", "0.97", "Accuracy for champion")

# COMMAND ----------

# DBTITLE 1,Read parameters
from penguin_classifier import params
from penguin_classifier.predict import Penguin

lab = params.lab_dir(dbutils)
new_penguin = params.text(dbutils, "new_penguin")
penguin = Penguin.parse(new_penguin)  # fail fast on a malformed penguin
model_name = params.text(dbutils, "model_name")
min_accuracy = params.number(dbutils, "min_accuracy", low=0.0)

# COMMAND ----------

# DBTITLE 1,Loss by epoch
from matplotlib.figure import Figure
from penguin_classifier.jsonfile import read_json

inputs = lab.require("prepared", "model", "trained")  # recorded in evaluation/'s record
history = read_json(lab.history)["history"]
epoch_numbers = [h["epoch"] for h in history]
# A Figure, not pyplot's: the notebook's backend is left alone, and display(fig) renders it.
loss_figure = Figure(figsize=(7, 4), layout="tight")
ax = loss_figure.subplots()
ax.plot(epoch_numbers, [h["train_loss"] for h in history], label="training")
ax.plot(epoch_numbers, [h["val_loss"] for h in history], label="validation")
ax.set(xlabel="epoch", ylabel="loss", title="Penguin classifier: loss by epoch")
ax.legend()
display(loss_figure)

# COMMAND ----------

# DBTITLE 1,Each layer's learned weights and biases
from penguin_classifier.model import load_model

model = load_model(lab.model_config, lab.weights)  # the network 03 saved, 04's weights
print(model.program.code)  # its forward, as TorchScript compiled it
for name, param in model.program.named_parameters():
    print(f"{name} {tuple(param.shape)}")
    print(param.data.numpy().round(4))

# COMMAND ----------

# DBTITLE 1,Predict the held-out penguins: loss and accuracy
import torch
from penguin_classifier.train import load_split
from sklearn.metrics import accuracy_score
from torch import nn

spec = read_json(lab.features)
x_test, y_test = load_split(lab.test, spec["features"], spec["label"])
with torch.no_grad():
    out = model(x_test)  # log-probabilities, a row per held-out penguin
loss = nn.CrossEntropyLoss()(out, y_test).item()
actual, predicted = y_test.numpy(), out.argmax(dim=1).numpy()
accuracy = float(accuracy_score(actual, predicted))
print(f"{len(actual)} held-out rows: accuracy {accuracy:.4f}, loss {loss:.4f}")
for warning in spec["warnings"]:
    print(f"WARNING: {warning}")

# COMMAND ----------

# DBTITLE 1,Precision, recall and F1 by species
import pandas as pd
from sklearn.metrics import precision_recall_fscore_support

labels = list(range(len(spec["species"])))  # 0 Adelie, 1 Gentoo, 2 Chinstrap
# zero_division=0: a species with no held-out row (or never predicted) scores 0, not NaN.
precision, recall, f1, support = precision_recall_fscore_support(
    actual, predicted, labels=labels, zero_division=0
)
figures = {"precision": precision, "recall": recall, "f1": f1, "support": support}
per_species = pd.DataFrame(figures, index=spec["species"])
display(per_species.rename_axis("species").reset_index())

# COMMAND ----------

# DBTITLE 1,Confusion matrix
from sklearn.metrics import ConfusionMatrixDisplay, confusion_matrix

matrix = confusion_matrix(actual, predicted, labels=labels)  # rows: actual, columns: predicted
confusion_figure = Figure(figsize=(5, 4), layout="tight")
ax = confusion_figure.subplots()
ConfusionMatrixDisplay(matrix, display_labels=spec["species"]).plot(
    ax=ax, cmap="Blues", colorbar=False
)
ax.set_title("Held-out penguins")
display(confusion_figure)

# COMMAND ----------

# DBTITLE 1,Reload the saved network and weights into a fresh model
from penguin_classifier.model import Network, program_path

# 03's network.pt is the network compiled by TorchScript: its code and initial weights, no class
# needed. Then the trained weights; weights_only: tensors only, never a pickled object that runs
# code. (load_model does both, with one line when they do not fit.)
saved_model = Network(torch.jit.load(program_path(lab.model_config), map_location="cpu"))
saved_model.load_state_dict(torch.load(lab.weights, map_location="cpu", weights_only=True))
saved_model.eval()

# COMMAND ----------

# DBTITLE 1,Predict the lab's new penguin
from penguin_classifier.predict import classify, encode

features = encode(penguin, spec)  # features.json's rule: island index, flipper / 10, mass / 100
print(dict(zip(spec["features"], features[0].tolist(), strict=True)))
species, probabilities = classify(saved_model, penguin, spec)  # as the registered model does
print(f"New penguin {new_penguin}: {species}")
display(pd.DataFrame({"species": list(probabilities), "probability": list(probabilities.values())}))

# COMMAND ----------

# DBTITLE 1,Write the figures and the evaluation (on local disk until the commit)
from penguin_classifier.handover import Handover
from penguin_classifier.jsonfile import write_json

parameters = {"new_penguin": new_penguin}
handover = Handover(lab.folder("evaluation"), "05_evaluate", parameters, inputs)
loss_figure.savefig(handover.local / lab.loss_plot.name, format="png", dpi=100)
confusion_figure.savefig(handover.local / lab.confusion_plot.name, format="png", dpi=100)
evaluation = {
    "rows": len(actual),
    "loss": loss,
    "accuracy": accuracy,
    "confusion_matrix": matrix.tolist(),
    "per_species": per_species.to_dict("index"),
    # A species missing from the data has no held-out rows: 02_prepare warned; say it again.
    "warnings": spec["warnings"],
    "new_penguin": {"input": new_penguin, "species": species, "probabilities": probabilities},
}
write_json(handover.local / lab.evaluation.name, evaluation)

# COMMAND ----------

# DBTITLE 1,Log into the training run and register the model
from penguin_classifier import registry, tracking

trained = tracking.reopen(lab, "trained")  # 04's run and model, in this lab's store
with tracking.start_run("05_evaluate", run_id=trained["train_run_id"]):
    tracking.log_evaluation(lab, handover.local)
registration = registry.register(trained["model_uri"], accuracy, model_name, min_accuracy)
print(registration.summary())
write_json(handover.local / tracking.MLFLOW_JSON, registration.record())

# COMMAND ----------

# DBTITLE 1,Commit the hand-over
handover.commit()
print(f"loss plot: {lab.loss_plot}\nconfusion matrix: {lab.confusion_plot}")
dbutils.jobs.taskValues.set("test_accuracy", accuracy)
dbutils.jobs.taskValues.set("model_version", registration.version)
