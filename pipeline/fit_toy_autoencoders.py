"""Fit the toy autoencoders (model/toy_autoencoders.py) on the accepted clips of a pipeline run, then report
how well they reconstruct, so a reader knows what the toy latent space can show.

    python -m pipeline.fit_toy_autoencoders OUT FIT_DIR --bucket 128x128 [--exclude 'heldout-*']

OUT is a run's output (usually `--latents off`): each accepted clip's mp4 is cropped and resized exactly as
the encode stage does (its crop box, into --bucket), its wav goes through the project's mel front end.
Clips whose source file name matches --exclude are not fitted on (held-out clips); the report measures
them apart. Then encode with `build_shards.py --from-clips --input OUT --toy-autoencoders FIT_DIR`.
The report (in FIT_DIR/toy.json and printed): PSNR of the whole crop and of the mouth region (the lower
middle of the face box), and the mean absolute log10-mel distance, on fitted and held-out clips.
"""
from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import glob
import json
import os
import sys

import numpy as np

REPORT_CLIPS = 24  # clips of each split kept for the reconstruction report


@dataclasses.dataclass
class Clip:
    name: str  # the source file's name
    frames: np.ndarray  # (T, H, W, 3) uint8 at the bucket size
    mel: np.ndarray  # (80, T_mel)
    mouth: tuple[int, int, int, int]  # x0 y0 x1 y1 in bucket pixels


def mouth_box(meta, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The lower middle of the face box (the mouth and chin) in the crop's pixels."""
    (fx0, fy0, fx1, fy1), (cx0, cy0, cx1, cy1) = meta.face_box, meta.crop_box
    to_x = lambda v: (v - cx0) / (cx1 - cx0) * size[0]
    to_y = lambda v: (v - cy0) / (cy1 - cy0) * size[1]
    w, h = fx1 - fx0, fy1 - fy0
    box = (to_x(fx0 + 0.25 * w), to_y(fy0 + 0.6 * h), to_x(fx0 + 0.75 * w), to_y(fy0 + 0.95 * h))
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    return max(0, x0), max(0, y0), min(size[0], max(x1, x0 + 1)), min(size[1], max(y1, y0 + 1))


def read_clips(out_dir: str, size: tuple[int, int]):
    """Every clip with an mp4 in the run's shards, as the encode stage would crop it."""
    import torch

    from model.mel import LogMel
    from pipeline.stages.encode import crop_pixels, decode_crop
    from records.sample import MP4, WAV, SampleMeta
    from storage.samples import read_samples, wav_pcm
    from storage.store import Store

    mel = LogMel()
    store = Store(out_dir)
    for tar in sorted(glob.glob(os.path.join(out_dir, "shards", "**", "*.tar"), recursive=True)):
        for key, members in sorted(read_samples(store, os.path.relpath(tar, out_dir)).items()):
            if MP4 not in members:
                continue
            meta = SampleMeta.from_json(members["json"])
            frames = decode_crop(members[MP4], crop_pixels(meta.crop_box, meta.width, meta.height), size, meta.num_frames)
            wave = torch.from_numpy(wav_pcm(members[WAV]))[None]
            yield Clip(os.path.basename(meta.source_path), frames, mel(wave)[0].numpy(), mouth_box(meta, size))


def report(video, audio, clips: list[Clip]) -> dict:
    from model.toy_fit import mel_distance, psnr, round_trip_video

    if not clips:
        return {}
    whole, mouth, mels = [], [], []
    for c in clips:
        back = round_trip_video(video, c.frames)
        x0, y0, x1, y1 = c.mouth
        whole.append(psnr(c.frames, back))
        mouth.append(psnr(c.frames[:, y0:y1, x0:x1], back[:, y0:y1, x0:x1]))
        mels.append(mel_distance(audio, c.mel))
    return {"clips": len(clips), "psnr_db": round(float(np.mean(whole)), 2),
            "mouth_psnr_db": round(float(np.mean(mouth)), 2), "mel_l1_log10": round(float(np.mean(mels)), 4)}


def fit(out_dir: str, fit_dir: str, size: tuple[int, int], exclude: str = "", config=None) -> dict:
    from model.toy_autoencoders import ToyConfig, save
    from model.toy_fit import fit_audio, fit_video

    config = config or ToyConfig()
    train, held = [], []
    for c in read_clips(out_dir, size):
        (held if exclude and fnmatch.fnmatch(c.name, exclude) else train).append(c)
    if not train:
        raise SystemExit(f"no clips to fit on in {out_dir}/shards (every accepted clip excluded, or none has an mp4)")
    video = fit_video((c.frames for c in train), config)
    audio = fit_audio((c.mel for c in train), config)
    result = {"bucket": f"{size[0]}x{size[1]}", "fitted": report(video, audio, train[:REPORT_CLIPS]),
              "held_out": report(video, audio, held[:REPORT_CLIPS]), "fitted_clips": len(train),
              "held_out_clips": len(held)}
    save(fit_dir, config, video, audio, result)
    return result


def main(argv: list[str] | None = None) -> dict:
    from model.buckets import parse_buckets

    p = argparse.ArgumentParser(prog="python -m pipeline.fit_toy_autoencoders", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="a pipeline run's output folder (its shards hold the clips' mp4 and wav)")
    p.add_argument("fit_dir", help="where the fitted autoencoders go")
    p.add_argument("--bucket", default="128x128", help="WxH the clips are cropped to (multiples of 16)")
    p.add_argument("--exclude", default="", help="source file names (a glob) not fitted on: the held-out clips")
    a = p.parse_args(argv)
    (size,) = parse_buckets(a.bucket, multiple=16)
    result = fit(a.out, a.fit_dir, size, a.exclude)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
