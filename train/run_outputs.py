"""What a run leaves while it trains: checkpoints (every N steps, every M minutes, at the end) and exports
(every K steps and at the end), each with the numbers that show it whole."""
from __future__ import annotations

import json
import os
import time

import torch
import torch.distributed as dist

from train import checkpoint, distributed
from train.config import Config, to_dict
from train.export import DTYPES, export_run


def metadata(cfg: Config, model) -> dict[str, str]:
    """The strings every export carries: the recipe, the model's configuration and the audio statistics as
    the run keeps them (float64, so a stage-2 run inherits them to the last digit)."""
    with open(os.path.join(cfg.train.run_dir, "audio_stats.json"), encoding="utf-8") as f:
        stats = json.load(f)
    return {"config": json.dumps(to_dict(cfg)), "model": json.dumps(model.config.__dict__, default=list),
            "audio_stats": json.dumps({"mean": stats["mean"], "std": stats["std"]})}


class Outputs:
    def __init__(self, cfg: Config, model, engine, ema, rank: int, world: int, device: torch.device):
        self.cfg, self.model, self.engine, self.ema = cfg, model, engine, ema
        self.rank, self.world, self.device = rank, world, device
        self.meta = metadata(cfg, model)
        self.ckpt_dir = os.path.join(cfg.train.run_dir, "checkpoints")
        self.last_save = time.monotonic()

    def save_due(self, step: int) -> bool:
        """Every `save_every` steps, at the end, and after `save_every_minutes` by rank 0's clock (one small
        broadcast a step, so every rank saves at the same step)."""
        t = self.cfg.train
        if step % t.save_every == 0 or step == t.steps:
            return True
        if t.save_every_minutes <= 0:
            return False
        flag = torch.tensor([float(time.monotonic() - self.last_save >= 60 * t.save_every_minutes)], device=self.device)
        dist.broadcast(flag, src=0)
        return bool(flag.item())

    def fingerprint(self, prefix: str) -> dict[str, float]:
        """Sums of the optimizer's float32 state and of the EMA over all ranks (see optimizer_fingerprint)."""
        sums = distributed.optimizer_fingerprint(self.engine, self.rank, self.world, self.device)
        if self.ema is not None:
            local = sum(float(v.double().abs().sum()) for _, _, v in self.ema.fragments())
            sums["checkpoint/ema_abs_sum"] = float(distributed.all_sum([local], self.device)[0])
        return {k.replace("checkpoint/", prefix): v for k, v in sums.items()}

    def save(self, step: int, gen: torch.Generator, position) -> dict[str, float]:
        checkpoint.save(self.engine, self.ckpt_dir, step, self.rank, self.world, self.ema, gen, position,
                        self.cfg.train.keep_checkpoints, self.meta)
        self.last_save = time.monotonic()
        return self.fingerprint("checkpoint/")

    def export_due(self, step: int) -> bool:
        t = self.cfg.train
        return step == t.steps or (t.export_every > 0 and step % t.export_every == 0)

    def export(self, step: int) -> dict[str, float]:
        """RUN/export/<kind>/ for each of `train.export_kinds`; returns rank 0's memory measurements."""
        t, rank, world = self.cfg.train, self.rank, self.world
        ema_names = set() if self.ema is None else set(self.ema.params)

        def fragments(p, kind: str, name: str):
            if kind == "ema" and name in ema_names:
                return self.ema.start[name], self.ema.shadow[name]
            if p.requires_grad:
                return distributed.master_fragment(p, rank, world)
            return distributed.weight_fragment(p, rank, world)

        return export_run(self.model, fragments, os.path.join(t.run_dir, "export"), rank,
                          dict(self.meta, step=str(step)), DTYPES[t.export_dtype], t.export_kinds,
                          int(t.export_shard_gb * 2 ** 30), self.device)
