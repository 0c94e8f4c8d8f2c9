"""A training sample in the shards: the members it has, and the JSON metadata member every writer (the
source worker, the encode worker, rescoring) and reader (the trainer, eval) shares.

Members, each named `<clip_id>.<member>`: `mp4` (the clip; absent for audio-only samples), `wav` (16-bit
mono), `json` (SampleMeta), and one `<latent>.npy` per latent the encode worker made (`LATENTS`)."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

MP4, WAV, META = "mp4", "wav", "json"
MEDIA = (MP4, WAV)  # not training inputs: the trainer's reader skips them
LATENTS = ("video_mean", "video_logvar", "audio_mean", "audio_logvar", "text", "ref_voice", "ref_image")


def latent_member(name: str) -> str:
    """The member holding latent `name` (an .npy written without pickle)."""
    return f"{name}.npy"


def member_rows(key: str, members: dict[str, bytes]) -> list[dict]:
    """The manifest's `members` column for a sample: name, size and sha256 of each member."""
    return [{"name": f"{key}.{ext}", "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            for ext, data in members.items()]


@dataclass
class SampleMeta:
    """The `json` member. The source worker fills the clip's facts; the encode worker adds the latent fields."""
    clip_id: str = ""
    source_id: str = ""
    source_path: str = ""
    source_span_s: list = field(default_factory=list)
    """[start, end] seconds of the clip in its source."""
    start_frame: int = 0
    fps: float = 24.0
    num_frames: int = 0
    sample_rate: int = 16000
    audio_samples: int = 0
    width: int | None = None
    height: int | None = None
    audio_only: bool = False
    transcript: str = ""
    segments: list = field(default_factory=list)
    words: list = field(default_factory=list)
    """[{word, start, end, prob}], seconds from the clip's start."""
    language: str | None = None
    word_timing_source: str | None = None
    face_box: list | None = None
    """[x0, y0, x1, y1] of the face, as shares of the frame."""
    crop_box: list | None = None
    sync: dict = field(default_factory=dict)
    """The lip-sync scorer's columns (sync_status, offsets, confidences), as the manifest has them."""
    loudness_db: float | None = None
    speech_ratio: float | None = None
    reference_clip_id: str | None = None
    pipeline_version: str = ""
    prompt: str | None = None
    latent_bucket: str | None = None
    latent_shapes: dict | None = None
    latent_dtype: str | None = None
    ref_image_clip_id: str | None = None
    ref_voice_clip_id: str | None = None
    models: dict | None = None
    """The versions of the video VAE, audio VAE and text encoder that made the latents."""
    extra: dict = field(default_factory=dict)
    """Keys this version does not know (a newer writer's), kept so a rewrite loses nothing."""

    @property
    def sync_status(self) -> str | None:
        return (self.sync or {}).get("sync_status")

    def to_json(self) -> bytes:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        if d["latent_bucket"] is None:  # a sample before encoding carries no latent fields
            for k in ("prompt", "latent_bucket", "latent_shapes", "latent_dtype", "ref_image_clip_id",
                      "ref_voice_clip_id", "models"):
                d.pop(k)
        return json.dumps({**d, **self.extra}, ensure_ascii=False).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> "SampleMeta":
        d = json.loads(data)
        if not isinstance(d, dict):
            raise ValueError(f"a sample's json member must be an object, not {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in d.items() if k in known}, extra={k: v for k, v in d.items() if k not in known})
