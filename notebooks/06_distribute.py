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
# MAGIC processes on the driver) and elsewhere `horovod.run` (processes on this machine) or, with
# MAGIC `local_mode=false`, `horovod.spark.run` (processes in Spark tasks); `torch` uses `TorchDistributor`
# MAGIC (the way on newer ML runtimes); `auto` picks Horovod where it is installed, else TorchDistributor.
# MAGIC
# MAGIC | parameter | required | default | meaning |
# MAGIC | --- | --- | --- | --- |
# MAGIC | `lab_dir` | yes on Databricks | `lab` | lab folder |
# MAGIC | `backend` | no | `auto` | `auto`, `horovod` or `torch` |
# MAGIC | `num_processes` | no | `2` | processes (ranks) |
# MAGIC | `epochs` | no | `100` | passes over each rank's shard, 1 to 100000 |
# MAGIC | `lr` | no | `0.001` | learning rate of one process; multiplied by the number of processes |
# MAGIC | `batch_size` | no | `20` | rows per batch on each rank, 1 to 100000 |
# MAGIC | `local_mode` | no | `true` | `true`: processes on the driver; `false`: on the worker nodes (TorchDistributor barrier tasks, HorovodRunner `np=N`, horovod.spark.run) |
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

# DBTITLE 1,Read parameters; check that this cluster can run the processes
import os

from penguin_classifier import params
from penguin_classifier.launchers import BACKENDS, check_num_processes, launch_here

lab = params.lab_dir(dbutils)
backend = params.choice(dbutils, "backend", BACKENDS)
num_processes = params.integer(dbutils, "num_processes", minimum=1)
epochs = params.integer(dbutils, "epochs", minimum=1, maximum=100_000)
lr = params.number(dbutils, "lr", low=0.0)
batch_size = params.integer(dbutils, "batch_size", minimum=1, maximum=100_000)
local_mode = params.choice(dbutils, "local_mode", ["true", "false"]) == "true"
timeout_s = 60 * params.number(dbutils, "timeout_minutes", low=0.0)
experiment = params.text(dbutils, "experiment")
job_run_id = params.text(dbutils, "job_run_id")
launch = launch_here(backend, local_mode)  # HorovodRunner, horovod.run, TorchDistributor, ...
# horovod.run needs no SparkSession; the other launchers go through it (locally it starts here).
slots = spark.sparkContext.defaultParallelism if launch.uses_spark else None
check_num_processes(num_processes, slots, os.cpu_count(), launch, local_mode)

# COMMAND ----------

# DBTITLE 1,Open the hand-over of distributed/
from penguin_classifier.layout import Handover

inputs = lab.require("prepared", "model", "trained", "evaluation")
parameters = {
    "backend": launch.backend,
    "num_processes": num_processes,
    "epochs": epochs,
    "lr_per_process": lr,
    "batch_size": batch_size,
    "local_mode": local_mode,
}
# Uncommits distributed/: a failed or timed-out run leaves no model a later step would use.
# The ranks write their error lines into a run folder in it (distributed_run: _run-<id>).
handover = Handover(
    lab.folder("distributed"), "06_distribute", parameters, inputs, writes=("_run-*",)
)

# COMMAND ----------

# MAGIC %md
# MAGIC ## The function each process runs
# MAGIC
# MAGIC The lab's training again (04_train's loop), with each distributed addition marked
# MAGIC `# Horovod:` or `# DDP:`. The launcher ships these functions to every process, so the imports
# MAGIC they need are inside them. No rank saves a file: ranks may run on other nodes, and a launcher
# MAGIC hands back one rank's result. Averaged gradients keep every rank's model the same, so each rank
# MAGIC returns its weights and the same averaged figures, and the driver commits the file.

# COMMAND ----------


# DBTITLE 1,Each rank's shard of the training rows
def load_shard(lab, rank: int, size: int):
    """This rank's training rows ``x``, ``y`` and their indices: no two ranks share a row."""
    import torch
    from penguin_classifier.layout import read_json
    from penguin_classifier.train import load_split
    from torch.utils.data import TensorDataset
    from torch.utils.data.distributed import DistributedSampler

    spec = read_json(lab.features)
    x, y = load_split(lab.train, spec["features"], spec["label"])
    # No shuffling, as in the lab; drop_last so that no row is repeated to pad a shard.
    sampler = DistributedSampler(
        TensorDataset(x, y), num_replicas=size, rank=rank, shuffle=False, drop_last=True
    )
    rows = torch.tensor(list(sampler), dtype=torch.int64)
    return x[rows], y[rows], rows


# COMMAND ----------


# DBTITLE 1,The training loop, on one rank's shard
def train_shard(model, optimizer, x, y, epochs: int, batch_size: int) -> tuple[float, float]:
    """04_train's loop: the last epoch's mean batch loss, and the seconds it took."""
    import time

    import torch
    from torch import nn

    torch.set_num_threads(1)  # tiny matrices: one thread per process is fastest
    loss_fn = nn.CrossEntropyLoss()  # on the log_softmax output, as in the lab
    batches = list(zip(x.split(batch_size), y.split(batch_size), strict=True))
    start = time.perf_counter()
    for _epoch in range(epochs):
        model.train()
        total = torch.zeros((), device=x.device)
        for data, target in batches:
            optimizer.zero_grad()
            loss = loss_fn(model(data), target)
            loss.backward()  # the ranks' gradients are averaged from here to step()
            optimizer.step()
            total += loss.detach()
        train_loss = total.item() / len(batches)
    return train_loss, time.perf_counter() - start


# COMMAND ----------


# DBTITLE 1,Horovod: the per-rank function
def train_hvd(job: dict) -> dict:
    """One Horovod process: train on this rank's shard; the weights and the ranks' figures."""
    import io

    import horovod.torch as hvd
    import torch
    from penguin_classifier.layout import Lab
    from penguin_classifier.model import load_model
    from penguin_classifier.train import make_optimizer

    hvd.init()  # Horovod: init
    rank, size = hvd.rank(), hvd.size()
    lab = Lab(job["lab_dir"])
    x, y, rows = load_shard(lab, rank, size)  # Horovod: this rank's shard
    model = load_model(lab.model_config, lab.initial_weights)
    optimizer = make_optimizer(model.parameters(), job["lr"] * size)  # Horovod: lr × size
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)  # Horovod: the same start
    hvd.broadcast_optimizer_state(optimizer, root_rank=0)  # Horovod: the same start
    optimizer = hvd.DistributedOptimizer(  # Horovod: averages the gradients
        optimizer, named_parameters=model.named_parameters()
    )
    train_loss, train_s = train_shard(model, optimizer, x, y, job["epochs"], job["batch_size"])
    weights = io.BytesIO()
    torch.save(model.state_dict(), weights)  # Horovod: the same on every rank; the driver saves
    return {
        "weights": weights.getvalue(),
        "train_loss": hvd.allreduce(torch.tensor(train_loss), op=hvd.Average).item(),
        "train_s": hvd.allreduce(torch.tensor(train_s), op=hvd.Max).item(),
        "shard_rows": len(rows),
    }


# COMMAND ----------


# DBTITLE 1,DDP: the per-rank function for TorchDistributor
def train_ddp(job: dict) -> dict:
    """One TorchDistributor process (DDP over gloo, or nccl on GPUs): weights and figures."""
    import io
    import os
    from datetime import timedelta

    import torch
    import torch.distributed as dist
    from penguin_classifier.layout import Lab
    from penguin_classifier.model import load_model
    from penguin_classifier.train import make_optimizer
    from torch.nn.parallel import DistributedDataParallel as DDP

    use_gpu = job["use_gpu"] and torch.cuda.is_available()
    dist.init_process_group(  # DDP: init (TorchDistributor sets RANK, WORLD_SIZE, MASTER_*)
        "nccl" if use_gpu else "gloo", timeout=timedelta(seconds=job["start_timeout_s"])
    )
    rank, size = dist.get_rank(), dist.get_world_size()
    device = torch.device(f"cuda:{os.environ.get('LOCAL_RANK', 0)}" if use_gpu else "cpu")
    if use_gpu:
        torch.cuda.set_device(device)
    lab = Lab(job["lab_dir"])
    x, y, rows = load_shard(lab, rank, size)  # DDP: this rank's shard
    model = load_model(lab.model_config, lab.initial_weights).to(device)
    ddp_model = DDP(model)  # DDP: broadcasts rank 0's parameters, then averages the gradients
    optimizer = make_optimizer(ddp_model.parameters(), job["lr"] * size)  # DDP: lr × size
    train_loss, train_s = train_shard(
        ddp_model, optimizer, x.to(device), y.to(device), job["epochs"], job["batch_size"]
    )
    # DDP: tear down in this order: DDP's reducer first, while the process group is alive, then
    # the group. Letting the reducer drop the group's last reference when this function returns
    # can deadlock gloo's destructor (it joins a thread that waits for the GIL).
    del ddp_model, optimizer
    mean_loss = torch.tensor(train_loss / size, device=device)
    dist.all_reduce(mean_loss)  # DDP: the sum of loss / size over the ranks: their mean
    slowest = torch.tensor(train_s, device=device)
    dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
    dist.barrier()
    dist.destroy_process_group()
    weights = io.BytesIO()
    torch.save(model.cpu().state_dict(), weights)  # DDP: the same on every rank; the driver saves
    return {
        "weights": weights.getvalue(),
        "train_loss": mean_loss.item(),
        "train_s": slowest.item(),
        "shard_rows": len(rows),
    }


# COMMAND ----------

# DBTITLE 1,What each process gets: the job
import torch

job = {
    "lab_dir": str(lab.root.resolve()),  # the ranks may start in another folder
    "epochs": epochs,
    "lr": lr,
    "batch_size": batch_size,
    "use_gpu": torch.cuda.is_available(),
    "start_timeout_s": 120,  # how long a rank waits for the others to start
}

# COMMAND ----------

# DBTITLE 1,Launch the processes
import os

from penguin_classifier.distributed_run import distributed_run
from penguin_classifier.train import check_loss

# Stops the run after timeout_s; a failed rank becomes one line (its error's last line).
session = spark if launch.uses_spark else None  # horovod.run: no Spark jobs to cancel
with distributed_run(session, handover.folder, launch.launcher, timeout_s) as run:
    if launch.launcher == "HorovodRunner":  # Databricks Runtime ML up to 15.4 LTS
        from sparkdl import HorovodRunner

        # np=-N: N processes on the driver (all a single node has); np=N: on the worker nodes.
        np = -num_processes if local_mode else num_processes
        runner = HorovodRunner(np=np, driver_log_verbosity="all")
        result = runner.run(run.reporting(train_hvd), job=job)
    elif launch.launcher == "horovod.run":  # processes on this machine, as np=-N
        import horovod

        result = horovod.run(
            run.reporting(train_hvd),
            args=(job,),
            np=num_processes,
            hosts=f"localhost:{num_processes}",
            start_timeout=job["start_timeout_s"],
            use_gloo=True,
            verbose=0,
        )[0]  # one result per rank: they are the same
    elif launch.launcher == "horovod.spark.run":  # processes in Spark tasks
        import horovod.spark

        result = horovod.spark.run(
            run.reporting(train_hvd),
            args=(job,),
            num_proc=num_processes,
            start_timeout=job["start_timeout_s"],
            use_gloo=True,
            # Horovod's rendezvous waits this long for a rank that never comes (default 30 s).
            env={**os.environ, "HOROVOD_GLOO_TIMEOUT_SECONDS": str(job["start_timeout_s"])},
            verbose=0,
        )[0]  # one result per rank: they are the same
    else:
        from pyspark.ml.torch.distributor import TorchDistributor

        distributor = TorchDistributor(
            num_processes=num_processes, local_mode=local_mode, use_gpu=job["use_gpu"]
        )
        result = distributor.run(run.reporting(train_ddp), job)
check_loss(epochs, result["train_loss"])  # the ranks' mean: NaN once any rank's weights are
print(
    f"{launch.launcher}: {num_processes} processes of {result['shard_rows']} training rows each, "
    f"training {result['train_s']:.1f} s, start-up {run.wall_s - result['train_s']:.1f} s"
)

# COMMAND ----------

# DBTITLE 1,Compare with the single-process model
import pandas as pd
from penguin_classifier.evaluate import evaluate_weights
from penguin_classifier.layout import read_json

weights = handover.local / lab.distributed_weights.name  # on local disk until the commit
weights.write_bytes(result["weights"])
metrics = evaluate_weights(lab, weights)  # on the held-out rows, as 05_evaluate
single = read_json(lab.evaluation)
comparison = {
    "training": [f"{num_processes} processes ({launch.backend})", "1 process (04_train)"],
    "test accuracy": [metrics["accuracy"], single["accuracy"]],
}
display(pd.DataFrame(comparison))

# COMMAND ----------

# DBTITLE 1,Write distributed.json (on local disk until the commit)
from penguin_classifier.layout import write_json

summary = {
    **parameters,
    "launcher": launch.launcher,
    "accuracy": metrics["accuracy"],
    "loss": metrics["loss"],
    "single_accuracy": single["accuracy"],
    "wall_s": round(run.wall_s, 3),
    "train_s": round(result["train_s"], 3),
    "startup_s": round(run.wall_s - result["train_s"], 3),
    "train_loss": result["train_loss"],  # the ranks' mean
    "shard_rows": result["shard_rows"],
}
write_json(handover.local / lab.distributed_metrics.name, summary)

# COMMAND ----------

# DBTITLE 1,Track the run in MLflow
import mlflow
from penguin_classifier import registry, tracking

where = tracking.configure(lab, experiment)
with tracking.start_run("06_distribute", job_run_id) as mlflow_run:
    tracking.log_training(lab, parameters, [])
    mlflow.log_metric("train_loss", summary["train_loss"], step=epochs)  # the ranks' mean
    mlflow.log_metrics(tracking.held_out_figures(summary))
    info = registry.log_model(lab, weights=weights)
ids = {"distribute_run_id": mlflow_run.info.run_id, "distributed_model_uri": info.model_uri}
write_json(handover.local / tracking.MLFLOW_JSON, ids)
print(f"MLflow run {mlflow_run.info.run_id}; model {info.model_uri}")

# COMMAND ----------

# DBTITLE 1,Commit the hand-over
handover.commit()
tracking.save_record(lab, "distributed")
dbutils.jobs.taskValues.set("distributed_accuracy", summary["accuracy"])
