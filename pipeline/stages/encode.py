"""Stage 8: latents for the accepted clips of a worker task's sources, batched (bf16 on a GPU, float32 on a CPU).

Video: the clip's fixed face crop, resized into a resolution bucket, through the Wan VAE. Audio: the
clip's 16 kHz audio (sample-exact to its frames) through the MMAudio mel front end and VAE. Text: umT5
hidden states of the transcript marked as speech. References come from another clip of the same source:
its middle frame (the clip's own first frame when the source has no other clip) and its first seconds of
audio (never the clip's own; absent when the source has no other clip).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from model.buckets import parse_buckets
from model.wan_vae import to_video_tensor
from pipeline import scratch
from pipeline.config import PipelineConfig
from pipeline.stages.base import Record, Resources, Stage

MIN_VOICE_S = 3.0  # a reference voice shorter than this says too little about the speaker
REF_BATCH, AUDIO_BATCH = 4, 8  # items per reference-image and audio VAE call, always (see `padded`)


def padded(items: list, size: int) -> list[list]:
    """`items` in calls of exactly `size`, the last filled up by repeating its final item. A VAE's output for
    an item differs in the last bits between batch sizes (not between neighbours in a batch of one size), so
    calls of one shape give a clip byte-identical latents whatever else its task holds: a retried task, or
    a resumed run that groups sources differently, writes the same samples."""
    calls = [items[i:i + size] for i in range(0, len(items), size)]
    return [call + [call[-1]] * (size - len(call)) for call in calls]


def choose_bucket(buckets: list[tuple[int, int]], crop_w: float, crop_h: float) -> tuple[int, int]:
    """The bucket whose aspect ratio is closest to the crop's (in log space)."""
    aspect = np.log(crop_w / crop_h)
    return min(buckets, key=lambda b: abs(np.log(b[0] / b[1]) - aspect))


def crop_pixels(crop_box: list[float], width: int, height: int) -> tuple[int, int, int, int]:
    """A crop box (x0 y0 x1 y1 as shares of the frame) as whole pixels (x, y, w, h) of a width x height frame."""
    x0, y0, x1, y1 = crop_box
    return (int(round(x0 * width)), int(round(y0 * height)), int(round((x1 - x0) * width)),
            int(round((y1 - y0) * height)))


def decode_crop(mp4: bytes, crop_px: tuple[int, int, int, int], size: tuple[int, int], frames: int) -> np.ndarray:
    """(T, H, W, 3) uint8: the crop (x, y, w, h) of every frame of an in-memory clip, resized to `size`."""
    x, y, w, h = crop_px
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", "pipe:0", "-vf",
           f"crop={w}:{h}:{x}:{y},scale={size[0]}:{size[1]}:flags=bicubic", "-frames:v", str(frames),
           "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
    out = subprocess.run(cmd, input=mp4, capture_output=True, check=True).stdout
    video = np.frombuffer(out, np.uint8).reshape(-1, size[1], size[0], 3)
    if len(video) != frames:
        raise ValueError(f"clip decoded to {len(video)} frames, expected {frames}")
    return video


def nearest(r: Record, candidates: list[Record]) -> Record | None:
    """The candidate other than `r` closest to it in time (the earlier on a tie), or None."""
    others = [o for o in candidates if o is not r]
    return min(others, key=lambda o: (abs(o["start_frame"] - r["start_frame"]), o["start_frame"])) if others else None


class EncodeStage(Stage):
    name = "encode"
    section = "encode"
    resources = Resources(cpus=1.0, gpus=1.0, memory_gb=8.0)

    def __init__(self, cfg: PipelineConfig):
        super().__init__(cfg)
        self.models = None
        self.prefetch = True  # decode the next batch while the VAE runs (benchmarks/encode_stage.py turns it off)

    def setup(self) -> None:
        from model.loading.latent_models import LatentModels
        from model.toy_autoencoders import toy_multiple

        models_dir = self.run.models_dir
        if self.run.debug_models:  # seeded, so every worker on every node writes the same weights
            from model.loading.latent_models import write_debug_models

            models_dir = write_debug_models(scratch.make_dir("debug_models"), self.cfg.video_vae)
        self.models = LatentModels.load(models_dir, self.cfg.video_vae, self.run.debug_models, self.cfg.toy_autoencoders)
        if self.run.debug_models:  # loaded: the random weights are not needed on disk any more
            shutil.rmtree(models_dir, ignore_errors=True)
        self.buckets = parse_buckets(self.cfg.buckets, self.cfg.video_vae, toy_multiple(self.cfg.toy_autoencoders))

    def process(self, records: list[Record]) -> None:
        """The accepted clips of one or more sources (a worker task's: the VAE's batches span sources), each
        source's in time order; references come from the clip's own source."""
        cfg = self.cfg
        store = np.dtype(cfg.latent_dtype)
        by_source: dict[str, list[Record]] = {}
        for r in records:
            by_source.setdefault(r["source_id"], []).append(r)
        for same in by_source.values():
            voiced = [r for r in same if len(r.scratch.pcm) >= MIN_VOICE_S * self.run.sample_rate]
            for r in same:
                r.scratch.latents = {}
                r.scratch.ref, r.scratch.voice_ref = nearest(r, same), nearest(r, voiced)
        if records[0].scratch.mp4 is None:  # audio-only samples: no picture to encode
            with torch.no_grad():
                self.encode_audio_and_text(records, store)
            self.describe(records, "audio", store)
            return
        for r in records:
            meta = r.scratch.meta
            x0, y0, x1, y1 = r["crop_box"]
            r.scratch.size = choose_bucket(self.buckets, (x1 - x0) * meta.width, (y1 - y0) * meta.height)
            r.scratch.crop = crop_pixels(r["crop_box"], meta.width, meta.height)
        by_size: dict[tuple[int, int], list[Record]] = {}
        for r in records:
            by_size.setdefault(r.scratch.size, []).append(r)
        batches = [group[i:i + cfg.encode_batch] for group in by_size.values()
                   for i in range(0, len(group), cfg.encode_batch)]  # one bucket each
        with torch.no_grad(), ThreadPoolExecutor(1) as decoder:
            # the next batch decodes (ffmpeg, off the GIL) while the VAE encodes this one: two batches of
            # frames in memory at most
            ahead = decoder.submit(self.decode_batch, batches[0]) if self.prefetch else None
            for k, batch in enumerate(batches):
                if ahead is not None:
                    ahead.result()
                    ahead = decoder.submit(self.decode_batch, batches[k + 1]) if k + 1 < len(batches) else None
                else:
                    self.decode_batch(batch)
                t0 = time.perf_counter()
                self.encode_video(batch, store)
                if self.models.device != "cpu":
                    torch.cuda.synchronize()
                vae_s = time.perf_counter() - t0
                for r in batch:
                    r.scratch.frames = None
                    r["seconds_vae"] = round(vae_s / len(batch), 4)
            self.encode_reference_images(records, store)
            self.encode_audio_and_text(records, store)
        self.describe(records, None, store)

    @staticmethod
    def decode_batch(batch: list[Record]) -> None:
        for r in batch:
            frames = decode_crop(r.scratch.mp4, r.scratch.crop, r.scratch.size, r.scratch.meta.num_frames)
            r.scratch.frames, r.scratch.first, r.scratch.middle = frames, frames[0].copy(), frames[len(frames) // 2].copy()

    def describe(self, records: list[Record], bucket: str | None, store: np.dtype) -> None:
        """The manifest columns of what was encoded."""
        for r in records:
            lat, ref = r.scratch.latents, r.scratch.ref
            video = bucket is None
            r.update(latent_bucket=bucket or f"{r.scratch.size[0]}x{r.scratch.size[1]}x{r.scratch.meta.num_frames}",
                     latent_shapes=json.dumps({k: list(v.shape) for k, v in lat.items()}),
                     latent_dtype=str(store), reference_clip_id=ref["clip_id"] if ref else None,
                     ref_image_clip_id=(ref or r)["clip_id"] if video else None,
                     ref_voice_clip_id=r.scratch.voice_ref["clip_id"] if r.scratch.voice_ref else None,
                     **{f"{k}_version": v for k, v in self.models.versions.items()
                        if video or k != "video_vae"})

    def encode_video(self, batch: list[Record], store: np.dtype) -> None:
        """One VAE call of `encode_batch` clips of one bucket (`padded`)."""
        m = self.models
        (call,) = padded([r.scratch.frames for r in batch], self.cfg.encode_batch)
        mean, logvar = m.video.encode(to_video_tensor(np.stack(call)).to(m.device, m.dtype))
        for k, r in enumerate(batch):
            lat = r.scratch.latents
            lat["video_mean"] = mean[k].float().cpu().numpy().astype(store)
            if self.cfg.save_video_logvar:
                lat["video_logvar"] = logvar[k].float().cpu().numpy().astype(store)

    def encode_reference_images(self, records: list[Record], store: np.dtype) -> None:
        """The reference clip's middle frame (same bucket), else the clip's own first frame, as 1-frame videos."""
        m = self.models
        same_bucket = lambda r: r.scratch.ref is not None and r.scratch.ref.scratch.size == r.scratch.size
        stills = [r.scratch.ref.scratch.middle if same_bucket(r) else r.scratch.first for r in records]
        for size in {r.scratch.size for r in records}:
            for idx in padded([k for k, r in enumerate(records) if r.scratch.size == size], REF_BATCH):
                mean, _ = m.video.encode(to_video_tensor(np.stack([stills[k][None] for k in idx])).to(m.device, m.dtype))
                for j, k in enumerate(idx):
                    records[k].scratch.latents["ref_image"] = mean[j].float().cpu().numpy().astype(store)

    def encode_audio_and_text(self, records: list[Record], store: np.dtype) -> None:
        m, cfg = self.models, self.cfg
        clips = self.encode_audio([r.scratch.pcm for r in records])
        voice_len = int(cfg.ref_voice_s * self.run.sample_rate)
        voiced = [k for k, r in enumerate(records) if r.scratch.voice_ref is not None]
        voices = dict(zip(voiced, self.encode_audio([records[k].scratch.voice_ref.scratch.pcm[:voice_len] for k in voiced])))
        from model.text_encoder import speech_prompt

        prompts = [speech_prompt(r.scratch.meta.transcript, r.get("caption")) for r in records]
        texts = m.text.encode(prompts)
        for k, r in enumerate(records):
            lat = r.scratch.latents
            lat["audio_mean"] = clips[k][0].float().cpu().numpy().astype(store)
            lat["audio_logvar"] = clips[k][1].float().cpu().numpy().astype(store)
            lat["text"] = texts[k].float().cpu().numpy().astype(store)
            if k in voices:
                lat["ref_voice"] = voices[k][0].float().cpu().numpy().astype(store)
            r["prompt"] = prompts[k]

    def encode_audio(self, pcms: list[np.ndarray]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(mean, logvar) of each waveform, in VAE calls of AUDIO_BATCH waveforms of one length."""
        m, out = self.models, [None] * len(pcms)
        for length in {len(p) for p in pcms}:
            for idx in padded([k for k, p in enumerate(pcms) if len(p) == length], AUDIO_BATCH):
                mean, logvar = m.audio.encode(m.mel(torch.from_numpy(np.stack([pcms[k] for k in idx])).to(m.device)))
                for j, k in enumerate(idx):
                    out[k] = (mean[j], logvar[j])
        return out
