"""The model a run trains: preset (optionally at reduced depth), pretrained weights, the trainable set."""
from __future__ import annotations

import dataclasses
import json
import re

from collections.abc import Mapping

import torch
from torch import nn

from model import init as weight_init
from model.unitalking import PRESETS, UniTalking, UniTalkingConfig
from train.config import Config

# what stage 2 takes from a stage-1 checkpoint
AUDIO_PREFIXES = ("audio.", "audio_ref.", "ref_voice_embedding.")


def model_config(cfg: Config) -> UniTalkingConfig:
    """The preset as the run trains it; stage 1 builds the audio side alone (no video stream)."""
    base = dataclasses.replace(PRESETS[cfg.model.preset], cross_modal=cfg.model.cross_modal,
                               video_stream=cfg.task.stage == 2)
    return dataclasses.replace(base, layers=cfg.model.layers) if cfg.model.layers else base


def build(cfg: Config, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> UniTalking:
    """Built on the meta device, then made directly on `device` in `dtype` with the seeded initial values
    drawn once (model/init.py, one tensor at a time): no float32 copy of the model on the host first.
    Seeded, so every rank (and a test re-building it) starts from the same weights."""
    with torch.device("meta"):
        model = UniTalking(model_config(cfg)).to(dtype)
    model.to_empty(device=device)
    weight_init.run(model.init_units(), cfg.train.seed)
    return model


def pretrained_states(cfg: Config) -> list[tuple[str, Mapping[str, torch.Tensor]]]:
    """(prefix, state dict) pairs to copy into the model: the Wan2.2 DiT into the video stream (every name
    of the stream, nothing else) and, for stage 2, the audio side of a stage-1 checkpoint. The state dicts
    read a tensor when it is asked for (a rank that copies none, under ZeRO-3, reads nothing)."""
    from model.checkpoints import LazyState, resolve_export

    out = []
    m = cfg.model
    if m.video_dit:
        with torch.device("meta"):
            want = set(UniTalking(model_config(cfg)).video.state_dict())
        state = LazyState(m.video_dit)  # names from the files' headers; no tensor read yet
        if set(state) != want:
            missing, extra = sorted(want - set(state)), sorted(set(state) - want)
            raise KeyError(f"{m.video_dit} is not a Wan2.2-TI2V-5B DiT state dict: missing {missing[:5]}, "
                           f"unexpected {extra[:5]}")
        out.append(("video.", state))
    if m.audio_init:
        path = resolve_export(m.audio_init)
        state = LazyState(path, keep=lambda k: k.startswith(AUDIO_PREFIXES))
        if not state:
            raise KeyError(f"{path} holds no audio-stream weights ({', '.join(AUDIO_PREFIXES)})")
        out.append(("", state))
    return out


def stage1_audio_stats(audio_init: str) -> tuple[dict, str]:
    """The audio statistics a stage-1 export trained on, and where they were read."""
    from model.checkpoints import export_metadata, resolve_export

    path = resolve_export(audio_init)
    meta = export_metadata(path)
    if "audio_stats" not in meta:
        raise ValueError(f"{path} carries no audio statistics: it is not an export of train/run.py")
    return json.loads(meta["audio_stats"]), path


def set_trainable(model: nn.Module, patterns: list[str]) -> tuple[int, int]:
    """Freeze every parameter whose name matches none of `patterns` (all train when empty); returns
    (trainable, frozen) parameter counts."""
    regexes = [re.compile(p) for p in patterns]
    counts = [0, 0]
    for name, p in model.named_parameters():
        train = not regexes or any(r.search(name) for r in regexes)
        p.requires_grad_(train)
        counts[0 if train else 1] += getattr(p, "ds_numel", None) or p.numel()
    if counts[0] == 0:
        raise ValueError(f"optim.trainable {patterns} matches no parameter")
    return counts[0], counts[1]
