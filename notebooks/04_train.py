# Databricks notebook source
# MAGIC %md
# MAGIC # 04 Train: the lab's training loop
# MAGIC
# MAGIC CrossEntropyLoss, Adam (or the `optimizer` you choose), batches of 20 rows without
# MAGIC shuffling, printing each epoch's training loss and validation loss and accuracy as the lab
# MAGIC does. Batches are slices of in-memory tensors (no DataLoader workers) on the model's device.
# MAGIC The lab's `test` function and the epoch loop are cells of this notebook; its `train` function
# MAGIC is in `penguin_classifier/train.py`, as 06_distribute's processes run the same one. Change one
# MAGIC and run it again, locally with `penguins run --only train`. Logs an MLflow run (parameters, per-epoch
# MAGIC metrics, the model as a pyfunc on raw measurements) and saves `<lab_dir>/trained/`:
# MAGIC `penguin_classifier.pt`, `history.json` and `mlflow.json` (where the run and model are),
# MAGIC committed with `_manifest.json`, written last.
# MAGIC Task 4 of the `penguin_training` job; needs `03_model`; next: `05_evaluate`.
# MAGIC
# MAGIC | parameter | required | default | meaning |
# MAGIC | --- | --- | --- | --- |
# MAGIC | `lab_dir` | yes on Databricks | `lab` | lab folder |
# MAGIC | `epochs` | no | `100` | passes over the training set, 1 to 100000 |
# MAGIC | `lr` | no | `0.001` | learning rate |
# MAGIC | `optimizer` | no | `adam` | `adam` (the lab's) or `sgd`; 06_distribute trains with the same |
# MAGIC | `batch_size` | no | `20` | rows per batch, 1 to 100000 (more than the rows: one batch) |
# MAGIC | `device` | no | `auto` | `auto` (GPU when there is one), `cpu` or `cuda` (refused where torch finds no GPU) |
# MAGIC | `experiment` | no | `""` | MLflow experiment; empty: the notebook's own on Databricks, `penguin_classifier` locally |
# MAGIC | `job_run_id` | no | `""` | the job run (`{{job.run_id}}`), tagged on the run; empty: a local id |

# COMMAND ----------

# DBTITLE 1,Widgets
from penguin_classifier.runtime import notebook_runtime

spark, dbutils, display = notebook_runtime(globals())
dbutils.widgets.text("lab_dir", "lab", "Lab folder")
dbutils.widgets.text("epochs", "100", "Epochs")
dbutils.widgets.text("lr", "0.001", "Learning rate")
dbutils.widgets.dropdown("optimizer", "adam", ["adam", "sgd"], "Optimizer")
dbutils.widgets.text("batch_size", "20", "Batch size")
dbutils.widgets.dropdown("device", "auto", ["auto", "cpu", "cuda"], "Device")
dbutils.widgets.text("experiment", "", "MLflow experiment (empty: the default)")
dbutils.widgets.text("job_run_id", "", "Job run id (tag)")

# COMMAND ----------

# DBTITLE 1,Read parameters
import torch
from penguin_classifier import params
from penguin_classifier.errors import PenguinInputError
from penguin_classifier.train import OPTIMIZERS

lab = params.lab_dir(dbutils)
epochs = params.integer(dbutils, "epochs", minimum=1, maximum=100_000)
lr = params.number(dbutils, "lr", low=0.0)
optimizer_name = params.choice(dbutils, "optimizer", list(OPTIMIZERS))
batch_size = params.integer(dbutils, "batch_size", minimum=1, maximum=100_000)
device = params.choice(dbutils, "device", ["auto", "cpu", "cuda"])
if device == "cuda" and not torch.cuda.is_available():
    raise PenguinInputError("parameter device: cuda, but torch finds no GPU here: use auto or cpu")
dev = torch.device("cuda" if device != "cpu" and torch.cuda.is_available() else "cpu")
experiment = params.text(dbutils, "experiment")
job_run_id = params.text(dbutils, "job_run_id")

# COMMAND ----------

# DBTITLE 1,Load the training and test batches
from penguin_classifier.jsonfile import read_json
from penguin_classifier.model import load_model
from penguin_classifier.train import load_split

inputs = lab.require("prepared", "model")  # recorded in trained/'s record
spec = read_json(lab.features)
model = load_model(lab.model_config, lab.initial_weights).to(dev)
x_train, y_train = (t.to(dev) for t in load_split(lab.train, spec["features"], spec["label"]))
x_test, y_test = (t.to(dev) for t in load_split(lab.test, spec["features"], spec["label"]))
# The lab's DataLoader, batch_size rows in file order (no shuffling), as slices of tensors already
# on the model's device: no worker process, no copy per step.
train_batches = list(zip(x_train.split(batch_size), y_train.split(batch_size), strict=True))
test_batches = list(zip(x_test.split(batch_size), y_test.split(batch_size), strict=True))
print(
    f"{len(train_batches)} batches of {batch_size} training rows, {len(y_test)} test rows, on {dev}"
)

# COMMAND ----------

# MAGIC %md
# MAGIC ## The lab's `train` function
# MAGIC
# MAGIC One pass over the training batches, returning the mean batch loss, as the lab's. It is in
# MAGIC `penguin_classifier/train.py` (next to this notebook), not in a cell: 06_distribute runs it on
# MAGIC each of its processes, which import it from there. Change it there, and both notebooks train
# MAGIC with your change; `loss_criteria` beside it is the lab's CrossEntropyLoss.

# COMMAND ----------

# DBTITLE 1,The lab's test function; its train function
import torch
from penguin_classifier.train import loss_criteria, train  # from penguin_classifier/train.py


@torch.inference_mode()  # no autograd records at all, a little less than no_grad
def test(model, data, target, batch_size):
    """The mean batch loss (batches of ``batch_size`` rows, as the lab's DataLoader makes them) and
    the number of right predictions on the test set, from one forward pass over all its rows."""
    model.eval()
    out = model(data)
    batches = zip(out.split(batch_size), target.split(batch_size), strict=True)
    batch_losses = torch.stack([loss_criteria(o, t) for o, t in batches])
    correct = (out.argmax(dim=1) == target).sum()
    return batch_losses.mean().item(), int(correct)


# COMMAND ----------

# DBTITLE 1,Train: the lab's loop
from penguin_classifier.train import Epoch, make_optimizer, torch_threads

# The lab's torch.optim.Adam(model.parameters(), lr=lr), or the optimizer chosen: the parameter
# optimizer, which 06_distribute reads from what this notebook commits. Fused where torch can.
optimizer = make_optimizer(optimizer_name, model.parameters(), lr)
history = []
with torch_threads(1 if dev.type == "cpu" else None):  # tiny matrices: one thread is fastest
    for epoch in range(1, epochs + 1):
        train_loss = train(model, train_batches, optimizer)
        val_loss, correct = test(model, x_test, y_test, batch_size)
        # An inf or NaN loss stops the run here, in one line, before anything is saved.
        history.append(Epoch(epoch, train_loss, val_loss, correct, len(y_test)))
        print(history[-1].lines())

# COMMAND ----------

# DBTITLE 1,Save the weights and the history (on local disk until the commit)
from penguin_classifier.handover import Handover
from penguin_classifier.jsonfile import write_json

parameters = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "device": device}
parameters["optimizer"] = optimizer_name  # 06_distribute trains with the same
handover = Handover(lab.folder("trained"), "04_train", parameters, inputs)
torch.save(model.cpu().state_dict(), handover.local / lab.weights.name)
epochs_json = [e.to_dict() for e in history]
write_json(handover.local / lab.history.name, {**parameters, "history": epochs_json})

# COMMAND ----------

# DBTITLE 1,Track the run in MLflow: parameters, metrics by epoch, the model
from penguin_classifier import registry, tracking
from penguin_classifier.jsonfile import write_json

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
print(f"weights committed: {lab.weights}")
dbutils.jobs.taskValues.set("val_accuracy", history[-1].val_accuracy)
