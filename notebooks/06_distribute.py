# Databricks notebook source
# MAGIC %md
# MAGIC # 06 Distribute: the same training on several processes, with Horovod or TorchDistributor
# MAGIC
# MAGIC Runs the lab's training as a per-rank function on `num_processes` processes: each rank trains on
# MAGIC its own shard of the training set (DistributedSampler), with the learning rate × world size,
# MAGIC the same initial state on every rank and averaged gradients. The ranks end with the same model
# MAGIC and hand it back; the driver saves `<lab_dir>/distributed/penguin_classifier.pt`, evaluates it
# MAGIC on the test set beside the single-process model and writes `distributed.json` beside it.
# MAGIC It logs an MLflow run of its own (parameters, held-out metrics, the model) and commits
# MAGIC `mlflow.json` there too, then `metrics/mlflow.json`.
# MAGIC Last task of the `penguin_training` job; needs `05_evaluate`.
# MAGIC
# MAGIC Backends: `horovod` uses `sparkdl.HorovodRunner(np=-N)` on Databricks Runtime ML (up to 15.4 LTS,
# MAGIC processes on the driver) and `horovod.spark.run` elsewhere; `torch` uses `TorchDistributor`
# MAGIC (the way on newer ML runtimes); `auto` picks Horovod where it is installed, else TorchDistributor.
# MAGIC
# MAGIC | parameter | required | default | meaning |
# MAGIC | --- | --- | --- | --- |
# MAGIC | `lab_dir` | yes on Databricks | `lab` | lab folder |
# MAGIC | `backend` | no | `auto` | `auto`, `horovod` or `torch` |
# MAGIC | `num_processes` | no | `2` | processes (ranks) |
# MAGIC | `epochs` | no | `100` | passes over each rank's shard |
# MAGIC | `lr` | no | `0.001` | learning rate of one process; multiplied by the number of processes |
# MAGIC | `batch_size` | no | `20` | rows per batch on each rank |
# MAGIC | `local_mode` | no | `true` | `true`: processes on the driver; `false`: on the worker nodes (TorchDistributor barrier tasks, HorovodRunner `np=N`) |
# MAGIC | `timeout_minutes` | no | `10` | the whole distributed run is stopped after this long |
# MAGIC | `experiment` | no | `""` | MLflow experiment; empty: the notebook's own on Databricks, `penguin_classifier` locally |
# MAGIC | `job_run_id` | no | `""` | the job run (`{{job.run_id}}`), tagged on the run; empty: a local id |

# COMMAND ----------

# DBTITLE 1,Widgets
from penguin_classifier.runtime import notebook_runtime

spark, dbutils, display = notebook_runtime(globals())
dbutils.widgets.text("lab_dir", "lab", "Lab folder")
dbutils.widgets.dropdown("backend", "auto", ["auto", "horovod", "torch"], "Backend")
dbutils.widgets.text("num_processes", "2", "Processes")
dbutils.widgets.text("epochs", "100", "Epochs")
dbutils.widgets.text("lr", "0.001", "Learning rate of one process")
dbutils.widgets.text("batch_size", "20", "Batch size")
dbutils.widgets.dropdown("local_mode", "true", ["true", "false"], "Processes on the driver")
dbutils.widgets.text("timeout_minutes", "10", "Timeout (minutes)")
dbutils.widgets.text("experiment", "", "MLflow experiment (empty: the default)")
dbutils.widgets.text("job_run_id", "", "Job run id (tag)")

# COMMAND ----------

# DBTITLE 1,Read parameters
from penguin_classifier import params
from penguin_classifier.distribute import BACKENDS

lab = params.lab_dir(dbutils)
backend = params.choice(dbutils, "backend", BACKENDS)
num_processes = params.integer(dbutils, "num_processes", minimum=1)
epochs = params.integer(dbutils, "epochs", minimum=1)
lr = params.number(dbutils, "lr", low=0.0)
batch_size = params.integer(dbutils, "batch_size", minimum=1)
local_mode = params.choice(dbutils, "local_mode", ["true", "false"]) == "true"
timeout_s = 60 * params.number(dbutils, "timeout_minutes", low=0.0)
experiment = params.text(dbutils, "experiment")
job_run_id = params.text(dbutils, "job_run_id")

# COMMAND ----------

# DBTITLE 1,The per-rank training function
from penguin_classifier.distribute import launch_here, rank_function, rank_source

launch = launch_here(backend)
rank_fn = rank_function(launch)
print(f"{launch.launcher} runs this in each of the {num_processes} processes:\n")
# The lab's training, with each distributed addition marked "# Horovod:" or "# DDP:".
print(rank_source(launch))

# COMMAND ----------

# DBTITLE 1,Launch the processes
from penguin_classifier.distribute import begin_handover, launch_training

# Uncommits distributed/: a failed or timed-out run leaves no model a later step would use.
handover = begin_handover(lab, launch, num_processes, epochs, lr, batch_size, local_mode)
result = launch_training(
    spark, lab, launch, rank_fn, num_processes, epochs, lr, batch_size, local_mode, timeout_s
)
print(
    f"{num_processes} processes of {result['shard_rows']} training rows each: "
    f"training {result['train_s']:.1f} s, start-up {result['wall_s'] - result['train_s']:.1f} s"
)

# COMMAND ----------

# DBTITLE 1,Compare with the single-process model
from penguin_classifier.distribute import comparison_table, write_distributed

summary = write_distributed(handover, lab, launch, result)
display(comparison_table(summary))

# COMMAND ----------

# DBTITLE 1,Track the run in MLflow
import mlflow
from penguin_classifier import registry, tracking
from penguin_classifier.layout import write_json

where = tracking.configure(lab, experiment)
with tracking.start_run("06_distribute", job_run_id) as run:
    tracking.log_training(lab, handover.parameters, [])
    mlflow.log_metric("train_loss", summary["train_loss"], step=epochs)  # the ranks' mean
    mlflow.log_metrics(tracking.held_out_figures(summary))
    info = registry.log_model(lab, weights=handover.local / lab.distributed_weights.name)
ids = {"distribute_run_id": run.info.run_id, "distributed_model_uri": info.model_uri}
write_json(handover.local / tracking.MLFLOW_JSON, ids)
print(f"MLflow run {run.info.run_id}; model {info.model_uri}")

# COMMAND ----------

# DBTITLE 1,Commit the hand-over
handover.commit()
tracking.save_record(lab, "distributed")
dbutils.jobs.taskValues.set("distributed_accuracy", summary["accuracy"])
