"""Everything DeepSpeed: process group, model construction under ZeRO-3, the engine (ZeRO-2/3, optional
CPU offload of the optimizer state, bf16 on GPU, clipping), its checkpoints, and gathering whole weights.
The only module that imports deepspeed."""
from __future__ import annotations

import contextlib
import os

import deepspeed
import torch
import torch.distributed as dist
from torch import nn

from model import init as weight_init
from train.config import Config


def init() -> tuple[int, int, torch.device]:
    """Join the process group the launcher set up (gloo on a CPU, nccl on GPUs)."""
    cuda = torch.cuda.is_available() and os.environ.get("DS_ACCELERATOR", "cuda") != "cpu"
    deepspeed.init_distributed(dist_backend="nccl" if cuda else "gloo")
    rank = dist.get_rank()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        return rank, dist.get_world_size(), torch.device("cuda", torch.cuda.current_device())
    return rank, dist.get_world_size(), torch.device("cpu")


def construction(cfg: Config, device: torch.device) -> contextlib.AbstractContextManager:
    """Under ZeRO-3 each rank builds only its partition of the weights (an 11B model fits nowhere whole)."""
    if cfg.parallel.zero_stage == 3:
        # the dtype comes from the config's bf16 flag: an explicit dtype=float32 is turned into bfloat16 on
        # an accelerator without fp16 (the CPU one), by operator precedence in DeepSpeed 0.19
        return deepspeed.zero.Init(config_dict_or_path=ds_config(cfg, device))
    return contextlib.nullcontext()


def init_partitioned(model: nn.Module, seed: int, dtype: torch.dtype) -> None:
    """Under ZeRO-3 the model's initialisers run here, one unit's weights gathered at a time: rank 0 draws
    them from the seeded CPU generator of an unpartitioned build (model/init.py), so both hold the same
    numbers, and the gather hands them back out."""
    if not any(hasattr(p, "ds_tensor") for p in model.parameters()):
        return
    wrong = sorted({str(p.dtype) for p in model.parameters() if p.dtype != dtype})
    if wrong:
        raise RuntimeError(f"deepspeed.zero.Init built {', '.join(wrong)} parameters, not {dtype}")
    g = weight_init.generator(seed)
    for module, initialise in model.init_units():
        with deepspeed.zero.GatheredParameters(list(module.parameters(recurse=False)) or list(module.parameters()),
                                               modifier_rank=0), torch.no_grad():
            if dist.get_rank() == 0:
                initialise(module, g)


def compute_dtype(cfg: Config, device: torch.device) -> torch.dtype:
    return torch.bfloat16 if cfg.parallel.bf16 and device.type == "cuda" else torch.float32


def ds_config(cfg: Config, device: torch.device, load_universal: bool = False) -> dict:
    p, o = cfg.parallel, cfg.optim
    zero = {"stage": p.zero_stage, "overlap_comm": device.type == "cuda", "contiguous_gradients": True,
            "stage3_gather_16bit_weights_on_model_save": False,
            "reduce_bucket_size": p.reduce_bucket_size, "allgather_bucket_size": p.reduce_bucket_size,
            "stage3_prefetch_bucket_size": p.zero3_prefetch_bucket_size,
            "stage3_param_persistence_threshold": p.zero3_persistence_threshold}
    if p.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": device.type == "cuda"}
    out = {"train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": p.micro_batches,
           "gradient_clipping": o.grad_clip, "zero_optimization": zero, "zero_allow_untested_optimizer": True,
           "bf16": {"enabled": compute_dtype(cfg, device) == torch.bfloat16}, "steps_per_print": 10 ** 9,
           "wall_clock_breakdown": False,
           # gradients summed over micro-batches and ranks in float32: 8-64 bf16 additions lose the low bits
           "data_types": {"grad_accum_dtype": "fp32"}, "communication_data_type": "fp32",
           "checkpoint": {"load_universal": load_universal}}
    if p.offload_optimizer:  # DeepSpeed's CPU Adam (AdamW mode) steps the offloaded state
        out["optimizer"] = {"type": "AdamW", "params": {"lr": o.lr, "betas": o.betas, "eps": o.eps,
                                                        "weight_decay": o.weight_decay}}
    return out


def own_slice(p: torch.Tensor, rank: int, world: int) -> tuple[int, torch.Tensor]:
    """(start, flat view) of rank's ceil(numel / world) elements of a whole tensor (the last may be short)."""
    n = -(-p.numel() // world)
    start = min(rank * n, p.numel())
    return start, p.detach().reshape(-1)[start:start + n]


def partition_range(p: nn.Parameter, rank: int) -> tuple[int, int]:
    """(start, length) of the elements of a ZeRO-3 parameter this rank's partition holds (padding dropped)."""
    n, total = p.ds_tensor.ds_numel, p.ds_numel
    start = min(rank * n, total)
    return start, min(n, total - start)


def weight_fragment(p: nn.Parameter, rank: int, world: int) -> tuple[int, torch.Tensor]:
    """(start, flat values) of the part of a parameter's current weights this rank reads without a gather:
    its ZeRO-3 partition, or its own slice of a parameter every rank holds whole."""
    if hasattr(p, "ds_tensor"):
        start, length = partition_range(p, rank)
        return start, p.ds_tensor.detach().view(-1)[:length]
    return own_slice(p, rank, world)


def master_fragment(p: nn.Parameter, rank: int, world: int, state: str | None = None) -> tuple[int, torch.Tensor]:
    """(start, flat float32 values) of the part of a trainable parameter whose master weights (or optimizer
    state `state`, e.g. 'exp_avg') this rank's optimizer holds: a view the optimizer updates in place, so an
    EMA read from it follows the float32 weights, never their bf16 copies. Empty where the rank holds none."""
    if hasattr(p, "ds_tensor"):  # ZeRO-3: the fp32 partition matches the parameter's partition
        start, length = partition_range(p, rank)
        part = deepspeed.utils.safe_get_local_fp32_param(p) if state is None else \
            deepspeed.utils.safe_get_local_optimizer_state(p, state)
        return start, part.detach().view(-1)[:length]
    if hasattr(p, "_hp_mapping"):  # ZeRO-1/2 or the bf16 optimizer: a fragment of the flat fp32 partition
        m = p._hp_mapping
        if m is None:
            return 0, torch.empty(0, dtype=torch.float32, device=p.device)
        return m.lp_fragment_address.start, m.get_hp_fragment(state).detach().view(-1)
    if state is not None:
        raise ValueError(f"optimizer state {state!r} is only read through DeepSpeed's ZeRO partitions")
    return own_slice(p, rank, world)  # float32 weights without a partitioned optimizer: they are the master


def wrap(model: nn.Module, cfg: Config, device: torch.device, lr_lambda, load_universal: bool = False) -> tuple:
    """The DeepSpeed engine over the trainable parameters (frozen ones never reach the optimizer).
    `load_universal`: the checkpoint to resume is in DeepSpeed's universal format (another world size)."""
    from deepspeed.checkpoint.constants import (UNIVERSAL_CHECKPOINT_INFO, UNIVERSAL_CHECKPOINT_VERSION_KEY,
                                                UNIVERSAL_CHECKPOINT_VERSION_VALUE)

    # what ds_to_universal needs to find in the checkpoints this run writes (no tensor parallelism here)
    setattr(model, UNIVERSAL_CHECKPOINT_INFO, {UNIVERSAL_CHECKPOINT_VERSION_KEY: UNIVERSAL_CHECKPOINT_VERSION_VALUE})
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = None
    if not cfg.parallel.offload_optimizer:
        o = cfg.optim
        fused = device.type == "cuda"
        optimizer = torch.optim.AdamW(params, lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay,
                                      fused=fused)
    schedule = lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)  # DeepSpeed steps and saves it
    engine, optimizer, _, scheduler = deepspeed.initialize(model=model, model_parameters=params, optimizer=optimizer,
                                                           lr_scheduler=schedule,
                                                           config=ds_config(cfg, device, load_universal))
    return engine, optimizer, scheduler


@contextlib.contextmanager
def gathered(params: list[nn.Parameter], modify: bool = False):
    """Whole tensors of ZeRO-3-partitioned parameters inside the block (rank 0 may write them)."""
    if any(hasattr(p, "ds_tensor") for p in params):
        with deepspeed.zero.GatheredParameters(params, modifier_rank=0 if modify else None):
            yield
    else:
        yield


def load_weights(model: nn.Module, state, prefix: str = "") -> list[str]:
    """Copy `state` (a mapping; a lazy one is read a tensor at a time) into `model`'s parameters named
    prefix + key, partitioned or not: under ZeRO-3 rank 0 alone reads and the gather hands the values out.
    Returns the names."""
    params = dict(model.named_parameters())
    names = [prefix + k for k in state]
    missing = [n for n in names if n not in params]
    if missing:
        raise KeyError(f"no parameters named {missing[:5]} in the model")
    for key in state:
        p = params[prefix + key]
        with gathered([p], modify=True), torch.no_grad():
            if not hasattr(p, "ds_tensor") or dist.get_rank() == 0:
                value = state[key]
                if tuple(value.shape) != tuple(p.shape):
                    raise ValueError(f"{prefix + key}: checkpoint shape {tuple(value.shape)} vs model {tuple(p.shape)}")
                p.copy_(value.to(p.dtype))
    return names


def backward_and_step(engine, loss: torch.Tensor) -> None:
    engine.backward(loss)
    engine.step()


def grad_norm(engine) -> float:
    norm = engine.get_global_grad_norm()
    return float(norm) if norm is not None else float("nan")


def save(engine, ckpt_dir: str, tag: str) -> None:
    """Weights, optimizer and scheduler states (DeepSpeed's sharded format); writes ckpt_dir/latest last."""
    engine.save_checkpoint(ckpt_dir, tag=tag, save_latest=True)


def load(engine, ckpt_dir: str, tag: str) -> None:
    path, _ = engine.load_checkpoint(ckpt_dir, tag=tag, load_optimizer_states=True, load_lr_scheduler_states=True)
    if path is None:
        raise FileNotFoundError(f"DeepSpeed could not load checkpoint {tag} from {ckpt_dir}")


def to_universal(src: str, dst: str) -> None:
    """DeepSpeed's universal checkpoint of `src` (any world size loads it), written to `dst`."""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "deepspeed.checkpoint.ds_to_universal", "--input_folder", src,
                    "--output_folder", dst, "--num_extract_workers", "2"], check=True, stdout=subprocess.DEVNULL)


def checkpoint_weights(ckpt_dir: str, tag: str) -> dict:
    """name -> lazy float32 tensor (`.contiguous()` reads it, `.shape` without reading) of every parameter of a
    DeepSpeed checkpoint written by any number of ranks, frozen ones included (its optimizer files in memory)."""
    import contextlib
    import io

    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    with contextlib.redirect_stdout(io.StringIO()):  # it prints a line per group
        return get_fp32_state_dict_from_zero_checkpoint(ckpt_dir, tag, lazy_mode=True)


def optimizer_fingerprint(engine, rank: int, world: int, device: torch.device) -> dict[str, float]:
    """Sums over every rank's float32 master weights and Adam moments: equal before a save and after a
    resume, whatever the world size, when the optimizer state came back whole (a fresh state sums to 0)."""
    link = getattr(engine.optimizer, "_lazy_init_hp_params_optimizer_state", None)
    if link is not None:  # ZeRO-1/2 links the moments to the parameters' fragments at its first step
        link()
    sums = torch.zeros(3, dtype=torch.float64)
    for p in engine.module.parameters():
        if p.requires_grad and (hasattr(p, "ds_tensor") or hasattr(p, "_hp_mapping")):
            for i, state in enumerate((None, "exp_avg", "exp_avg_sq")):
                try:
                    sums[i] += master_fragment(p, rank, world, state)[1].double().abs().sum().cpu()
                except (ValueError, KeyError):  # no optimizer step taken yet: no moments
                    pass
    t = sums.to(device)
    dist.all_reduce(t)
    return {"checkpoint/master_abs_sum": float(t[0]), "checkpoint/exp_avg_abs_sum": float(t[1]),
            "checkpoint/exp_avg_sq_sum": float(t[2])}


def barrier() -> None:
    dist.barrier()


def all_sum(values, device: torch.device):
    """Element-wise sum over ranks of a float64 numpy vector."""
    t = torch.as_tensor(values, dtype=torch.float64).to(device)
    dist.all_reduce(t)
    return t.cpu().numpy()


def all_max(value: float, device: torch.device) -> float:
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t)


def all_mean(value: float, device: torch.device) -> float:
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t) / dist.get_world_size()
