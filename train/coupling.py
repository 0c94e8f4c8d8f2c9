"""Does joint attention learn the audio-video coupling? A measurement on held-out clips.

    python -m train.coupling --shards OUT/shards [--checkpoint RUN_OR_EXPORT] [--no-cross-modal] [--seeds 5]

Video gap: the video denoising loss with another clip's audio latent given clean (timestep 0 on every audio
token) minus the same loss with the clip's own audio given clean, at fixed noise levels and noise seeds (the
text is the clip's own in both). Audio gap: the same with the roles swapped. A positive gap means the model
uses the other modality to denoise; the spread is over seeds. A model whose streams cannot attend to each
other gives exactly zero, whatever its weights: a check of the measurement itself. Given a region (for
example the latent cells under each clip's mouth), the video gap is also measured on those cells alone: a
mouth-sized signal is diluted in the whole-frame mean.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass

import numpy as np
import torch

from diffusion.flow_matching import add_noise, masked_mse, velocity_target

TIMESTEPS = (0.3, 0.5, 0.7)


@dataclass
class Gap:
    mean: float
    std: float  # over seeds
    per_seed: list[float]
    own_loss: float  # the loss with the clip's own latent given, for scale


def held_out(shards: list[str], count: int) -> dict:
    """Up to `count` held-out stage-2 clips of the most common latent shape, as one batch (so that any clip's
    audio or video can stand in for another's)."""
    from train.data import collate, list_shards, read_shard, shape_key

    groups: dict[str, list] = {}
    for path in list_shards(shards, 2):
        for s in read_shard(path, 2, {}):
            if s is not None:
                groups.setdefault(shape_key(s, 2), []).append(s)
    if not groups:
        raise ValueError(f"no stage-2 samples under {shards}")
    largest = max(groups.values(), key=len)
    if len(largest) < 2:
        raise ValueError("the coupling gap needs at least two clips of one latent shape")
    return collate(largest[:count], 2)


@torch.no_grad()
def losses(model, batch: dict, norm, s: float, seed: int, partner: torch.Tensor,
           region: torch.Tensor | None = None) -> dict[str, float]:
    """Video and audio losses at noise level `s`, the other modality given clean from the clip itself or
    from its partner clip (`partner[i]` is the clip whose latent clip i is given); with `region` (B, 1, 1,
    h, w) of 0/1, the video loss on those cells too."""
    from model.unitalking import Conditioning

    g = torch.Generator().manual_seed(seed)
    x0v, x0a = batch["video"], norm.normalize(batch["audio"]) * batch["audio_mask"][:, None]
    eps_v, eps_a = torch.randn(x0v.shape, generator=g), torch.randn(x0a.shape, generator=g)
    b, frames = x0v.shape[0], x0v.shape[2]
    cond = Conditioning(text=batch["text"])
    t_noisy = torch.full((b,), s * 1000)
    t_clean_v, t_noisy_v = torch.zeros(b, frames), torch.full((b, frames), s * 1000)
    out = {}
    for name, idx in (("own", torch.arange(b)), ("other", partner)):
        pv, _ = model(add_noise(x0v, eps_v, torch.full((b,), s)), x0a[idx], t_noisy_v, torch.zeros(b), cond,
                      audio_mask=batch["audio_mask"], fps=batch["fps"])
        _, pa = model(x0v[idx], add_noise(x0a, eps_a, torch.full((b,), s)), t_clean_v, t_noisy, cond,
                      audio_mask=batch["audio_mask"], fps=batch["fps"])
        out[f"video_{name}"] = float(masked_mse(pv, velocity_target(x0v, eps_v)))
        if region is not None:
            out[f"region_{name}"] = float(masked_mse(pv, velocity_target(x0v, eps_v), region))
        out[f"audio_{name}"] = float(masked_mse(pa, velocity_target(x0a, eps_a), batch["audio_mask"][:, None].float()))
    return out


def coupling_gaps(model, batch: dict, norm, seeds: int = 5, timesteps=TIMESTEPS,
                  region: torch.Tensor | None = None) -> dict[str, Gap]:
    """Video and audio gaps (and the video gap on `region`, as 'region'), each averaged over clips and
    `timesteps`, with their spread over `seeds`."""
    b = batch["video"].shape[0]
    partner = (torch.arange(b) + 1) % b  # every clip paired with the next: never itself
    names = ("video", "audio") + (() if region is None else ("region",))
    per_seed, own = {m: [] for m in names}, {m: [] for m in names}
    for seed in range(seeds):
        runs = [losses(model, batch, norm, s, 1000 + seed, partner, region) for s in timesteps]
        for m in per_seed:
            per_seed[m].append(float(np.mean([r[f"{m}_other"] - r[f"{m}_own"] for r in runs])))
            own[m] += [r[f"{m}_own"] for r in runs]
    return {m: Gap(float(np.mean(v)), float(np.std(v)), v, float(np.mean(own[m]))) for m, v in per_seed.items()}


@torch.no_grad()
def audio_attention(model, batch: dict, norm, s: float = 0.5, seed: int = 0) -> list[float]:
    """Per joint block, the share of the video queries' attention that lands on audio keys (mean over clips,
    heads and queries), with the video at noise level `s` and the clip's own audio given clean. Uniform
    attention would give the audio tokens' share of all tokens; the ablation gives 0."""
    import model.joint_block as joint_block
    from model.unitalking import Conditioning

    x0v, x0a = batch["video"], norm.normalize(batch["audio"]) * batch["audio_mask"][:, None]
    pt, ph, pw = model.config.video_patch
    video_tokens = x0v.shape[2] // pt * (x0v.shape[3] // ph) * (x0v.shape[4] // pw)
    shares, attend = [], joint_block.attend

    def spy(q, k, v, key_mask=None):
        if q.shape[1] > video_tokens and k.shape[1] > video_tokens:  # the joint call: video queries first
            logits = torch.einsum("blhd,bmhd->bhlm", q[:, :video_tokens].float(), k.float()) / q.shape[-1] ** 0.5
            if key_mask is not None:
                logits = logits.masked_fill(~key_mask[:, None, None, :], float("-inf"))
            shares.append(float(logits.softmax(-1)[..., video_tokens:].sum(-1).mean()))
        return attend(q, k, v, key_mask)

    b, frames = x0v.shape[0], x0v.shape[2]
    eps = torch.randn(x0v.shape, generator=torch.Generator().manual_seed(seed))
    joint_block.attend = spy
    try:
        model(add_noise(x0v, eps, torch.full((b,), s)), x0a, torch.full((b, frames), s * 1000), torch.zeros(b),
              Conditioning(text=batch["text"]), audio_mask=batch["audio_mask"], fps=batch["fps"])
    finally:
        joint_block.attend = attend
    return shares


def load_model(checkpoint: str | None, shards: list[str], cross_modal: bool, seed: int, preset: str = "debug"):
    """A trained export (its own config and audio statistics), or an untrained debug model with the audio
    statistics of the shards."""
    from model.audio_norm import AudioNorm
    from model.unitalking import PRESETS, UniTalking
    from train.audio_stats import compute

    if checkpoint:
        from generate.sample import load_export

        return load_export(checkpoint, "cpu")
    torch.manual_seed(seed)
    stats = compute(shards)
    model = UniTalking(dataclasses.replace(PRESETS[preset], cross_modal=cross_modal)).eval()
    return model, AudioNorm(stats["mean"], stats["std"])


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m train.coupling", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shards", required=True, help="held-out shard folder(s), comma-separated")
    p.add_argument("--checkpoint", help="a run folder or its EMA export; none: an untrained debug model")
    p.add_argument("--no-cross-modal", action="store_true", help="untrained model only: the streams' ablation")
    p.add_argument("--clips", type=int, default=8)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0, help="initialisation of an untrained model")
    a = p.parse_args(argv)
    shards = [d for d in a.shards.split(",") if d]
    model, norm = load_model(a.checkpoint, shards, not a.no_cross_modal, a.seed)
    gaps = coupling_gaps(model, held_out(shards, a.clips), norm, a.seeds)
    result = {m: dataclasses.asdict(g) for m, g in gaps.items()}
    result["cross_modal"] = model.config.cross_modal
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
