# Databricks notebook source
# MAGIC %md
# MAGIC # 05 Evaluate: loss curves, learned weights, test metrics and a new penguin
# MAGIC
# MAGIC Plots training and validation loss by epoch, prints each layer's weights and biases, computes
# MAGIC held-out loss, accuracy, per-species precision, recall and F1 and the confusion matrix (with
# MAGIC scikit-learn), then reloads the saved weights into a fresh model and predicts the lab's new
# MAGIC penguin. Commits `loss.png`, `confusion_matrix.png` and `evaluation.json` in
# MAGIC `<lab_dir>/evaluation/`. Task 5 of the `penguin_training` job; needs `04_train`.
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
penguin = Penguin.parse(new_penguin)  # fail fast on a malformed penguin

# COMMAND ----------

# DBTITLE 1,Loss by epoch
from penguin_classifier.evaluate import plot_losses, save_figure
from penguin_classifier.layout import Handover, read_json

lab.require("prepared", "model", "trained")
handover = Handover(lab.folder("evaluation"), "05_evaluate", {"new_penguin": new_penguin})
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

# DBTITLE 1,Commit the hand-over
from penguin_classifier.evaluate import save_evaluation

new = {"input": new_penguin, "species": species, "probabilities": probabilities}
evaluation = save_evaluation(handover, lab, metrics, new)
dbutils.jobs.taskValues.set("test_accuracy", metrics["accuracy"])
