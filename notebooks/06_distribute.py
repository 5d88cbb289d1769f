# Databricks notebook source
# MAGIC %md
# MAGIC # 06 Distribute: the same training on several processes, with Horovod or TorchDistributor
# MAGIC
# MAGIC The lab's Horovod step: `train_hvd` runs 04_train's `train` (`penguin_classifier/train.py`)
# MAGIC and optimizer on every process, each on its shard, with the distributed lines marked
# MAGIC `# Horovod:`; `train_ddp` the same with DDP (`# DDP:`). Rank 0 prints each epoch's loss and
# MAGIC hands back the weights: saved in `<lab_dir>/distributed/`, compared with 04_train's, logged to
# MAGIC MLflow. Needs `05_evaluate` and a classic cluster (serverless and standard access mode have no
# MAGIC `sparkContext`). `HorovodRunner` and `TorchDistributor`: `penguin_classifier/launchers.py`.
# MAGIC
# MAGIC | parameter | required | default | meaning |
# MAGIC | --- | --- | --- | --- |
# MAGIC | `lab_dir` | yes on Databricks | `lab` | lab folder |
# MAGIC | `backend` | no | `auto` | `auto` (Horovod where it is installed, else torch), `horovod` or `torch` |
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

from penguin_classifier import launchers, params

launchers.check_classic_compute(spark)  # serverless, standard access mode: no sparkContext
lab = params.lab_dir(dbutils)
backend = params.choice(dbutils, "backend", launchers.BACKENDS)
num_processes = params.integer(dbutils, "num_processes", minimum=1)
epochs = params.integer(dbutils, "epochs", minimum=1, maximum=100_000)
lr = params.number(dbutils, "lr", low=0.0)
batch_size = params.integer(dbutils, "batch_size", minimum=1, maximum=100_000)
local_mode = params.choice(dbutils, "local_mode", ["true", "false"]) == "true"
timeout_s = 60 * params.number(dbutils, "timeout_minutes", low=0.0)
experiment = params.text(dbutils, "experiment")
job_run_id = params.text(dbutils, "job_run_id")
launch = launchers.launch_here(backend, local_mode)  # HorovodRunner, horovod.run, ...
slots = spark.sparkContext.defaultParallelism if launch.uses_spark else None  # horovod.run: none
launchers.check_num_processes(num_processes, slots, os.cpu_count(), launch, local_mode)

# COMMAND ----------

# DBTITLE 1,Open the hand-over of distributed/; what each process gets: the job
import torch
from penguin_classifier.handover import Handover
from penguin_classifier.jsonfile import read_json
from penguin_classifier.train import check_loss, load_split, recorded_optimizer
from torch.utils.data import TensorDataset

inputs = lab.require("prepared", "model", "trained", "evaluation")
parameters = {
    "backend": launch.backend,
    "num_processes": num_processes,
    "epochs": epochs,
    "lr_per_process": lr,
    "batch_size": batch_size,
    "optimizer": recorded_optimizer(lab.history),  # 04_train's choice: the same training
    "local_mode": local_mode,
}
# Uncommits distributed/ (a failed run leaves no model); the ranks' errors go to its _run-<id>.
handover = Handover(
    lab.folder("distributed"), "06_distribute", parameters, inputs, writes=("_run-*",)
)
spec = read_json(lab.features)
job = {
    **parameters,
    "train_ds": TensorDataset(*load_split(lab.train, spec["features"], spec["label"])),
    "model_config": str(lab.model_config.resolve()),  # the ranks may start in another folder
    "initial_weights": str(lab.initial_weights.resolve()),
    "use_gpu": torch.cuda.is_available(),
    "start_timeout_s": launchers.START_TIMEOUT_S,  # how long a rank waits for the others
}

# COMMAND ----------


# DBTITLE 1,Horovod: the lab's train on each process
def train_hvd(job: dict):
    """One Horovod process; rank 0 returns the weights."""
    import time

    import horovod.torch as hvd
    import torch
    from penguin_classifier.model import load_model
    from penguin_classifier.train import make_optimizer, train
    from torch.utils.data.distributed import DistributedSampler

    hvd.init()  # Horovod: init
    torch.set_num_threads(1)  # tiny matrices: one thread per process is fastest
    sampler = DistributedSampler(  # Horovod: this rank's shard, in order as the lab's
        job["train_ds"], num_replicas=hvd.size(), rank=hvd.rank(), shuffle=False, drop_last=True
    )
    x, y = job["train_ds"][list(sampler)]
    batches = list(zip(x.split(job["batch_size"]), y.split(job["batch_size"]), strict=True))
    model = load_model(job["model_config"], job["initial_weights"])
    lr = (
        job["lr_per_process"] * hvd.size()
    )  # Horovod: lr × size, as the batches of all ranks are one step
    optimizer = make_optimizer(job["optimizer"], model.parameters(), lr)
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)  # Horovod: the same start
    hvd.broadcast_optimizer_state(optimizer, root_rank=0)  # Horovod: the same start
    optimizer = hvd.DistributedOptimizer(  # Horovod: averages the gradients
        optimizer, named_parameters=model.named_parameters()
    )
    start = time.perf_counter()
    for epoch in range(1, job["epochs"] + 1):
        train_loss = train(model, batches, optimizer)
        if hvd.rank() == 0:  # Horovod: one rank's progress (driver_log_verbosity="all")
            print(f"Epoch: {epoch} rank 0's training set: Average loss: {train_loss:.6f}")
    loss = hvd.allreduce(torch.tensor(train_loss), op=hvd.Average)  # Horovod: ranks' mean
    if hvd.rank() == 0:  # Horovod: rank 0 hands the weights back; the driver saves them
        train_s = time.perf_counter() - start  # the ranks wait for each other every step
        figures = {"train_loss": loss.item(), "train_s": train_s, "shard_rows": len(y)}
        return {"weights": model.state_dict(), **figures}


# COMMAND ----------


# DBTITLE 1,DDP: the lab's train on each process, for TorchDistributor
def train_ddp(job: dict):
    """One TorchDistributor process (DDP over gloo, nccl on GPUs); returns the weights."""
    import os
    import time
    from datetime import timedelta

    import torch
    import torch.distributed as dist
    from penguin_classifier.model import load_model
    from penguin_classifier.train import make_optimizer, train
    from torch.nn.parallel import DistributedDataParallel as DDP
    from torch.utils.data.distributed import DistributedSampler

    use_gpu = job["use_gpu"] and torch.cuda.is_available()
    dist.init_process_group(  # DDP: init (TorchDistributor sets RANK, WORLD_SIZE, MASTER_*)
        "nccl" if use_gpu else "gloo", timeout=timedelta(seconds=job["start_timeout_s"])
    )
    rank, size = dist.get_rank(), dist.get_world_size()
    device = torch.device(f"cuda:{os.environ.get('LOCAL_RANK', 0)}" if use_gpu else "cpu")
    if use_gpu:
        torch.cuda.set_device(device)
    torch.set_num_threads(1)  # tiny matrices: one thread per process is fastest
    sampler = DistributedSampler(  # DDP: this rank's shard, in order as the lab's
        job["train_ds"], num_replicas=size, rank=rank, shuffle=False, drop_last=True
    )
    x, y = (t.to(device) for t in job["train_ds"][list(sampler)])
    batches = list(zip(x.split(job["batch_size"]), y.split(job["batch_size"]), strict=True))
    model = load_model(job["model_config"], job["initial_weights"]).to(device)
    ddp_model = DDP(model)  # DDP: broadcasts rank 0's parameters, then averages the gradients
    lr = job["lr_per_process"] * size  # DDP: lr × size, as the batches of all ranks are one step
    optimizer = make_optimizer(job["optimizer"], ddp_model.parameters(), lr)
    start = time.perf_counter()
    for epoch in range(1, job["epochs"] + 1):
        train_loss = train(ddp_model, batches, optimizer)
        if rank == 0:  # DDP: one rank's progress
            print(f"Epoch: {epoch} rank 0's training set: Average loss: {train_loss:.6f}")
    # DDP: tear down DDP's reducer first, while the process group is alive: dropping the group's
    # last reference as the function returns can deadlock gloo's destructor (it waits for the GIL).
    del ddp_model, optimizer
    train_s = time.perf_counter() - start  # the ranks wait for each other every step
    loss = torch.tensor(train_loss / size, device=device)
    dist.all_reduce(loss)  # DDP: the sum of loss / size over the ranks: their mean
    dist.barrier()
    dist.destroy_process_group()
    # DDP: each rank returns the weights (all the same): local mode keeps the last rank's, not 0's
    figures = {"train_loss": loss.item(), "train_s": train_s, "shard_rows": len(y)}
    return {"weights": model.cpu().state_dict(), **figures}


# COMMAND ----------

# DBTITLE 1,Launch the processes
from penguin_classifier.distributed_run import distributed_run
from penguin_classifier.launchers import HorovodRunner, TorchDistributor

# Stops the run after timeout_s; a failed rank becomes one line (its error's last line).
session = spark if launch.uses_spark else None  # horovod.run: no Spark jobs to cancel
with distributed_run(session, handover.folder, launch.launcher, timeout_s) as run:
    if launch.backend == "horovod":
        # np=-N: N processes on the driver (all a single node has); np=N: on the worker nodes.
        np = -num_processes if local_mode else num_processes
        result = HorovodRunner(np=np, driver_log_verbosity="all").run(train_hvd, job=job)
    else:
        distributor = TorchDistributor(
            num_processes=num_processes, local_mode=local_mode, use_gpu=job["use_gpu"]
        )
        result = distributor.run(train_ddp, job)
check_loss(epochs, result["train_loss"])  # the ranks' mean: NaN once any rank's weights are
startup_s = run.wall_s - result["train_s"]
print(f"{launch.launcher}: training {result['train_s']:.1f} s, start-up {startup_s:.1f} s")
figures = {key: result[key] for key in ("train_loss", "train_s", "shard_rows")}
figures |= {"wall_s": run.wall_s, "startup_s": startup_s}

# COMMAND ----------

# DBTITLE 1,Compare with the single-process model; distributed.json (local until the commit)
import pandas as pd
from penguin_classifier.evaluate import evaluate_weights
from penguin_classifier.jsonfile import write_json

weights = handover.local / lab.distributed_weights.name
torch.save(result["weights"], weights)
metrics = evaluate_weights(lab, weights)  # on the held-out rows, as 05_evaluate
single = read_json(lab.evaluation)
trainings = [f"{num_processes} processes ({launch.backend})", "1 process (04_train)"]
display(pd.DataFrame({"test accuracy": [metrics["accuracy"], single["accuracy"]]}, trainings))
summary = {**parameters, "launcher": launch.launcher, **metrics, **figures}
summary["single_accuracy"] = single["accuracy"]
write_json(handover.local / lab.distributed_metrics.name, summary)

# COMMAND ----------

# DBTITLE 1,Track the run in MLflow; commit the hand-over
import mlflow
from penguin_classifier import registry, tracking

where = tracking.configure(lab, experiment)
with tracking.start_run("06_distribute", job_run_id) as mlflow_run:
    tracking.log_training(lab, parameters, [])  # the optimizer and the earlier stages' choices
    mlflow.log_metric("train_loss", summary["train_loss"], step=epochs)  # the ranks' mean
    mlflow.log_metrics(tracking.held_out_figures(summary))
    info = registry.log_model(lab, weights=weights)
ids = {"distribute_run_id": mlflow_run.info.run_id, "distributed_model_uri": info.model_uri}
write_json(handover.local / tracking.MLFLOW_JSON, ids)
print(f"MLflow run {mlflow_run.info.run_id}; model {info.model_uri}")
handover.commit()
dbutils.jobs.taskValues.set("distributed_accuracy", summary["accuracy"])
