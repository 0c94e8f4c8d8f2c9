"""Does the recipe learn lip sync? Trains the debug-size model on stage 2 twice (joint attention, and the
ablation whose streams never see each other) on the toy corpus encoded with decodable toy autoencoders,
then, on clips of held-out sentences, generates video to given audio and looks at the generated mouth.

    python benchmarks/lip_sync_learning.py --work /tmp/lip_sync [--steps 1500] [--cases 12]

For each model (untrained, joint, ablation) and for the ground truth passed through the toy autoencoders
(the instrument's ceiling):
- A2V: the clip's first latent frame and its audio given clean (timestep 0), the audio shifted by k in
  {0, -6, -3, +3, +6} frames (k > 0: heard k frames early); the rest of the video is generated, decoded,
  and scored against the audio heard with the offline scorer `python -m eval` uses. A case follows the audio
  when |offset - k| <= 1. A2V noised: the same audio given noised to the video's noise level at each step.
- T2AV and TI2AV: audio and video generated together, scored against each other (in sync: |offset| <= 1).
- the coupling gaps of train/coupling.py, the video gap on the whole frame and on the mouth's cells.
Prints a table and writes WORK/results.json (every case's scores) and WORK/mouths.png (contact sheet).
"""
from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import os
import sys

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from benchmarks.lip_sync_data import BUCKET, FPS, toy_data  # noqa: E402

SHIFTS = (0, -6, -3, 3, 6)
SAMPLE_RATE = 16000
SCORED_SIDE = 128  # smaller frames are upscaled to this before scoring: the face detector and mouth landmarks want it


@dataclasses.dataclass
class Case:
    name: str  # source file
    sample: dict  # decoded latents (train.data.decode)
    wave: np.ndarray  # the clip's 16 kHz audio
    region: torch.Tensor  # (h, w) 1 on the latent cells under the mouth


def read_cases(val_dir: str, count: int, cell: int) -> list[Case]:
    """`count` held-out clips spread over faces and voices (every n-th in source-name order)."""
    from pipeline.fit_toy_autoencoders import mouth_box
    from records.sample import SampleMeta
    from storage.samples import read_samples, wav_pcm
    from storage.store import Store
    from train.data import decode

    cases = []
    for tar in sorted(glob.glob(os.path.join(val_dir, "*x*x*", "*.tar"))):
        for key, members in read_samples(Store(val_dir), os.path.relpath(tar, val_dir)).items():
            sample = decode({**members, "__key__": key}, 2)
            meta = SampleMeta.from_json(members["json"])
            h, w = sample["video"].shape[2:]
            x0, y0, x1, y1 = mouth_box(meta, (w * cell, h * cell))
            region = torch.zeros(h, w)
            region[y0 // cell:-(-y1 // cell), x0 // cell:-(-x1 // cell)] = 1.0
            cases.append(Case(os.path.basename(meta.source_path), sample, wav_pcm(members["wav"]), region))
    cases.sort(key=lambda c: c.name)
    if len(cases) < 2:
        raise SystemExit(f"{len(cases)} held-out clips in {val_dir}: too few")
    step = max(1, len(cases) // count)
    return cases[::step][:count]


def shifted(wave: np.ndarray, k: int) -> np.ndarray:
    """The audio heard k video frames early (k > 0) or late (k < 0), its length kept."""
    from sample_corpus.media import shift

    return shift(wave, -k / FPS)


class Toy:
    """The toy autoencoders as the trainer and `generate.sample` decode with them (generate.media.Decoders:
    pictures, and sound through Griffin-Lim), and the mel front end that encodes given audio."""

    def __init__(self, fit_dir: str):
        from generate.media import Decoders
        from model.audio_norm import AudioNorm
        from model.mel import LogMel

        self.decoders, self.mel = Decoders.load(fit_dir, toy=fit_dir), LogMel()
        self.video, self.audio = self.decoders.video, self.decoders.audio
        channels = self.audio.config.audio_channels
        self.raw = AudioNorm([0.0] * channels, [1.0] * channels)  # latents as the autoencoder makes them

    @torch.no_grad()
    def audio_latent(self, wave: np.ndarray, length: int) -> torch.Tensor:
        return self.audio.encode(self.mel(torch.from_numpy(wave)[None]))[0][0, :, :length]

    def sound(self, latent: torch.Tensor, norm=None) -> np.ndarray:
        """(20, L) audio latent, normalised by `norm` (None: as the autoencoder made it) -> waveform."""
        return self.decoders.waveform(latent, norm or self.raw)

    def frames(self, latent: torch.Tensor) -> np.ndarray:
        return self.decoders.frames(latent)


def generate(model, norm, cases: list[Case], sampler, seed: int, first: bool, audio: list[torch.Tensor] | None = None,
             noised: bool = False):
    """Video and (normalised) audio latents for every case at once: the first latent frame given when
    `first`, the audio (raw latents) given clean when `audio`, or with `noised` given at each step noised to
    the video's level (what training shows the model: one noise level for both, `task.shared_timesteps`)."""
    from diffusion.sampling import model_velocity, noise_like, sample, unconditional
    from model.unitalking import Conditioning
    from train.data import collate

    batch = collate([c.sample for c in cases], 2)
    cond = Conditioning(text=batch["text"])
    video = batch["video"]
    mask = torch.arange(video.shape[2]) == 0
    given = None if audio is None else norm.normalize(torch.stack(audio))
    velocity = model_velocity(model, cond, unconditional(cond), fps=batch["fps"])
    if noised:
        eps, clean = noise_like(tuple(given.shape), seed + 2), given

        def velocity(xv, xa, t_frames, t_audio, conditional, inner=velocity):
            s = (t_audio / 1000).view(-1, 1, 1)
            return inner(xv, (1 - s) * clean + s * eps, t_frames, t_audio, conditional)
        given = None
    return sample(velocity, noise_like(tuple(video.shape), seed), noise_like(tuple(batch["audio"].shape), seed + 1),
                  sampler, video if first else None, mask if first else None, given)


def score(scorer, frames: np.ndarray, wave: np.ndarray) -> dict:
    if max(frames.shape[1:3]) < SCORED_SIDE:
        import cv2

        f = SCORED_SIDE / max(frames.shape[1:3])
        size = (int(round(frames.shape[2] * f)), int(round(frames.shape[1] * f)))
        frames = np.stack([cv2.resize(x, size, interpolation=cv2.INTER_CUBIC) for x in frames])
    s = scorer(frames, wave, SAMPLE_RATE)
    return {"offset": s.get("offset"), "confidence": s.get("motion_conf"), "error": s.get("error")}


def evaluate(models: dict, cases: list[Case], toy: Toy, scorer, sampler, seed: int) -> tuple[list[dict], dict]:
    """Every case's scores, and a few frames per model for the contact sheet."""
    from tqdm import tqdm

    length = cases[0].sample["audio"].shape[1]
    given = {k: [toy.audio_latent(shifted(c.wave, k), length) for c in cases] for k in SHIFTS}
    heard = {k: [toy.sound(z) for z in given[k]] for k in SHIFTS}
    rows, sheet = [], {}
    with tqdm(total=len(cases) * (len(SHIFTS) * (2 * len(models) + 1) + 2 * len(models)), desc="score", unit="case") as bar:
        truth = [toy.frames(torch.from_numpy(c.sample["video"])) for c in cases]
        sheet["ground truth"] = truth[0]
        for k in SHIFTS:
            for i, c in enumerate(cases):
                rows.append({"model": "ground truth", "task": "a2v", "k": k, "case": c.name, **score(scorer, truth[i], heard[k][i])})
                bar.update()
        for name, (model, norm) in models.items():
            for task, k in ((task, k) for task in ("a2v", "a2v_noised") for k in SHIFTS):
                video, _ = generate(model, norm, cases, sampler, seed, True, given[k], task == "a2v_noised")
                for i, c in enumerate(cases):
                    frames = toy.frames(video[i])
                    if k == 0 and i == 0:
                        sheet[f"{name} {task}"] = frames
                    rows.append({"model": name, "task": task, "k": k, "case": c.name, **score(scorer, frames, heard[k][i])})
                    bar.update()
            for task, first in (("t2av", False), ("ti2av", True)):
                video, audio = generate(model, norm, cases, sampler, seed, first)
                for i, c in enumerate(cases):
                    wave = toy.sound(audio[i], norm)
                    rows.append({"model": name, "task": task, "k": 0, "case": c.name, **score(scorer, toy.frames(video[i]), wave)})
                bar.update(len(cases))
    return rows, sheet


def summary(rows: list[dict]) -> dict:
    """Per model and task: the share of cases whose mouth is where the audio says (|offset - k| <= 1), the
    share per k, and the mean confidence."""
    out = {}
    for key in sorted({(r["model"], r["task"]) for r in rows}):
        sel = [r for r in rows if (r["model"], r["task"]) == key]
        hit = lambda r: r["offset"] is not None and abs(r["offset"] - r["k"]) <= 1
        out[" / ".join(key)] = {
            "follows": round(float(np.mean([hit(r) for r in sel])), 3), "cases": len(sel),
            "by_k": {k: round(float(np.mean([hit(r) for r in sel if r["k"] == k])), 3) for k in sorted({r["k"] for r in sel})},
            "confidence": round(float(np.mean([r["confidence"] or 0.0 for r in sel])), 3),
            "no_face": sum(r["offset"] is None for r in sel)}
    return out


def couplings(models: dict, cases: list[Case], seeds: int) -> dict:
    """train/coupling.py's gaps on the held-out cases (the video gap also on the mouth's cells), overall and
    per noise level, and the share of the video queries' attention on audio keys per block."""
    from train.coupling import TIMESTEPS, audio_attention, coupling_gaps
    from train.data import collate

    batch = collate([c.sample for c in cases], 2)
    region = torch.stack([c.region for c in cases])[:, None, None]
    out = {}
    for name, (model, norm) in models.items():
        per_s = {s: coupling_gaps(model, batch, norm, seeds, (s,), region) for s in TIMESTEPS}
        out[name] = {}
        for m in per_s[TIMESTEPS[0]]:
            seeds_mean = np.mean([g[m].per_seed for g in per_s.values()], 0)  # over noise levels, per seed
            own = float(np.mean([g[m].own_loss for g in per_s.values()]))
            out[name][m] = {"gap": float(seeds_mean.mean()), "std": float(seeds_mean.std()),
                            "share": float(seeds_mean.mean()) / own,
                            "share_by_s": {s: g[m].mean / g[m].own_loss for s, g in per_s.items()}}
        out[name]["attention_to_audio"] = audio_attention(model, batch, norm)
    return out


def contact_sheet(sheet: dict, path: str) -> str:
    """Every 6th frame of one held-out case per model, one row each, named."""
    import cv2

    rows = []
    for name, frames in sheet.items():
        row = np.concatenate(list(frames[::6]), 1).copy()
        cv2.putText(row, name, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1, cv2.LINE_AA)
        rows.append(row)
    cv2.imwrite(path, cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR))
    return path


def free_port() -> int:
    """A port no one listens on now: the trainer's rendezvous, so that two runs on one machine never meet."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="/tmp/unitalking-lip-sync")
    p.add_argument("--models-dir", default=os.path.join(REPO, "models"))
    p.add_argument("--faces", type=int, default=6)
    p.add_argument("--voices", type=int, default=5)
    p.add_argument("--sentences", type=int, default=10)
    p.add_argument("--heldout", type=int, default=2, help="sentences held out")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--bucket", default=BUCKET, help="WxH of the clips' crops (multiples of 16)")
    p.add_argument("--preset", default="debug", help="model size (train/config.py model.preset)")
    p.add_argument("--cases", type=int, default=12, help="held-out clips generated for")
    p.add_argument("--sample-steps", type=int, default=16)
    p.add_argument("--seeds", type=int, default=3, help="noise seeds of the coupling gaps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--recipe", default="", help="extra trainer overrides for both runs, space-separated")
    p.add_argument("--tag", default="", help="a name for this recipe: its runs and results get it as a suffix, "
                                               "and the data under --work is shared")
    a = p.parse_args(argv)
    from benchmarks.joint_coupling import train
    from diffusion.sampling import SamplerConfig
    from eval.lip_sync import LipSyncScorer
    from generate.sample import load_export
    from train.coupling import load_model

    data = toy_data(a.work, a.models_dir, a.faces, a.voices, a.sentences, a.heldout, a.bucket)
    extra = ["--model.preset", a.preset, "--train.toy_autoencoders", data.fit, "--data.tokens_per_batch", "4000", "--data.max_batch", "4",
             "--train.sample_every", "0", "--train.seed", str(a.seed), *a.recipe.split()]
    suffix = f"-{a.tag}" if a.tag else ""
    runs = {"joint": train(os.path.join(a.work, "joint" + suffix), data.train, data.val, a.steps, free_port(), *extra),
            "ablation": train(os.path.join(a.work, "ablation" + suffix), data.train, data.val, a.steps, free_port(),
                              *extra, "--model.cross_modal", "false")}
    models = {"untrained": load_model(None, [data.train], True, a.seed, a.preset),
              "joint": load_export(runs["joint"], "cpu"), "ablation": load_export(runs["ablation"], "cpu")}
    toy = Toy(data.fit)
    cases = read_cases(data.val, a.cases, toy.video.config.spatial)
    rows, sheet = evaluate(models, cases, toy, LipSyncScorer(a.models_dir), SamplerConfig(steps=a.sample_steps,
                           solver="euler", video_scale=1.0, audio_scale=1.0), a.seed)
    result = {"steps": a.steps, "preset": a.preset, "bucket": a.bucket, "recipe": a.recipe, "clips": data.clips, "held_out_cases": len(cases), "autoencoders": data.fit_report,
              "summary": summary(rows), "gaps": couplings(models, cases, a.seeds), "rows": rows,
              "contact_sheet": contact_sheet(sheet, os.path.join(a.work, f"mouths{suffix}.png"))}
    with open(os.path.join(a.work, f"results{suffix}.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    print(f"{'model / task':28s} {'follows':>8s}  {'by k (' + ' '.join(map(str, SHIFTS)) + ')':32s} {'conf':>6s}")
    for key, s in result["summary"].items():
        print(f"{key:28s} {s['follows']:8.2f}  {' '.join(f'{v:.2f}' for v in s['by_k'].values()):32s} {s['confidence']:6.3f}")
    print(f"{'model':12s} {'video gap (% own loss)':>24s} {'mouth cells':>14s} {'audio gap':>12s}  "
          "attention of video on audio, per block")
    for name, g in result["gaps"].items():
        print(f"{name:12s} {100 * g['video']['share']:+23.3f}% {100 * g['region']['share']:+13.3f}% "
              f"{100 * g['audio']['share']:+11.3f}%  {' '.join(f'{v:.3f}' for v in g['attention_to_audio'])}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
