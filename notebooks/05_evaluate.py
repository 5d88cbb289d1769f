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
# MAGIC `mlflow.json` (the version) in `<lab_dir>/evaluation/`, then `metrics/mlflow.json`.
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
from penguin_classifier.evaluate import plot_losses, save_figure
from penguin_classifier.layout import Handover, read_json

inputs = lab.require("prepared", "model", "trained")
parameters = {"new_penguin": new_penguin}
handover = Handover(lab.folder("evaluation"), "05_evaluate", parameters, inputs)
loss_figure = plot_losses(read_json(lab.history)["history"])
display(loss_figure)
save_figure(loss_figure, handover.local / lab.loss_plot.name)

# COMMAND ----------

# DBTITLE 1,Each layer's learned weights and biases
from penguin_classifier.evaluate import layer_summary
from penguin_classifier.model import load_model

model = load_model(lab.model_config, lab.weights)
print(layer_summary(model))

# COMMAND ----------

# DBTITLE 1,Held-out metrics
from penguin_classifier.evaluate import held_out_metrics, metrics_table

spec = read_json(lab.features)
metrics = held_out_metrics(lab, model, spec)
print(
    f"{metrics['rows']} held-out rows: accuracy {metrics['accuracy']:.4f}, loss {metrics['loss']:.4f}"
)
display(metrics_table(metrics))
for warning in spec["warnings"]:
    print(f"WARNING: {warning}")

# COMMAND ----------

# DBTITLE 1,Confusion matrix
from penguin_classifier.evaluate import plot_confusion

confusion_figure = plot_confusion(metrics, spec["species"])
display(confusion_figure)
save_figure(confusion_figure, handover.local / lab.confusion_plot.name)

# COMMAND ----------

# DBTITLE 1,Reload the saved weights and predict the lab's new penguin
import pandas as pd
from penguin_classifier.predict import classify

saved_model = load_model(lab.model_config, lab.weights)  # a fresh network, weights_only load
species, probabilities = classify(saved_model, penguin, spec)
print(f"New penguin {new_penguin}: {species}")
display(pd.DataFrame({"species": list(probabilities), "probability": list(probabilities.values())}))

# COMMAND ----------

# DBTITLE 1,Write the evaluation (on local disk until the commit)
from penguin_classifier.evaluate import write_evaluation

new = {"input": new_penguin, "species": species, "probabilities": probabilities}
evaluation = write_evaluation(handover, lab, metrics, new)

# COMMAND ----------

# DBTITLE 1,Log into the training run and register the model
from penguin_classifier import registry, tracking
from penguin_classifier.layout import write_json

trained = read_json(lab.folder("trained") / tracking.MLFLOW_JSON)  # 04's run and model
tracking.reopen(trained)
with tracking.start_run("05_evaluate", run_id=trained["train_run_id"]):
    tracking.log_evaluation(lab, handover.local)
registration = registry.register(
    trained["model_uri"], metrics["accuracy"], model_name, min_accuracy
)
print(registration.summary())
write_json(handover.local / tracking.MLFLOW_JSON, registration.record())

# COMMAND ----------

# DBTITLE 1,Commit the hand-over
handover.commit()
tracking.save_record(lab, "evaluation")
dbutils.jobs.taskValues.set("test_accuracy", metrics["accuracy"])
dbutils.jobs.taskValues.set("model_version", registration.version)
