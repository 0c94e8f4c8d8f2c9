"""Strict loading of official checkpoints from a local models folder, and seeded debug weights written in
the same format through the same path (for tests and offline demos, recorded as such in manifests)."""
from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import nn

FETCH_HINT = "python -m model.loading.fetch --models-dir {models_dir}"
EXPORT_INDEX = "model.safetensors.index.json"  # the Hugging Face name of a sharded state dict's index


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


def resolve_export(path: str) -> str:
    """The index (or single file) of a trainer export given the export folder, a run folder (its newest EMA
    export), an index, or a .safetensors file."""
    for candidate in (os.path.join(path, EXPORT_INDEX), os.path.join(path, "export", "ema", EXPORT_INDEX),
                      os.path.join(path, "export", "ema.safetensors")):
        if os.path.isdir(path) and os.path.isfile(candidate):
            return candidate
    if os.path.isfile(path):
        return path
    raise FileNotFoundError(f"no export at {path} (expected {EXPORT_INDEX} in it, or RUN/export/ema/)")


def export_metadata(path: str) -> dict[str, str]:
    """The string metadata of an export: its index's `metadata`, or a single file's header."""
    import json

    from safetensors import safe_open

    path = resolve_export(path)
    if path.endswith(".json"):
        with open(path, encoding="utf-8") as f:
            return dict(json.load(f).get("metadata") or {})
    with safe_open(path, "pt") as f:
        return dict(f.metadata() or {})


def safetensors_files(path: str) -> list[str]:
    """The files of a state dict given as a .safetensors file, a `*.safetensors.index.json`, or a folder of
    shards (as the official Wan2.2 releases ship their DiT, and as the trainer exports)."""
    import glob
    import json

    if os.path.isdir(path) and os.path.isfile(os.path.join(path, EXPORT_INDEX)):
        path = os.path.join(path, EXPORT_INDEX)
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
    return files


class LazyState(Mapping):
    """A state dict whose tensors are read from their safetensors file when asked for, one at a time: a rank
    that copies weights tensor by tensor never holds a checkpoint, and one that copies none reads nothing."""

    def __init__(self, path: str, keep=None):
        from safetensors import safe_open

        self.file_of: dict[str, str] = {}
        for file in safetensors_files(path):
            with safe_open(file, "pt") as f:
                self.file_of.update({k: file for k in f.keys() if keep is None or keep(k)})

    def __getitem__(self, name: str) -> torch.Tensor:
        from safetensors import safe_open

        with safe_open(self.file_of[name], "pt") as f:
            return f.get_tensor(name)

    def __iter__(self):
        return iter(self.file_of)

    def __len__(self) -> int:
        return len(self.file_of)


def read_safetensors_shards(path: str, keep=None) -> dict[str, torch.Tensor]:
    """One state dict from a .safetensors file, an index or a folder of shards; `keep(name)` chooses the
    tensors to read (the others are never read from disk)."""
    from safetensors import safe_open

    state = {}
    for file in safetensors_files(path):
        with safe_open(file, "pt") as f:
            for name in f.keys():
                if keep is None or keep(name):
                    state[name] = f.get_tensor(name)
    return state

