"""Generate from a checkpoint and score what came out, in one go.

    python -m eval.samples CHECKPOINT PROMPTS.jsonl --out DIR [--models-dir models] [--steps 50]

PROMPTS.jsonl holds one JSON object per line: `text` (the words to speak), and optionally `name`, `caption`,
`image` (first frame), `ref_voice` (reference voice) and `seed`; relative paths are taken from the prompts
file's folder. The clips land in DIR/clips/, the scores in DIR/scores.parquet, DIR/summary.json and
DIR/report.html: lip sync, WER against the prompt's text, speaker similarity to its reference voice.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys

from eval.items import Item


def read_prompts(path: str) -> list[dict]:
    base, prompts = os.path.dirname(os.path.abspath(path)), []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            p = json.loads(line)
            if not isinstance(p, dict) or not str(p.get("text") or "").strip():
                raise ValueError(f"{path}:{n}: a prompt needs a non-empty 'text'")
            for key in ("image", "ref_voice"):
                if p.get(key) and not os.path.isabs(p[key]):
                    p[key] = os.path.join(base, p[key])
            stem = re.sub(r"[^\w.-]+", "_", str(p.get("name") or p["text"][:40])).strip("_") or "clip"
            p["name"] = f"{len(prompts):03d}_{stem}"
            prompts.append(p)
    return prompts


def generate(gen, prompts: list[dict], out_dir: str, audio_only: bool, seed: int, **make) -> list[Item]:
    """Each prompt's clip under out_dir/clips/, as an item to score against the prompt's text and voice."""
    from tqdm import tqdm

    os.makedirs(os.path.join(out_dir, "clips"), exist_ok=True)
    items = []
    for p in tqdm(prompts, desc="generate", unit="clip"):
        path = os.path.join(out_dir, "clips", p["name"] + (".wav" if audio_only else ".mp4"))
        gen.make(p["text"], path, caption=p.get("caption", ""), image=p.get("image"), ref_voice=p.get("ref_voice"),
                 audio_only=audio_only, seed=int(p.get("seed", seed)), **make)
        items.append(Item(os.path.basename(path), path, "audio" if audio_only else "video", p["text"], p.get("ref_voice")))
    return items


def main(argv: list[str] | None = None) -> dict:
    from diffusion.sampling import SamplerConfig
    from eval.evaluate import Scorers, evaluate
    from eval.report import write_report
    from generate.sample import Generator
    from model.buckets import parse_buckets
    from model.toy_autoencoders import toy_multiple

    p = argparse.ArgumentParser(prog="python -m eval.samples", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="EMA export (.safetensors) or a run folder")
    p.add_argument("prompts", help="JSON lines: text, and optionally name, caption, image, ref_voice, seed")
    p.add_argument("--out", required=True)
    p.add_argument("--models-dir", default="models")
    p.add_argument("--debug-models", action="store_true", help="seeded debug encoders/decoders (tests)")
    p.add_argument("--toy-autoencoders", default="", metavar="FIT_DIR",
                   help="fitted toy autoencoders in place of the VAEs (shards built with --toy-autoencoders)")
    p.add_argument("--size", default="704x704")
    p.add_argument("--frames", type=int, default=121)
    p.add_argument("--fps", type=float, default=24.0)
    p.add_argument("--audio-only", action="store_true")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--seed", type=int, default=0, help="for prompts that give none")
    p.add_argument("--language", default="en")
    a = p.parse_args(argv)
    prompts = read_prompts(a.prompts)
    gen = Generator(a.checkpoint, a.models_dir, a.debug_models, toy=a.toy_autoencoders)
    (size,) = parse_buckets(a.size, multiple=toy_multiple(a.toy_autoencoders))
    items = generate(gen, prompts, a.out, a.audio_only, a.seed, size=size, frames=a.frames, fps=a.fps,
                     sampler=SamplerConfig(steps=a.steps))
    del gen  # the generator's weights are not needed while scoring
    scorers = Scorers.load(a.models_dir, a.language, items)
    rows = evaluate(items, scorers)
    stats = write_report(rows, {i.name: i.media for i in items}, scorers.missing, a.out,
                         f"Samples of {a.checkpoint}")
    print(json.dumps({k: round(v["mean"], 4) for k, v in stats.items()}))
    return stats


if __name__ == "__main__":
    main(sys.argv[1:])
