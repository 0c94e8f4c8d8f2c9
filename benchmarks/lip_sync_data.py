"""The data of the lip-sync learning experiment (benchmarks/lip_sync_learning.py), made with the product's
own tools: the toy corpus, a pipeline run that cuts and checks its clips, toy autoencoders fitted on the
training clips, a second run that encodes them (`--from-clips --toy-autoencoders`), and the shards split
into training and held-out folders by sentence. Each step is skipped when its output exists."""
from __future__ import annotations

import glob
import os
import subprocess
import sys
from dataclasses import dataclass

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FPS, FRAMES, BUCKET = 25, 49, "128x128"  # the bucket is the experiment's default; others get their own folders
HELD_OUT = "heldout-*"  # the toy corpus names the sources of its held-out sentences so


@dataclass
class ToyData:
    train: str  # shard folder of the training sentences' clips
    val: str  # shard folder of the held-out sentences' clips
    fit: str  # the fitted toy autoencoders
    fit_report: dict  # their reconstruction quality
    clips: int  # accepted clips, both splits


def build_shards(args: list[str], models_dir: str) -> None:
    """One pipeline run on a private local Ray cluster (stopped after)."""
    cmd = [sys.executable, os.path.join(REPO, "pipeline", "build_shards.py"), *args, "--debug-models",
           "--fps", str(FPS), "--clip-frames", str(FRAMES), "--ray-address", "local", "--models-dir", models_dir]
    subprocess.run(cmd, cwd=REPO, check=True)


def split(out: str, work: str) -> None:
    """train/ and val/ shard folders, one tar each per bucket: held-out sentences' clips go to val."""
    import fnmatch

    from records.sample import SampleMeta
    from storage.samples import read_samples, write_samples
    from storage.store import Store

    parts: dict[tuple[str, str], list] = {}
    for shard in sorted(glob.glob(os.path.join(out, "shards", "*x*x*", "*.tar"))):
        bucket = os.path.basename(os.path.dirname(shard))
        for key, members in sorted(read_samples(Store(out), os.path.relpath(shard, out)).items()):
            source = os.path.basename(SampleMeta.from_json(members["json"]).source_path)
            parts.setdefault(("val" if fnmatch.fnmatch(source, HELD_OUT) else "train", bucket), []).append((key, members))
    for (which, bucket), samples in parts.items():
        os.makedirs(os.path.join(work, which, bucket), exist_ok=True)
        write_samples(os.path.join(work, which, bucket, "000000.tar"), samples)


def toy_data(work: str, models_dir: str, faces: int = 6, voices: int = 5, sentences: int = 10,
             heldout: int = 2, bucket: str = BUCKET) -> ToyData:
    """Everything under `work`: corpus/, clips/ (cut and checked), toy/ (the autoencoders), latents/, and
    the split train/ and val/; the last four with a `-WxH` suffix for a bucket other than BUCKET (the
    corpus and its checked clips are shared)."""
    import json

    from pipeline.fit_toy_autoencoders import fit
    from sample_corpus import toy

    tag = "" if bucket == BUCKET else f"-{bucket}"
    corpus, clips = os.path.join(work, "corpus"), os.path.join(work, "clips")
    fit_dir, latents, split_dir = (os.path.join(work, d + tag) for d in ("toy", "latents", "split"))
    if not os.path.isfile(os.path.join(corpus, "toy.json")):
        toy.build(corpus, faces, voices, sentences, heldout)
    if not os.path.isfile(os.path.join(clips, "manifests", "clips.parquet")):
        build_shards(["--input", corpus, "--output", clips, "--latents", "off", "--language", "en",
                      "--keep-near-duplicates"], models_dir)
    if not os.path.isfile(os.path.join(fit_dir, "toy.json")):
        w, h = (int(v) for v in bucket.split("x"))
        fit(clips, fit_dir, (w, h), HELD_OUT)
    if not os.path.isfile(os.path.join(latents, "manifests", "clips.parquet")):
        build_shards(["--input", clips, "--output", latents, "--from-clips", "--toy-autoencoders", fit_dir,
                      "--buckets", bucket], models_dir)
    if not os.path.isdir(os.path.join(split_dir, "val")):
        split(latents, split_dir)
    with open(os.path.join(fit_dir, "toy.json"), encoding="utf-8") as f:
        report = json.load(f)["report"]
    return ToyData(os.path.join(split_dir, "train"), os.path.join(split_dir, "val"), fit_dir, report,
                   report["fitted_clips"] + report["held_out_clips"])
