"""Every check on labelled real footage, validated by speaker.

    python benchmarks/real_footage.py ../shared/real_footage --work DIR [--frames 49,121]

prints, for each clip length, (1) the candidate kinds of lip-sync evidence compared, (2) for every data
filter the threshold leave-one-speaker-out validation chooses and its held-out false-reject rate on in-sync
originals, (3) the offline sync check's held-out outcomes (accepted, unverified, rejected) on originals,
0.4 s shifts and voice swaps, per clip and per file, and (4) all filters together, held out. The
measurements (benchmarks/footage_measure.py, about 5 minutes per length on 2 cores) are kept in DIR.

    python benchmarks/real_footage.py ../shared/real_footage --end-to-end --clip-frames 73

runs the pipeline itself (build_shards, defaults, --sync-scorer motion_asd) on a collection and prints
per file the decision, reason, sync offset, scores and transcript WER; the mean WER on the real read
speech; and the sync stage's seconds per second of video.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import pyarrow.parquet as pq

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen " \
       "seventeen eighteen nineteen".split()
TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> str:
    """0-99 in words (transcripts spell small numbers; Whisper writes digits)."""
    if n < 20:
        return ONES[n]
    return TENS[n // 10 - 2] + ("" if n % 10 == 0 else " " + ONES[n % 10])


def normalize(text: str) -> str:
    """Lower case, hyphens as spaces, small numbers as words, punctuation dropped."""
    words = []
    for w in text.lower().replace("-", " ").split():
        w = "".join(ch for ch in w if ch.isalnum())
        words.append(number_words(int(w)) if w.isdigit() and int(w) < 100 else w)
    return " ".join(w for w in words if w)


def wer(reference: str, hypothesis: str) -> float:
    import jiwer

    ref, hyp = normalize(reference), normalize(hypothesis)
    return float(jiwer.wer(ref, hyp)) if ref else float("nan")


def clip_wer(reference: str, hypothesis: str) -> float:
    """WER of a clip's transcript against the stretch of the file's transcript it matches best (a 3 s clip
    hears part of a 5 s file: the words it cannot hear are not its errors)."""
    words = normalize(reference).split()
    if not words:
        return float("nan")
    stretches = (" ".join(words[i:j]) for i in range(len(words)) for j in range(i + 1, len(words) + 1))
    return min(wer(s, hypothesis) for s in stretches)


def build(inp: str, out: str, models: str, *extra: str) -> None:
    cmd = [sys.executable, os.path.join(REPO, "pipeline", "build_shards.py"), "--input", inp, "--output", out,
           "--models-dir", models, "--latents", "off", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"build_shards failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def score_videos(root: str, out: str, models: str, scorer: str, clip_frames: int, language: str = "en",
                 *extra: str) -> dict:
    with open(os.path.join(root, "labels.json"), encoding="utf-8") as f:
        labels = json.load(f)
    build(os.path.join(root, "videos"), out, models, "--sync-scorer", scorer, "--clip-frames", str(clip_frames),
          *(["--language", language] if language else []), *extra)
    clips = pq.read_table(os.path.join(out, "manifests", "clips.parquet")).to_pylist()
    sources = {s["source_path"]: s for s in pq.read_table(os.path.join(out, "manifests", "sources.parquet")).to_pylist()}
    files, totals = {}, {"accept": [0, 0], "reject": [0, 0]}
    sync_s = sum(c.get("seconds_sync") or 0.0 for c in clips)
    synced = sum(c["end_s"] - c["start_s"] for c in clips if c.get("seconds_sync"))
    fmt = lambda v, spec: format(v, spec) if v is not None else "-"
    print(f"\n== {scorer} at {clip_frames} frames ==")
    print(f"{'file':40s} {'expect':6s} {'result':8s} {'reason':24s} {'offset':>6s} {'SyncC':>5s} {'motion':>6s} "
          f"{'gain':>5s} {'speak':>5s} {'face':>4s} {'yaw':>4s} {'WER':>5s}")
    for name in sorted(labels):
        label, mine = labels[name], [c for c in clips if c["source_path"] == name]
        accepted = sorted((c for c in mine if c["status"] == "accepted"), key=lambda c: c.get("sync_status") != "in_sync")
        shown = accepted[0] if accepted else (mine[0] if mine else None)
        # kept with sync_status unverified: the offline evidence could not tell (a third outcome)
        result = "rejected" if not accepted else "unverified" if shown.get("sync_status") == "unverified" else "accepted"
        reason = (f"{shown['reject_stage']}:{shown['reject_reason']}" if shown and not accepted else
                  "" if shown else f"{sources[name]['reject_stage']}:{sources[name]['reject_reason']}")
        get = lambda k: shown.get(k) if shown else None
        w = clip_wer(label.get("transcript") or "", accepted[0]["transcript"]) if accepted and label.get("transcript") else None
        files[name] = {"expect": label["expect"], "result": result, "reason": reason,
                       "offset": get("sync_offset_frames"), "wer": w, "scene_cuts_s": sources[name].get("scene_cuts_s"),
                       "audio_shift_frames": get("audio_shift_frames"), "clip_id": get("clip_id")}
        print(f"{name[:40]:40s} {label['expect']:6s} {result:8s} {reason[:24]:24s} {fmt(get('sync_offset_frames'), '+d'):>6s} "
              f"{fmt(get('syncnet_conf'), '.2f'):>5s} {fmt(get('motion_conf'), '.2f'):>6s} {fmt(get('asd_sync_gain'), '.2f'):>5s} "
              f"{fmt(get('asd_speaking'), '.2f'):>5s} {fmt(get('face_width_px'), '.0f'):>4s} {fmt(get('pose_yaw_deg'), '.0f'):>4s} "
              f"{fmt(w, '.2f'):>5s}")
        if label["expect"] in totals:
            kept = result in ("accepted", "unverified") if label["expect"] == "accept" else result == "accepted"
            totals[label["expect"]][0] += kept == (label["expect"] == "accept")
            totals[label["expect"]][1] += 1
    print(f"kept {totals['accept'][0]} of {totals['accept'][1]} that should be; "
          f"not accepted {totals['reject'][0]} of {totals['reject'][1]} that should not be")
    rate = sync_s / synced if synced else float("nan")
    print(f"sync stage: {sync_s:.1f} s for {synced:.1f} s of video = {rate:.3f} s per second of video")
    return {"accepted": totals["accept"], "rejected": totals["reject"], "sync_s_per_s": rate, "files": files}


def speech_wer(root: str, out: str, models: str) -> float:
    with open(os.path.join(root, "speech", "transcripts.json"), encoding="utf-8") as f:
        truth = json.load(f)
    build(os.path.join(root, "speech"), out, models, "--audio-only", "--debug-models", "--sync-scorer", "mouth_motion")
    clips = pq.read_table(os.path.join(out, "manifests", "clips.parquet")).to_pylist()
    errors = []
    for name, text in sorted(truth.items()):
        said = " ".join(c["transcript"] or "" for c in sorted(clips, key=lambda c: c["start_s"]) if c["source_path"] == name)
        errors.append(wer(text, said))
        print(f"{name:52s} WER {errors[-1]:.3f}   {said[:60]!r}")
    if not errors:  # a folder of derived videos has no speech recordings
        return float("nan")
    mean = sum(errors) / len(errors)
    print(f"mean WER on real read speech: {mean:.3f}")
    return mean


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", help="folder with labels.json, videos/ and speech/transcripts.json")
    p.add_argument("--end-to-end", action="store_true", help="run the pipeline on ROOT's own videos/ instead")
    p.add_argument("--work", default="", help="where the measurements are kept (validation mode)")
    p.add_argument("--frames", default="49,121", help="clip lengths to validate at")
    p.add_argument("--scorers", default="motion_asd", help="comma-separated --sync-scorer values to compare")
    p.add_argument("--clip-frames", type=int, default=73)
    p.add_argument("--models-dir", default=os.path.join(REPO, "models"))
    p.add_argument("--keep", default="", help="keep the pipeline outputs in this folder")
    p.add_argument("--language", default="en", help="the footage's language, as a curator would force it "
                                                    "(empty: let Whisper detect it per source)")
    a = p.parse_args()
    if not a.end_to_end:
        from benchmarks.footage_report import validate

        validate(a.root, a.work or tempfile.mkdtemp(prefix="real-footage-"), [int(x) for x in a.frames.split(",")],
                 a.models_dir)
        return
    work = a.keep or tempfile.mkdtemp(prefix="real-footage-")
    results = {s: score_videos(a.root, os.path.join(work, s), a.models_dir, s, a.clip_frames, a.language)
               for s in a.scorers.split(",")}
    results["speech_wer"] = speech_wer(a.root, os.path.join(work, "speech"), a.models_dir)
    print(json.dumps({k: {m: n for m, n in v.items() if m != "files"} if isinstance(v, dict) else v
                      for k, v in results.items()}))


if __name__ == "__main__":
    main()
