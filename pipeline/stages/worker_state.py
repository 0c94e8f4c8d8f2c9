"""What a worker holds for a row while the stages run (`row.scratch`): never written to a manifest."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.media import DecodeResult
from records.rows import ClipRow, SourceRow
from records.sample import SampleMeta


@dataclass
class SourceScratch:
    path: str
    """The local file ffmpeg reads (a download on scratch, for a source in object storage)."""
    local_copy: str | None = None
    """The download on scratch, removed once the source's samples are staged (None: read where it lies)."""
    still_image: bool = False
    """A picture, not footage (the probe's reading of its codec and container)."""
    workdir: str | None = None
    """The scratch folder holding the decoded frames and audio."""
    decoded: DecodeResult | None = None
    """Where the analysis frames and the audio lie."""
    pcm: np.ndarray | None = None
    """The whole source's mono audio at the pipeline's rate."""
    speech: list[tuple[float, float]] = field(default_factory=list)
    """VAD speech regions, seconds from the source's start."""
    clips: list[ClipRow] = field(default_factory=list)
    """The candidate clips the segment stage cut."""


@dataclass
class ClipScratch:
    source: SourceRow
    """The clip's source row (its scratch holds the frames and audio the clip stages read)."""
    track_boxes: np.ndarray | None = None
    """(num_frames, 4) the face's box on every frame of the clip, analysis pixels."""
    track_landmarks: np.ndarray | None = None
    """(num_frames, 5, 2) the face's five landmarks on every frame."""
    provided_transcript: str | None = None
    """A transcript that came with the recording (a .txt sidecar), kept instead of Whisper's."""


@dataclass
class EncodeScratch:
    """An accepted clip on an encode worker: its staged sample, then what the encode stage computes."""
    mp4: bytes | None
    """The clip's video (None for audio-only samples)."""
    wav: bytes
    pcm: np.ndarray
    """The clip's audio, float mono at the pipeline's rate."""
    meta: SampleMeta
    """The sample's JSON member."""
    latents: dict[str, np.ndarray] = field(default_factory=dict)
    ref: ClipRow | None = None
    """The nearest other clip of the source (reference image and identity)."""
    voice_ref: ClipRow | None = None
    """The nearest other clip long enough to be the reference voice."""
    size: tuple[int, int] | None = None
    """The latent bucket (width, height) the crop is resized to."""
    crop: tuple[int, int, int, int] | None = None
    """x, y, width, height of the face crop in the clip's pixels."""
    frames: np.ndarray | None = None
    """(T, H, W, 3) the crop's frames while its batch is encoded."""
    first: np.ndarray | None = None
    middle: np.ndarray | None = None


def new_clip(source: SourceRow, fields: dict) -> ClipRow:
    """A candidate clip of `source`."""
    return ClipRow(fields, scratch=ClipScratch(source))


def clip_pcm(clip: ClipRow, sample_rate: int, pad_frames: int = 0, shift: int | None = None) -> np.ndarray:
    """The clip's audio, sample-exact to its frames (sample round(frame * sr / fps)), taken `shift` frames
    later (default: the clip's `audio_shift_frames`, an offset the sync stage corrected) and widened by
    `pad_frames` either side; silence where it reaches past the source."""
    shift = (clip.get("audio_shift_frames") or 0) if shift is None else shift
    first = clip["start_frame"] + shift - pad_frames
    a = int(round(first * sample_rate / clip["fps"]))
    b = int(round((first + clip["num_frames"] + 2 * pad_frames) * sample_rate / clip["fps"]))
    pcm = clip.scratch.source.scratch.pcm[max(a, 0):max(b, 0)]
    before = min(max(-a, 0), b - a)
    return np.pad(pcm, (before, (b - a) - before - len(pcm)))
