"""What a run shows while it trains: a progress bar, TensorBoard scalars, audio and frames of samples, and
metrics.jsonl (one JSON line per logged step, for scripts and tests). Rank 0 writes; other ranks no-op."""
from __future__ import annotations

import json
import os

import numpy as np

# dense bf16 tensor-core peak per GPU, for MFU (vendor datasheets)
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "H800": 989e12, "A100": 312e12, "A800": 312e12,
                   "L40S": 362e12, "B200": 2250e12}


def peak_flops() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)


class Metrics:
    def __init__(self, run_dir: str, rank: int, total_steps: int, start_step: int):
        self.active = rank == 0
        if not self.active:
            return
        from torch.utils.tensorboard import SummaryWriter
        from tqdm import tqdm

        self.writer = SummaryWriter(os.path.join(run_dir, "tensorboard"))
        self.jsonl = open(os.path.join(run_dir, "metrics.jsonl"), "a", encoding="utf-8")
        self.bar = tqdm(total=total_steps, initial=start_step, desc="train", unit="step", dynamic_ncols=True)

    def log(self, step: int, scalars: dict[str, float]) -> None:
        if not self.active:
            return
        for name, value in scalars.items():
            self.writer.add_scalar(name, value, step)
        self.jsonl.write(json.dumps({"step": step, **scalars}) + "\n")
        self.jsonl.flush()
        self.bar.update(step - self.bar.n)
        shown = {k.split("/")[-1]: f"{v:.4g}" for k, v in scalars.items() if k in ("loss/total", "lr", "throughput/samples_per_s")}
        self.bar.set_postfix(shown, refresh=False)

    def sample(self, step: int, name: str, wave: np.ndarray, sample_rate: int, frames: np.ndarray | None,
               path: str) -> None:
        if not self.active:
            return
        self.writer.add_audio(f"sample/{name}", wave[None], step, sample_rate=sample_rate)
        if frames is not None:  # eight frames across the clip, side by side
            picks = frames[np.linspace(0, len(frames) - 1, 8).round().astype(int)]
            self.writer.add_image(f"sample/{name}", np.concatenate(list(picks), axis=1), step, dataformats="HWC")
        self.writer.add_text(f"sample/{name}", path, step)
        self.writer.flush()
        self.bar.write(f"step {step}: sample {path}")

    def note(self, text: str) -> None:
        if self.active:
            self.bar.write(text)

    def close(self) -> None:
        if self.active:
            self.writer.close()
            self.jsonl.close()
            self.bar.close()
