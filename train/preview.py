"""Samples during training: every N steps the model generates from a held-out sample's conditions (its
text, its first frame, its reference voice), and rank 0 decodes the latents into an mp4 with sound (stage
2) or a wav (stage 1) under RUN/samples/ and logs them to TensorBoard, with the scores `python -m eval`
gives them (lip sync, WER against the held-out clip's transcript, loudness) under sample/. Every rank runs
the sampler's forwards (ZeRO-3 gathers weights collectively); only rank 0 loads the decoders and scorers."""
from __future__ import annotations

import os

import torch

from diffusion.sampling import SamplerConfig, model_velocity, noise_like, sample, unconditional
from model.audio_norm import AudioNorm
from model.unitalking import Conditioning
from train.config import Config


def conditions(batch: dict, norm: AudioNorm, device) -> Conditioning:
    """The first sample's text and, when it has one, its reference voice. The reference path runs either
    way (closed by `has_ref` where there is none): ranks whose preview batches differ still run the same
    modules, which ZeRO-3's collective weight fetches require."""
    text = batch["text"][:1].to(device)
    channels = batch["audio"].shape[1]
    if "ref_voice" in batch and bool(batch["has_ref"][0]):
        ref, mask, has = norm.normalize(batch["ref_voice"][:1]), batch["ref_mask"][:1], True
        mask = None if bool(mask.all()) else mask.to(device)
    else:
        ref, mask, has = torch.zeros(1, channels, 1), None, False
    return Conditioning(text=text, ref_voice=ref.to(device), has_ref=torch.tensor([has], device=device), ref_mask=mask)


def generate(model, batch: dict, norm: AudioNorm, sampler: SamplerConfig, seed: int, device
             ) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Latents for the first sample's conditions; with video, its first latent frame is given (TI2AV)."""
    cond = conditions(batch, norm, device)
    audio_shape = (1, *batch["audio"].shape[1:])
    clean = batch["video"][:1].to(device) if "video" in batch else None
    noise_v = None if clean is None else noise_like(tuple(clean.shape), seed, device)
    first = None if clean is None else torch.arange(clean.shape[2]) == 0
    velocity = model_velocity(model, cond, unconditional(cond), fps=batch["fps"])
    return sample(velocity, noise_v, noise_like(audio_shape, seed + 1, device), sampler, clean, first)


class Preview:
    def __init__(self, cfg: Config, norm: AudioNorm, batch: dict | None, device, rank: int, metrics):
        self.cfg, self.norm, self.batch, self.device, self.rank, self.metrics = cfg, norm, batch, device, rank, metrics
        self.scorers = None  # the evaluator's models, loaded at the first sample

    def render(self, model, step: int) -> str | None:
        if self.batch is None:
            return None
        t = self.cfg.train
        video, audio = generate(model, self.batch, self.norm, SamplerConfig(steps=t.sample_steps), t.seed, self.device)
        if self.rank != 0:
            return None
        from generate.media import SAMPLE_RATE, Decoders, write_mp4, write_wav

        models = os.path.join(t.run_dir, "debug_models") if t.debug_models else t.models_dir
        decoders = Decoders.load(models, t.debug_models, self.device, t.toy_autoencoders)  # loaded per sample, freed after it:
        wave = decoders.waveform(audio[0], self.norm)  # no VAE sits in GPU memory between samples
        frames = None if video is None else decoders.frames(video[0])
        del decoders
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        out = os.path.join(t.run_dir, "samples", f"step{step:08d}")
        path = write_wav(out + ".wav", wave) if frames is None else write_mp4(out + ".mp4", frames, wave, self.batch["fps"])
        self.metrics.sample(step, "preview", wave, SAMPLE_RATE, frames, path)
        if t.score_samples:
            self.score(step, path, frames is not None)
        return path

    def score(self, step: int, path: str, video: bool) -> None:
        """The sample's scores, as `python -m eval` computes them, logged under sample/; a missing Whisper
        model leaves samples unscored (said once), a clip the scorers cannot read is logged as an error."""
        from eval.evaluate import Scorers, score_item
        from eval.items import Item

        transcript = (self.batch.get("transcripts") or [""])[0]
        item = Item(os.path.basename(path), path, "video" if video else "audio", transcript or None)
        if self.scorers is None:
            try:
                self.scorers = Scorers.load(self.cfg.train.models_dir, "en", [item])
            except FileNotFoundError as e:
                self.scorers, self.cfg.train.score_samples = False, False
                self.metrics.note(f"samples are not scored: {e}")
                return
        row = score_item(item, self.scorers)
        keys = ("offset", "sync_c", "sync_d", "motion_conf", "asd_speaking", "wer", "loudness_db", "silence_share")
        self.metrics.log(step, {f"sample/{k}": float(row[k]) for k in keys if row.get(k) is not None})
        if row.get("error"):
            self.metrics.note(f"step {step}: sample scores incomplete: {row['error']}")
