"""The tables of benchmarks/real_footage.py's validation mode, and a plot of the sync evidence."""
from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict

import numpy as np

from benchmarks.footage_calibration import (FILTERS, NEGATIVE, candidate_curves, chosen_defaults, held_out,
                                            load, value)
from pipeline.checks.sync_evidence import read_curve

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KINDS = ("original", "late", "early", "voice_swap")
TRUTH = {"original": 0, "late": -10, "early": 10}  # SyncNet's sign: audio late reads negative


def measure(root: str, out: str, frames: int, models_dir: str) -> None:
    cmd = [sys.executable, os.path.join(REPO, "benchmarks", "footage_measure.py"), root, out, "--clip-frames",
           str(frames), "--models-dir", models_dir]
    subprocess.run(cmd, check=True, cwd=REPO)


def share(flags) -> str:
    flags = list(flags)
    return f"{np.mean(flags):5.0%} ({sum(flags)}/{len(flags)})" if flags else "    -"


def candidates(measure_dir: str, root: str) -> None:
    rows = candidate_curves(measure_dir, root)
    names = list(rows[0][1]) if rows else []
    print(f"\n{'evidence':28s} {'in-sync within 3':>17s} {'shifts at their shift':>22s} {'negatives within 3':>19s}")
    for name in names:
        def reading(kind):
            return [read_curve(np.asarray(c[name])).offset for f, c in rows if f.kind == kind]
        orig = [abs(o) <= 3 for o in reading("original")]
        moved = [abs(o - TRUTH[k]) <= 3 for k in ("late", "early") for o in reading(k)]
        neg = [abs(o) <= 3 for k in NEGATIVE for o in reading(k)]
        print(f"{name:28s} {share(orig):>17s} {share(moved):>22s} {share(neg):>19s}")


def per_file(clips, outcome) -> dict:
    """A file's outcome: accepted if any clip is, else unverified if any clip is, else rejected."""
    by = defaultdict(list)
    for c, o in zip(clips, outcome):
        by[(c.file.collection, c.file.name)].append(o)
    rank = {"accepted": 2, "in_sync": 2, "unverified": 1}
    return {k: max(v, key=lambda o: rank.get(o, 0)) for k, v in by.items()}


def outcome_table(title: str, clips, outcome, files) -> None:
    by_file = per_file(clips, outcome)
    kinds = {(c.file.collection, c.file.name): c.file.kind for c in clips}
    print(f"\n{title}: {'per clip':^44s} | {'per file':^44s}")
    print(f"{'':14s}" + "  ".join(f"{h:>13s}" for h in ("accepted", "unverified", "rejected")) + "  |" +
          "  ".join(f"{h:>13s}" for h in ("accepted", "unverified", "rejected")))
    for kind in KINDS + ("hard",):
        mine = [o for c, o in zip(clips, outcome) if c.file.kind == kind]
        theirs = [o for k, o in by_file.items() if kinds[k] == kind]
        cells = [share(o in group for o in mine) for group in (("accepted", "in_sync"), ("unverified",),
                                                               ("rejected", "out_of_sync", "unmeasured"))]
        cells += [share(o in group for o in theirs) for group in (("accepted", "in_sync"), ("unverified",),
                                                                  ("rejected", "out_of_sync", "unmeasured"))]
        print(f"{kind:14s}" + "  ".join(f"{x:>13s}" for x in cells[:3]) + "  |" + "  ".join(f"{x:>13s}" for x in cells[3:]))


def validate(root: str, work: str, lengths: list[int], models_dir: str) -> dict:
    from pipeline.config import PipelineConfig

    defaults = PipelineConfig().flat()
    results = {}
    for frames in lengths:
        mdir = os.path.join(work, f"measure_{frames}")
        measure(root, mdir, frames, models_dir)  # files already measured are kept
        clips = load(mdir, root)
        print(f"\n==================== {frames}-frame clips: {len(clips)} clips of "
              f"{len({c.file.name for c in clips})} files ====================")
        candidates(mdir, root)
        ho, chosen = held_out(clips, defaults), chosen_defaults(clips, defaults)
        print(f"\n{'filter':32s} {'default':>8s} {'chosen':>8s} {'held-out false rejects':>24s} "
              f"{'of recordings':>14s} {'hard cases hit':>15s}")
        for f in FILTERS:
            hit = ho["filters"][f.name]
            orig = [r for c, r in zip(clips, hit) if c.file.kind == "original" and value(c, f) is not None]
            files = defaultdict(list)  # a recording is lost when the filter rejects every clip of it
            for c, r in zip(clips, hit):
                if c.file.kind == "original":
                    files[c.file.name].append(r)
            hard = [r for c, r in zip(clips, hit) if c.file.kind == "hard"]
            print(f"{f.name:32s} {defaults[f.field]:8.3g} {chosen[f.name]:8.3g} {share(orig):>24s} "
                  f"{share(all(v) for v in files.values()):>14s} {share(hard):>15s}")
        rule = chosen["sync"]
        print(f"\nsync rule on every speaker: in sync within +-{rule.tolerance} frames with evidence >= "
              f"{rule.accept:.2f}; out of sync beyond +-{rule.reject_beyond} with evidence >= {rule.reject:.2f}")
        outcome_table("offline sync alone, held out", clips, ho["sync"], None)
        outcome_table("every filter together, held out", clips, ho["final"], None)
        plot(clips, os.path.join(work, f"sync_evidence_{frames}.png"), rule)
        results[frames] = {"held_out": ho, "chosen": chosen, "clips": clips}
    return results


def plot(clips, path: str, rule) -> None:
    """Offset against evidence per clip, coloured by kind, with the chosen thresholds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    colour = {"original": "tab:green", "late": "tab:red", "early": "tab:orange", "voice_swap": "tab:purple",
              "hard": "tab:grey"}
    for kind, col in colour.items():
        pts = [(c.offset, c.confidence) for c in clips if c.file.kind == kind and c.offset is not None]
        if pts:
            x, y = zip(*pts)
            ax.scatter(np.asarray(x) + np.random.default_rng(0).uniform(-0.25, 0.25, len(x)), y, s=14, c=col,
                       label=kind, alpha=0.7)
    tol, beyond = rule.tolerance + 0.5, rule.reject_beyond + 0.5
    ax.axvspan(-tol, tol, color="tab:green", alpha=0.06)
    ax.hlines([rule.accept], -tol, tol, colors="tab:green", linestyles="--", label=f"in sync >= {rule.accept:.2f}")
    ax.hlines([rule.reject, rule.reject], [-16, beyond], [-beyond, 16], colors="tab:red", linestyles="--",
              label=f"out of sync >= {rule.reject:.2f}")
    ax.set_xlabel("offset read (frames; negative: audio late)")
    ax.set_ylabel("evidence (peak minus median)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"plot: {path}")
