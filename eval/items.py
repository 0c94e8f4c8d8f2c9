"""What to evaluate: every video or audio file under a folder, or every sample of WebDataset shards, each with
its reference text and reference voice when one is known.

Reference text: `--transcripts FILE` (JSON {name: text}, name as listed), else a sidecar `NAME.txt`, else a
shard sample's recorded transcript. Reference voice: `--references FILE` (JSON {name: audio path}), else a
sidecar `NAME.ref.wav`, else, for a shard sample, the audio of the sample named by its `ref_voice_clip_id`.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".webm", ".avi")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".m4a", ".ogg")


@dataclass
class Item:
    name: str  # relative path, or shard/key for a shard sample
    media: str | bytes  # a file path, or the bytes of a shard member
    kind: str  # "video" | "audio"
    reference_text: str | None = None
    reference_voice: str | bytes | None = None  # path or bytes of any audio file
    extra: dict = field(default_factory=dict)


def _read_json(path: str | None) -> dict:
    if not path:
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def folder_items(root: str, transcripts: dict, references: dict) -> list[Item]:
    items = []
    for dirpath, _, names in os.walk(root):
        for n in sorted(names):
            low = n.lower()
            if low.endswith(".ref.wav") or not low.endswith(VIDEO_SUFFIXES + AUDIO_SUFFIXES):
                continue
            path = os.path.join(dirpath, n)
            rel = os.path.relpath(path, root)
            stem = os.path.splitext(path)[0]
            text = transcripts.get(rel, transcripts.get(n))
            if text is None and os.path.isfile(stem + ".txt"):
                with open(stem + ".txt", encoding="utf-8") as f:
                    text = f.read().strip()
            voice = references.get(rel, references.get(n))
            if voice is None and os.path.isfile(stem + ".ref.wav"):
                voice = stem + ".ref.wav"
            items.append(Item(rel, path, "video" if low.endswith(VIDEO_SUFFIXES) else "audio", text, voice))
    return sorted(items, key=lambda i: i.name)


def shard_items(tars: list[str], base: str, transcripts: dict) -> list[Item]:
    from records.sample import META, MP4, WAV, SampleMeta
    from storage.samples import read_samples
    from storage.store import Store

    samples = {}
    for t in tars:
        for key, members in read_samples(Store(os.path.dirname(os.path.abspath(t))), os.path.basename(t)).items():
            samples[key] = (os.path.relpath(t, base), members)
    items = []
    for key, (tar, m) in sorted(samples.items()):
        meta = SampleMeta.from_json(m[META]) if META in m else SampleMeta(key, transcript=None)
        name = f"{tar}/{key}"
        media, kind = (m[MP4], "video") if MP4 in m else (m.get(WAV), "audio")
        if media is None:
            continue
        ref = samples.get(meta.ref_voice_clip_id or "", (None, {}))[1].get(WAV)
        items.append(Item(name, media, kind, transcripts.get(name, transcripts.get(key, meta.transcript)), ref,
                          {"clip_id": key}))
    return items


def collect(root: str, transcripts_file: str | None = None, references_file: str | None = None) -> list[Item]:
    """Shard samples where `root` is a .tar or a folder holding .tar files, else the media files under it (or
    `root` itself, a media file)."""
    transcripts = _read_json(transcripts_file)
    here = os.path.dirname(os.path.abspath(references_file or "."))
    references = {k: os.path.join(here, v) for k, v in _read_json(references_file).items()}  # relative: to the file
    if not os.path.exists(root):
        raise FileNotFoundError(f"nothing to evaluate at {root}")
    if os.path.isfile(root):
        folder = os.path.dirname(os.path.abspath(root))
        if root.endswith(".tar"):
            return shard_items([root], folder, transcripts)
        return [i for i in folder_items(folder, transcripts, references) if i.name == os.path.basename(root)]
    tars = sorted(os.path.join(d, n) for d, _, ns in os.walk(root) for n in ns if n.endswith(".tar"))
    return shard_items(tars, root, transcripts) if tars else folder_items(root, transcripts, references)
