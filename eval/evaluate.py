"""Score every item: one decode per file (25 fps frames and 16 kHz audio together), then lip sync, Whisper,
speaker similarity and loudness on what it gave. A file that cannot be scored is a row with its error."""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

import numpy as np

from eval.items import Item
from eval.lip_sync import FPS
from eval.speech import SAMPLE_RATE, SpeakerScorer, Transcriber, loudness, wer

ANALYSIS_SIZE = 448  # long side of the frames the face detector reads (the pipeline's default)


@dataclass
class Scorers:
    """The models, loaded once for a whole run; a missing optional one is None with the reason in `missing`."""
    lip_sync: object | None
    transcriber: Transcriber | None
    speaker: SpeakerScorer | None
    missing: dict[str, str]

    @classmethod
    def load(cls, models_dir: str, language: str | None, items: list[Item]) -> "Scorers":
        from model.syncnet import weights_path

        missing = {}
        lip = None
        if any(i.kind == "video" for i in items):
            from eval.lip_sync import LipSyncScorer

            lip = LipSyncScorer(models_dir)
            if lip.syncnet is None:
                missing["syncnet"] = (f"no SyncNet weights at {weights_path(models_dir)}: Sync-C and Sync-D are not "
                                      f"computed (python -m model.loading.fetch --only syncnet); the offline mouth-motion "
                                      f"scorer reports its own offset and confidence instead")
        transcriber = Transcriber(models_dir, language)
        speaker = None
        if any(i.reference_voice is not None for i in items):
            try:
                speaker = SpeakerScorer(models_dir)
            except FileNotFoundError as e:
                missing["speaker"] = str(e)
        return cls(lip, transcriber, speaker, missing)


def materialise(media: str | bytes, tmp: str, name: str) -> str:
    if isinstance(media, str):
        return media
    path = os.path.join(tmp, name)
    with open(path, "wb") as f:
        f.write(media)
    return path


def decode_video(path: str, tmp: str) -> tuple[np.ndarray, np.ndarray]:
    """(T, H, W, 3) RGB frames at 25 fps (long side 448) and the 16 kHz audio, from one ffmpeg process."""
    from pipeline import media

    info = media.probe(path)
    if not info["has_video"] or not info["has_audio"]:
        raise ValueError("a talking video needs a video and an audio stream")
    size = media.even_size(info["display_width"], info["display_height"], ANALYSIS_SIZE)
    dec = media.decode(path, tmp, FPS, SAMPLE_RATE, size)
    frames = media.FrameReader(dec.frames_path, size, dec.num_frames).read(0, dec.num_frames)
    return frames, media.read_pcm(dec.audio_path)


def score_item(item: Item, s: Scorers) -> dict:
    from generate.sample import read_audio

    row: dict = {"name": item.name, "kind": item.kind, "reference_text": item.reference_text, "error": None}
    with tempfile.TemporaryDirectory(prefix="unitalking-eval-") as tmp:
        path = materialise(item.media, tmp, "media.mp4" if item.kind == "video" else "media.wav")
        if item.kind == "video":
            frames, pcm = decode_video(path, tmp)
        else:
            frames, pcm = None, read_audio(path, 1e6)
        row["duration_s"] = round(len(pcm) / SAMPLE_RATE, 3)
        row.update(loudness(pcm))
        if frames is not None:
            if len(frames) < 2 * 15 + 10:
                row["error"] = f"{len(frames)} frames at 25 fps: too short for a +-15 frame sync search"
            else:
                row.update(s.lip_sync(frames, pcm, SAMPLE_RATE))
        text, language = s.transcriber(pcm)
        row.update(transcript=text, language=language)
        if item.reference_text:
            row["wer"] = round(wer(item.reference_text, text), 4)
        if item.reference_voice is not None and s.speaker is not None:
            ref = read_audio(materialise(item.reference_voice, tmp, "reference.wav"), 1e6)
            row.update(speaker_sim=s.speaker(pcm, ref), speaker_model=s.speaker.name)
    return row


def evaluate(items: list[Item], scorers: Scorers, progress: bool = True) -> list[dict]:
    from tqdm import tqdm

    rows = []
    for item in tqdm(items, desc="eval", unit="clip", disable=not progress):
        try:
            rows.append(score_item(item, scorers))
        except Exception as e:  # one unreadable file is a row with its reason, never the end of the run
            rows.append({"name": item.name, "kind": item.kind, "reference_text": item.reference_text,
                         "error": f"{type(e).__name__}: {str(e)[-300:]}"})
    return rows
