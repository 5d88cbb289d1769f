"""The per-rank training functions shipped to each process of a distributed run.

Each is the single-process story of ``train.py`` with the distributed additions marked
(``# Horovod:`` / ``# DDP:``): init, a distinct shard per rank (DistributedSampler), learning
rate × world size, the same initial state on every rank, a wrapped optimizer or model, and a
rank-0 guard around saving. Here no rank saves: ranks may run on other nodes, and a launcher
hands back one rank's result (TorchDistributor's local mode: whichever finishes last). Averaged
gradients keep every rank's model the same, so each rank returns its weights and the same
all-reduced figures, and the driver commits the file.

Imports that only workers need (horovod, torch.distributed) stay inside the functions.
"""

from __future__ import annotations

import io
import os
import time
from datetime import timedelta

import torch
from torch import nn
from torch.utils.data import TensorDataset
from torch.utils.data.distributed import DistributedSampler

from .layout import Lab, read_json
from .model import load_model
from .train import load_split, make_optimizer, train_epoch


def load_shard(lab: Lab, rank: int, size: int, batch_size: int):
    """This rank's batches and the training-row indices it owns (no two ranks share one)."""
    spec = read_json(lab.features)
    x, y = load_split(lab.train, spec["features"], spec["label"])
    # No shuffling, as in the lab; drop_last so that no row is repeated to pad a shard.
    sampler = DistributedSampler(
        TensorDataset(x, y), num_replicas=size, rank=rank, shuffle=False, drop_last=True
    )
    indices = torch.tensor(list(iter(sampler)), dtype=torch.int64)
    batches = list(zip(x[indices].split(batch_size), y[indices].split(batch_size), strict=True))
    return batches, indices


def weights_bytes(model: nn.Module) -> bytes:
    """The state dict as ``torch.save`` writes it, for the driver to commit."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getvalue()


def train_rank_horovod(job: dict) -> dict:
    """One Horovod process: train on this rank's shard; return the weights and figures."""
    import horovod.torch as hvd

    hvd.init()  # Horovod: init
    rank, size = hvd.rank(), hvd.size()
    torch.set_num_threads(1)
    lab = Lab(job["lab_dir"])
    model = load_model(lab.model_config, lab.initial_weights)
    batches, indices = load_shard(lab, rank, size, job["batch_size"])  # Horovod: shard
    optimizer = make_optimizer(model.parameters(), job["lr"] * size)  # Horovod: lr × size
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)  # Horovod: same start
    hvd.broadcast_optimizer_state(optimizer, root_rank=0)  # Horovod: same start
    optimizer = hvd.DistributedOptimizer(  # Horovod: average the gradients
        optimizer, named_parameters=model.named_parameters()
    )
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    for _epoch in range(job["epochs"]):
        train_loss = train_epoch(model, batches, optimizer, loss_fn)
    train_s = time.perf_counter() - start
    return {
        "weights": weights_bytes(model),  # Horovod: the same on every rank; the driver saves
        "train_loss": hvd.allreduce(torch.tensor(train_loss), op=hvd.Average).item(),
        "train_s": hvd.allreduce(torch.tensor(train_s), op=hvd.Max).item(),
        "world_size": size,
        "shard_rows": len(indices),
    }


def train_rank_torch(job: dict) -> dict:
    """One TorchDistributor process (DDP over gloo, or nccl on GPUs): weights and figures."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    use_gpu = torch.cuda.is_available() and job.get("use_gpu", False)
    dist.init_process_group(  # DDP: init (TorchDistributor sets RANK, WORLD_SIZE, MASTER_*)
        "nccl" if use_gpu else "gloo", timeout=timedelta(seconds=job["start_timeout_s"])
    )
    rank, size = dist.get_rank(), dist.get_world_size()
    device = torch.device(f"cuda:{os.environ.get('LOCAL_RANK', 0)}" if use_gpu else "cpu")
    if use_gpu:
        torch.cuda.set_device(device)
    try:
        result = ddp_training(job, rank, size, device, DDP, dist)
        # Tear down in this order: DDP's reducer first, while the process group is alive, then
        # the group. Letting the reducer drop the group's last reference at function exit can
        # deadlock gloo's destructor (it joins a thread that waits for the GIL).
        dist.barrier()
        return result
    finally:
        dist.destroy_process_group()


def ddp_training(job: dict, rank: int, size: int, device, DDP, dist) -> dict:  # noqa: N803
    """The training of :func:`train_rank_torch`; the DDP model is gone when this returns."""
    torch.set_num_threads(1)
    lab = Lab(job["lab_dir"])
    model = load_model(lab.model_config, lab.initial_weights).to(device)
    batches, indices = load_shard(lab, rank, size, job["batch_size"])  # DDP: shard
    batches = [(x.to(device), y.to(device)) for x, y in batches]
    ddp_model = DDP(model)  # DDP: broadcasts rank 0's parameters, then averages gradients
    optimizer = make_optimizer(ddp_model.parameters(), job["lr"] * size)  # DDP: lr × size
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    for _epoch in range(job["epochs"]):
        train_loss = train_epoch(ddp_model, batches, optimizer, loss_fn)
    train_s = time.perf_counter() - start
    del ddp_model, optimizer  # see train_rank_torch: the reducer goes before the group
    mean_loss = torch.tensor(train_loss / size, device=device)
    dist.all_reduce(mean_loss)  # sum of loss / size over ranks: the mean
    slowest = torch.tensor(train_s, device=device)
    dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
    return {
        "weights": weights_bytes(model.cpu()),  # DDP: the same on every rank; the driver saves
        "train_loss": mean_loss.item(),
        "train_s": slowest.item(),
        "world_size": size,
        "shard_rows": len(indices),
    }
