"""Peak memory and CPU time of `summary`, `audit`, `verify` and the run's last step, `write_manifests` (the
merged manifests and the shard index), over a run of many synthetic clip rows.

    python benchmarks/manifest_memory.py --clips 1000000 --work /tmp/mm      # builds the run once, then measures
    python benchmarks/manifest_memory.py --work /tmp/mm --repo /tmp/old     # the same run, another checkout's tools

The run is written through the project's own writers (`storage.parts.write_part`, `write_manifests`): parts
of 1000 clips (5 per source, 70% accepted, each with a transcript, timed words and six shard members), and a
shard per part holding a small member for each accepted clip's six (verify hashes every one). Each tool runs
in a fresh process; its peak resident memory (VmHWM: ru_maxrss would carry the builder's peak
across exec) and CPU seconds are printed, with the rows read."""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = {
    "summary": "from manifests.summary import summary_counts; k = summary_counts(OUT); print(k['clips'])",
    "audit": "from manifests.audit import load, text_report; a = load(OUT); text_report(a); print(a.clips if "
             "isinstance(a.clips, int) else len(a.clips))",
    "verify": "from manifests.verify import verify; print(len(verify(OUT)), 'problems')",
    "write_manifests": "from storage.parts import write_manifests; write_manifests(OUT); print('merged')",
}
EXTS = ("mp4", "wav", "json", "video_latent.npy", "audio_latent.npy", "text_embed.npy")


def clip_rows(part: int, per_part: int, shard: str) -> tuple[list[dict], list[dict], bytes]:
    """A part's source and clip rows, and its shard's bytes."""
    words = [{"word": f"word{k}", "start": k * 0.3, "end": k * 0.3 + 0.25, "prob": 0.9} for k in range(15)]
    sources, clips, tar_bytes = [], [], io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w") as tar:
        for i in range(per_part):
            n = part * per_part + i
            sid = hashlib.md5(f"s{n // 5}".encode()).hexdigest()
            if i % 5 == 0:
                sources.append({"source_id": sid, "source_path": f"videos/{n // 5:08d}.mp4", "status": "done",
                                "duration_s": 60.0, "has_video": True, "video_fingerprint": "A" * 1600,
                                "audio_fingerprint": "B" * 2000, "clips_total": 5, "seconds_total": 30.0})
            cid = hashlib.md5(f"c{n}".encode()).hexdigest()
            accepted = n % 10 < 7
            row = {"clip_id": cid, "source_id": sid, "source_path": f"videos/{n // 5:08d}.mp4",
                   "status": "accepted" if accepted else "rejected", "start_s": 5.0 * (n % 5),
                   "end_s": 5.0 * (n % 5) + 5.04, "start_frame": 121 * (n % 5), "num_frames": 121, "fps": 24.0,
                   "reject_stage": None if accepted else "sync", "reject_reason": None if accepted else "sync_offset",
                   "reject_detail": None if accepted else "motion_asd offset +10 frames", "language": "en",
                   "transcript": "a sentence of about eighty characters said by the person in the clip here",
                   "words_json": json.dumps(words), "segments_json": json.dumps([{"start": 0, "end": 5, "text": "x"}]),
                   "loudness_db": -20.0, "speech_ratio": 0.9, "face_width_px": 200.0, "syncnet_conf": 7.0,
                   "seconds_face": 0.5, "seconds_sync": 1.0, "seconds_transcribe": 0.4}
            if accepted:
                members = []
                for ext in EXTS:
                    data = f"{cid}.{ext}".encode()
                    info = tarfile.TarInfo(f"{cid}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                    members.append({"name": info.name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
                row.update(shard=shard, members=members)
            clips.append(row)
    return sources, clips, tar_bytes.getvalue()


def build(out: str, total: int, per_part: int = 1000) -> None:
    from storage.parts import write_manifests, write_part
    from storage.store import Store

    store = Store(out)
    t0 = time.perf_counter()
    for part in range(total // per_part):
        shard = f"clips/{part:06d}.tar"
        sources, clips, data = clip_rows(part, per_part, shard)
        store.write_bytes(f"shards/{shard}", data)
        write_part(store, f"shards/clips/{part:06d}", sources, clips, (1, part))
        if part % 100 == 0:
            print(f"  part {part} of {total // per_part} ({time.perf_counter() - t0:.0f} s)", flush=True)
    write_manifests(out)
    print(f"built {total} clip rows in {time.perf_counter() - t0:.0f} s", flush=True)


def measure(out: str, repo: str, tool: str) -> tuple[float, float, str]:
    code = (f"import resource, sys; sys.path.insert(0, {repo!r}); OUT = {out!r}\n{TOOLS[tool]}\n"
            "r = resource.getrusage(resource.RUSAGE_SELF)\n"
            "hwm = next(int(ln.split()[1]) for ln in open('/proc/self/status') if ln.startswith('VmHWM'))\n"
            "print('PEAK', hwm / 1024, r.ru_utime + r.ru_stime)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo)
    if proc.returncode:
        return float("nan"), float("nan"), proc.stderr.strip().splitlines()[-1][:80]
    lines = proc.stdout.strip().splitlines()
    _, mib, cpu = lines[-1].split()
    return float(mib), float(cpu), lines[-2]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=1_000_000)
    p.add_argument("--work", required=True, help="where the synthetic run is built (kept for reruns)")
    p.add_argument("--repo", default=REPO, help="the checkout whose tools are measured")
    p.add_argument("--tools", default=",".join(TOOLS), help="which of " + ", ".join(TOOLS) + " to run")
    a = p.parse_args()
    out = os.path.join(a.work, f"run_{a.clips}")
    if not os.path.exists(os.path.join(out, "manifests", "clips.parquet")):
        sys.path.insert(0, REPO)
        build(out, a.clips)
    print("| tool | peak memory (MiB) | CPU s | said |\n|---|---|---|---|")
    for tool in a.tools.split(","):
        mib, cpu, said = measure(out, a.repo, tool)
        print(f"| {tool} | {mib:.0f} | {cpu:.1f} | {said} |", flush=True)


if __name__ == "__main__":
    main()
