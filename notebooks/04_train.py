# Databricks notebook source
# MAGIC %md
# MAGIC # 04 Train: the lab's training loop
# MAGIC
# MAGIC CrossEntropyLoss, Adam, batches of 20 rows without shuffling, printing each epoch's training
# MAGIC loss and validation loss and accuracy as the lab does. Batches are slices of in-memory tensors
# MAGIC (no DataLoader workers) on the model's device. Logs an MLflow run (parameters, per-epoch
# MAGIC metrics, the model as a pyfunc on raw measurements) and saves `<lab_dir>/trained/`:
# MAGIC `penguin_classifier.pt`, `history.json` and `mlflow.json` (where the run and model are),
# MAGIC committed with `_manifest.json`, written last; then `metrics/mlflow.json`.
# MAGIC Task 4 of the `penguin_training` job; needs `03_model`; next: `05_evaluate`.
# MAGIC
# MAGIC | parameter | required | default | meaning |
# MAGIC | --- | --- | --- | --- |
# MAGIC | `lab_dir` | yes on Databricks | `lab` | lab folder |
# MAGIC | `epochs` | no | `100` | passes over the training set |
# MAGIC | `lr` | no | `0.001` | Adam learning rate |
# MAGIC | `batch_size` | no | `20` | rows per batch |
# MAGIC | `device` | no | `auto` | `auto` (GPU when there is one), `cpu` or `cuda` |
# MAGIC | `experiment` | no | `""` | MLflow experiment; empty: the notebook's own on Databricks, `penguin_classifier` locally |
# MAGIC | `job_run_id` | no | `""` | the job run (`{{job.run_id}}`), tagged on the run; empty: a local id |

# COMMAND ----------

# DBTITLE 1,Widgets
from penguin_classifier.runtime import notebook_runtime

spark, dbutils, display = notebook_runtime(globals())
dbutils.widgets.text("lab_dir", "lab", "Lab folder")
dbutils.widgets.text("epochs", "100", "Epochs")
dbutils.widgets.text("lr", "0.001", "Learning rate")
dbutils.widgets.text("batch_size", "20", "Batch size")
dbutils.widgets.dropdown("device", "auto", ["auto", "cpu", "cuda"], "Device")
dbutils.widgets.text("experiment", "", "MLflow experiment (empty: the default)")
dbutils.widgets.text("job_run_id", "", "Job run id (tag)")

# COMMAND ----------

# DBTITLE 1,Read parameters
from penguin_classifier import params

lab = params.lab_dir(dbutils)
epochs = params.integer(dbutils, "epochs", minimum=1)
lr = params.number(dbutils, "lr", low=0.0)
batch_size = params.integer(dbutils, "batch_size", minimum=1)
device = params.choice(dbutils, "device", ["auto", "cpu", "cuda"])
experiment = params.text(dbutils, "experiment")
job_run_id = params.text(dbutils, "job_run_id")

# COMMAND ----------

# DBTITLE 1,Load the training and test tensors
from penguin_classifier.layout import read_json
from penguin_classifier.model import load_model
from penguin_classifier.train import load_split, make_batches, resolve_device

inputs = lab.require("prepared", "model")  # recorded in trained/'s record
spec = read_json(lab.features)
dev = resolve_device(device)  # batches live on the model's device: no copy per step
model = load_model(lab.model_config, lab.initial_weights).to(dev)
batches = make_batches(load_split(lab.train, spec["features"], spec["label"]), batch_size, dev)
x_test, y_test = (t.to(dev) for t in load_split(lab.test, spec["features"], spec["label"]))
print(f"{len(batches)} batches of {batch_size} training rows, {len(y_test)} test rows, on {dev}")

# COMMAND ----------

# DBTITLE 1,Train: the lab's loop
from penguin_classifier.train import Epoch, make_optimizer, torch_threads, train_epoch, validate
from torch import nn

loss_fn = nn.CrossEntropyLoss()  # on the log_softmax output, as in the lab
optimizer = make_optimizer(model.parameters(), lr)  # Adam
history = []
with torch_threads(1 if dev.type == "cpu" else None):  # tiny matrices: one thread is fastest
    for epoch in range(1, epochs + 1):
        train_loss = train_epoch(model, batches, optimizer, loss_fn)
        val_loss, correct = validate(model, x_test, y_test, batch_size)
        history.append(Epoch(epoch, train_loss, val_loss, correct, len(y_test)))
        print(history[-1].lines())

# COMMAND ----------

# DBTITLE 1,Save the weights and the history (on local disk until the commit)
from penguin_classifier.layout import Handover
from penguin_classifier.train import write_trained

parameters = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "device": device}
handover = Handover(lab.folder("trained"), "04_train", parameters, inputs)
write_trained(handover, lab, model, history)

# COMMAND ----------

# DBTITLE 1,Track the run in MLflow: parameters, metrics by epoch, the model
from penguin_classifier import registry, tracking
from penguin_classifier.layout import write_json

where = tracking.configure(lab, experiment)
with tracking.start_run("04_train", job_run_id) as run:
    tracking.log_training(lab, parameters, history)  # and the earlier stages' choices
    # A pyfunc on raw measurements: the features spec and the weights travel inside it.
    info = registry.log_model(lab, weights=handover.local / lab.weights.name)
record = where.record(run, train_run_id=run.info.run_id, model_uri=info.model_uri)
write_json(handover.local / tracking.MLFLOW_JSON, record)
print(f"MLflow run {run.info.run_id} in experiment {record['experiment']} ({where.tracking_uri})")
print(f"model: {info.model_uri}")

# COMMAND ----------

# DBTITLE 1,Commit the hand-over
handover.commit()
tracking.save_record(lab, "trained")
print(f"weights committed: {lab.weights}")
dbutils.jobs.taskValues.set("val_accuracy", history[-1].val_accuracy)
