"""Does joint attention learn the audio-video coupling? Trains the debug model on stage 2 twice, with joint
attention and with the streams unable to see each other, then measures the coupling gaps (train/coupling.py)
of the untrained model and of both trained ones, on held-out clips and on the training clips.

    python benchmarks/joint_coupling.py OUT/shards --steps 300 --holdout 3 --work /tmp/coupling

OUT is a pipeline run over the sample corpus with --debug-models (its mouths move with the speech's
loudness). The clips of its largest latent bucket are split: the last --holdout are held out.
"""
from __future__ import annotations

import argparse
import glob
import io
import json
import os
import subprocess
import sys
import tarfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def split_shards(shards: str, work: str, holdout: int) -> tuple[str, str]:
    """train/ and val/ shard folders: the largest bucket's samples, the last `holdout` of them held out."""
    tars = sorted(glob.glob(os.path.join(shards, "*x*x*", "*.tar")))
    bucket = max({os.path.dirname(t) for t in tars}, key=lambda b: sum(os.path.getsize(t) for t in tars if t.startswith(b)))
    members: dict[str, list] = {}
    for t in sorted(glob.glob(os.path.join(bucket, "*.tar"))):
        with tarfile.open(t) as tar:
            for m in tar.getmembers():
                members.setdefault(m.name.split(".", 1)[0], []).append((m, tar.extractfile(m).read()))
    keys = sorted(members)
    if len(keys) <= holdout + 1:
        raise SystemExit(f"{len(keys)} clips in {bucket}: too few to hold {holdout} out")
    out = []
    for part, chosen in (("train", keys[:-holdout]), ("val", keys[-holdout:])):
        folder = os.path.join(work, part, os.path.basename(bucket))
        os.makedirs(folder, exist_ok=True)
        with tarfile.open(os.path.join(folder, "000000.tar"), "w") as tar:
            for k in chosen:
                for m, data in members[k]:
                    tar.addfile(m, io.BytesIO(data))
        out.append(os.path.dirname(folder))
    return out[0], out[1]


def train(run_dir: str, train_dir: str, val_dir: str, steps: int, port: int, *overrides: str) -> str:
    if os.path.isdir(os.path.join(run_dir, "export", "ema")):
        return run_dir
    deepspeed = os.path.join(os.path.dirname(sys.executable), "deepspeed")
    cmd = [deepspeed, "--num_gpus", "2", "--master_port", str(port), "train/run.py", "--config",
           "train/configs/stage2_debug.yaml", "--data.dirs", train_dir, "--data.val_dirs", val_dir,
           "--train.run_dir", run_dir, "--train.steps", str(steps), "--train.save_every", str(steps),
           "--train.val_every", str(max(1, steps // 5)), "--train.sample_every", "0", *overrides]
    subprocess.run(cmd, cwd=REPO, check=True, env=dict(os.environ, DS_ACCELERATOR="cpu"))
    return run_dir


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("shards")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--holdout", type=int, default=3)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--work", default="/tmp/unitalking-coupling")
    a = p.parse_args()
    from train.coupling import coupling_gaps, held_out, load_model

    train_dir, val_dir = split_shards(a.shards, a.work, a.holdout)
    runs = {"joint": train(os.path.join(a.work, "joint"), train_dir, val_dir, a.steps, 29611),
            "apart": train(os.path.join(a.work, "apart"), train_dir, val_dir, a.steps, 29612,
                           "--model.cross_modal", "false")}
    batches = {"held-out": held_out([val_dir], 64), "training": held_out([train_dir], 64)}
    models = {"untrained (joint)": load_model(None, [train_dir], True, 0),
              f"trained {a.steps} steps (joint)": load_model(runs["joint"], [], True, 0),
              f"trained {a.steps} steps (streams apart)": load_model(runs["apart"], [], False, 0)}
    print(f"{'model':40s} {'clips':9s} {'video gap +- std over seeds (of the loss)':>44s} {'audio gap':>34s}")
    results = {}
    for name, (model, norm) in models.items():
        for which, batch in batches.items():
            g = coupling_gaps(model, batch, norm, a.seeds)
            results[f"{name} / {which}"] = {m: [g[m].mean, g[m].std, g[m].own_loss] for m in g}
            share = lambda m: 100 * g[m].mean / g[m].own_loss
            print(f"{name:40s} {which:9s} {g['video'].mean:+22.6f} +- {g['video'].std:.6f} ({share('video'):+.2f}%) "
                  f"{g['audio'].mean:+14.6f} +- {g['audio'].std:.6f} ({share('audio'):+.2f}%)")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
