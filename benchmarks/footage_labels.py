"""The labelled real footage (../shared/real_footage and its second/ collection) as a list of files, each
with its kind and the speakers it involves, for validation that holds every speaker out in turn."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

COLLECTIONS = ("", "second")  # the first collection at the root, the second in second/
# Two originals of one person: the same VoxCeleb2 identity prefix (7414...) in the PC-AVS examples.
SAME_SPEAKER = {"vox2_pcavs_741400163": "vox2_pcavs_741400104"}


def speaker(original: str) -> str:
    stem = os.path.splitext(original)[0]
    return SAME_SPEAKER.get(stem, stem)


@dataclass(frozen=True)
class LabelledFile:
    collection: str  # "first" or "second"
    name: str  # file name in its videos/
    path: str
    label: dict  # its labels.json entry
    kind: str  # original, late, early, voice_swap, hard
    speakers: frozenset  # every speaker whose face or voice the file holds
    shift_s: float  # audio_shift_s: how late the audio is (negative: early)


def kind_of(name: str, label: dict) -> str:
    if "__voice_of_" in name:
        return "voice_swap"
    if "__audio_late" in name:
        return "late"
    if "__audio_early" in name:
        return "early"
    return "original" if label["expect"] == "accept" else "hard"


def labelled_files(root: str) -> list[LabelledFile]:
    out = []
    for sub in COLLECTIONS:
        folder = os.path.join(root, sub)
        labels_path = os.path.join(folder, "labels.json")
        if not os.path.isfile(labels_path):
            raise FileNotFoundError(f"{labels_path} is missing: the real footage is not where it was said to be")
        with open(labels_path, encoding="utf-8") as f:
            labels = json.load(f)
        for name, label in sorted(labels.items()):
            face = name.split("__")[0]
            who = {speaker(face)}
            if "__voice_of_" in name:
                who.add(speaker(name.split("__voice_of_")[1]))
            out.append(LabelledFile(sub or "first", name, os.path.join(folder, "videos", name), label,
                                    kind_of(name, label), frozenset(who), float(label.get("audio_shift_s") or 0.0)))
    return out
