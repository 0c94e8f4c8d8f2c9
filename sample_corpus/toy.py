"""A toy talking-portrait corpus big enough to train on: several real faces and espeak-ng voices, each source
one short sentence whose loudness drives the painted mouth, with held-out sentences kept apart.

    python -m sample_corpus.toy OUT_DIR [--faces 6] [--voices 5] [--sentences 10] [--heldout 2]

Faces are photographs shipped inside installed wheels (scikit-image's astronaut, the people of
InsightFace's test picture); each is placed on a square canvas with its mouth corners located by
RetinaFace. Every face says every sentence in every voice: a source is `{split}-f{face}-v{voice}-s{sentence}.mp4`,
split `train` or `heldout` by sentence (the last --heldout sentences are never trained on).
`OUT_DIR/toy.json` lists the sources with their face, voice, sentence and split.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os

from sample_corpus import media as cm

SUBJECTS = ["my sister", "the old man", "our teacher", "a small dog", "the pilot", "your neighbour", "the baker",
            "a young girl", "the doctor", "his friend", "the farmer", "her uncle"]
ACTIONS = ["opened the blue door", "painted a bright red boat", "found a map under the bed",
           "carried water up the hill", "sang a song about the moon", "baked bread before dawn",
           "walked along the quiet river", "read the letter twice", "fixed the broken clock", "lost a green umbrella"]
VOICES = ["en-us", "en-gb", "en-us+f3", "en-gb-x-rp", "en-us+m3", "en-gb-scotland+f2", "en-029", "en-us+f4"]
CANVAS = 192  # pixels square; the face fills about half of it
SECONDS = 2.6  # one 49-frame clip at 25 fps (1.96 s) plus margins
FPS = 25.0


def sentence(i: int) -> str:
    """The i-th toy sentence: subjects and actions paired so that no two sentences share both."""
    return f"{SUBJECTS[i % len(SUBJECTS)].capitalize()} {ACTIONS[(i * 7 + i // len(SUBJECTS)) % len(ACTIONS)]}."


def wheel_faces() -> list[cm.Face]:
    """Real portraits from installed wheels, each cropped around its face onto a CANVAS-square picture."""
    import cv2
    import insightface
    import skimage.data
    from retinaface import detect_faces

    pictures = [skimage.data.astronaut()]
    group = os.path.join(os.path.dirname(insightface.__file__), "data", "images", "t1.jpg")
    if os.path.isfile(group):
        pictures.append(cv2.cvtColor(cv2.imread(group), cv2.COLOR_BGR2RGB))
    faces = []
    for picture in pictures:
        for f in sorted(detect_faces(picture), key=lambda f: f.x):
            if f.width < 40:
                continue
            cx, cy, side = f.x + f.width / 2, f.y + f.height * 0.55, 1.9 * max(f.width, f.height)
            scale = CANVAS / side
            whole = cm.Face(picture, *((float(p.x), float(p.y)) for p in f.landmarks[3:5]))
            offset = (int(round((side / 2 - cx) * scale)), int(round((side / 2 - cy) * scale)))
            faces.append(cm.transform_face(whole, scale, canvas=(CANVAS, CANVAS), offset=offset))
    return faces


def build(out_dir: str, faces: int = 6, voices: int = 5, sentences: int = 10, heldout: int = 2) -> list[dict]:
    """Write faces x voices x sentences sources into out_dir; return their descriptions."""
    os.makedirs(out_dir, exist_ok=True)
    portraits = wheel_faces()
    if len(portraits) < faces:
        raise ValueError(f"{faces} faces asked for, {len(portraits)} found in the installed wheels")
    if voices > len(VOICES):
        raise ValueError(f"at most {len(VOICES)} voices")
    rows = []
    speech = {}
    for (f, v, s) in itertools.product(range(faces), range(voices), range(sentences)):
        split = "heldout" if s >= sentences - heldout else "train"
        name = f"{split}-f{f}-v{v}-s{s}.mp4"
        if (v, s) not in speech:
            speech[v, s] = cm.pad_to(cm.speak(sentence(s), VOICES[v], words_per_minute=170), SECONDS, lead_s=0.25)
        audio = speech[v, s]
        frames = cm.talking_frames(portraits[f], audio, FPS, int(round(SECONDS * FPS)), seed=len(rows))
        path = os.path.join(out_dir, name)
        if not os.path.isfile(path):
            cm.write_video(path, frames, FPS, audio)
        rows.append({"file": name, "face": f, "voice": VOICES[v], "sentence": sentence(s), "split": split})
    with open(os.path.join(out_dir, "toy.json"), "w", encoding="utf-8") as fh:
        json.dump(rows, fh, indent=1)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir")
    p.add_argument("--faces", type=int, default=6)
    p.add_argument("--voices", type=int, default=5)
    p.add_argument("--sentences", type=int, default=10)
    p.add_argument("--heldout", type=int, default=2, help="the last this many sentences are held out")
    a = p.parse_args()
    rows = build(a.out_dir, a.faces, a.voices, a.sentences, a.heldout)
    print(f"wrote {len(rows)} sources ({sum(r['split'] == 'heldout' for r in rows)} held out) to {a.out_dir}")


if __name__ == "__main__":
    main()
