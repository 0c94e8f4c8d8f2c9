"""Strict loading of official checkpoints from a local models folder, and seeded debug weights written in
the same format through the same path (for tests and offline demos, recorded as such in manifests)."""
from __future__ import annotations

import os

import torch
from torch import nn

FETCH_HINT = "python -m model.loading.fetch --models-dir {models_dir}"


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """Tensors only: safetensors, or a torch file read with weights_only (no arbitrary pickle)."""
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return state


def load_strict(module: nn.Module, models_dir: str, relpath: str, entry: str | None = None) -> nn.Module:
    """Load `models_dir/relpath` (its `entry` when the file holds several state dicts) into `module`;
    every name and shape must match."""
    path = os.path.join(models_dir, relpath)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model weights not found: {path} (download them with: "
                                f"{FETCH_HINT.format(models_dir=models_dir)})")
    state = read_state_dict(path)
    state = dict(state.get(entry, state) if entry else state)
    # checkpoints from torch < 0.4.1 have no batch-norm step counters; those buffers carry no weights
    for name, buf in module.state_dict().items():
        if name.endswith("num_batches_tracked") and name not in state:
            state[name] = buf.clone()
    module.load_state_dict(state, strict=True)
    return module


def save_debug_weights(module: nn.Module, models_dir: str, relpath: str, seed: int = 0) -> str:
    """Seeded small random weights of `module`, saved where the official file would be."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, t in module.state_dict().items():
        if t.is_floating_point():
            scale = 1.0 / max(1, t[0].numel()) ** 0.5 if t.dim() > 1 else 0.02
            base = 1.0 if name.endswith(("gamma", "running_var")) else 0.0
            state[name] = base + scale * torch.randn(t.shape, generator=gen)
        else:
            state[name] = t.clone()
    path = os.path.join(models_dir, relpath)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if path.endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, path)
    else:
        torch.save(state, path)
    return path


def read_safetensors_shards(path: str) -> dict[str, torch.Tensor]:
    """One state dict from a .safetensors file, a `*.safetensors.index.json`, or a folder of shards (as the
    official Wan2.2 releases ship their DiT)."""
    import glob
    import json

    from safetensors.torch import load_file

    if os.path.isdir(path):
        files = sorted(glob.glob(os.path.join(path, "*.safetensors")))
    elif path.endswith(".json"):
        with open(path, encoding="utf-8") as f:
            index = json.load(f)["weight_map"]
        files = sorted({os.path.join(os.path.dirname(path), v) for v in index.values()})
    else:
        files = [path]
    if not files or not all(os.path.isfile(f) for f in files):
        raise FileNotFoundError(f"no safetensors weights at {path} (download them with: "
                                f"{FETCH_HINT.format(models_dir=os.path.dirname(path) or '.')})")
    state = {}
    for f in files:
        state.update(load_file(f))
    return state
