"""CPU seconds per second of video, stage by stage, for the clip pipeline's source worker (every check,
Whisper base int8 on the CPU included; latents excluded), and the ratio to a bare decode of the same files
measured in the same run.

    python benchmarks/throughput.py ../shared/real_footage/videos --clip-frames 73 --language en
    python benchmarks/throughput.py --generate-minutes 10 --peak-memory   # a generated 720p talking source

CPU time is the process's user+system time over all its threads plus that of the subprocesses it waited
for (ffmpeg), measured around each stage, so a stage that runs on two threads for one second counts two.
The bare decode is `ffmpeg -i SRC -f null -` of each file. With --peak-memory, each source also runs once
more in a fresh process whose peak resident memory is reported (it must not grow with the source's length).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

def cpu_seconds() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class Timed:
    """A stage (or any callable) whose CPU seconds are added to `totals[name]` on every call."""

    def __init__(self, name: str, inner, totals: dict[str, float]):
        self.name, self.inner, self.totals = name, inner, totals

    def __call__(self, *args, **kwargs):
        t0 = cpu_seconds()
        try:
            return self.inner(*args, **kwargs)
        finally:
            self.totals[self.name] += cpu_seconds() - t0

    def __getattr__(self, item):
        return getattr(self.inner, item)


def bare_decode_cpu(path: str) -> float:
    t0 = cpu_seconds()
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", path, "-f", "null", "-"], check=True)
    return cpu_seconds() - t0


def make_processor(models_dir: str, out_dir: str, sync_scorer: str, language: str, clip_frames: int,
                   overrides: dict | None = None):
    from pipeline.config import PipelineConfig
    from pipeline.run.source_worker import SourceProcessor

    cfg = PipelineConfig.of(input=out_dir, output=out_dir, models_dir=models_dir, latents="off",
                         sync_scorer=sync_scorer, language=language, clip_frames=clip_frames, **(overrides or {}))
    proc = SourceProcessor(cfg)
    proc.setup()
    return proc


def measure(paths: list[str], *settings, warm_up: str = "") -> tuple[dict, float, float, list, float]:
    """Per-stage CPU seconds over all paths, seconds of video, bare-decode CPU seconds, per-file results,
    and the CPU seconds of `warm_up`, a file run once first outside the totals."""
    from pipeline.run.scheduler import source_tasks

    totals: dict[str, float] = defaultdict(float)
    with tempfile.TemporaryDirectory() as out:
        proc = make_processor(*settings[:1], out, *settings[1:])
        warm = 0.0
        if warm_up:  # what a worker pays once (lazy imports, first calls), not per second of video
            t0 = cpu_seconds()
            proc.run(warm_up, os.path.basename(warm_up))
            warm = cpu_seconds() - t0
        proc.source_stages = [Timed(s.name, s, totals) for s in proc.source_stages]
        proc.clip_stages = [Timed(s.name, s, totals) for s in proc.clip_stages]
        proc.stage_samples = Timed("package", proc.stage_samples, totals)
        video_s, bare, rows, results = 0.0, 0.0, [], []
        cfg = proc.cfg
        for task in source_tasks([(p, os.path.basename(p), os.path.getsize(p)) for p in paths], cfg.group_sources,
                                 cfg.group_mb):  # the worker tasks the scheduler would send
            t0 = cpu_seconds()
            results += proc.run_group(json.dumps(task))
            totals["total"] += cpu_seconds() - t0
        for path, result in zip(paths, results):
            src = result["source"]
            video_s += src.get("duration_s") or 0.0
            bare += bare_decode_cpu(path)
            reasons = sorted({f"{c['reject_stage']}:{c['reject_reason']}" for c in result["clips"]
                              if c["status"] == "rejected"} | ({src["reject_reason"]} if src.get("reject_reason") else set()))
            # the scores a decision rests on, to see a setting move them
            reasons += [f"{k}={c[k]:g}" for c in result["clips"][:1] for k in ("motion_conf", "syncnet_conf",
                                                                               "asd_speaking") if c.get(k) is not None]
            rows.append((os.path.basename(path), src["status"], src.get("duration_s") or 0.0, src["clips_accepted"],
                         src["clips_total"], " ".join(reasons)))
    return totals, video_s, bare, rows, warm


def peak_memory_mib(path: str, models_dir: str, sync_scorer: str, language: str, clip_frames: int,
                    overrides: dict) -> float:
    sets = [arg for k, v in overrides.items() for arg in ("--set", f"{k}={v}")]
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", path, "--models-dir", models_dir,
                          "--sync-scorer", sync_scorer, "--language", language, "--clip-frames", str(clip_frames),
                          *sets], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def parse_settings(pairs: list[str]) -> dict:
    """FIELD=VALUE pairs as PipelineConfig keyword arguments, each value cast to its field's type."""
    from dataclasses import fields

    from pipeline.config_sections import SECTIONS

    types = {f.name: type(f.default) for section in SECTIONS.values() for f in fields(section)}
    out = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if name not in types:
            raise SystemExit(f"--set {pair}: no pipeline setting named {name!r}")
        out[name] = value.lower() in ("1", "true", "yes") if types[name] is bool else types[name](value)
    return out


def report(label: str, totals: dict, video_s: float, bare: float, rows: list, warm: float) -> None:
    print(f"== {label}: {len(rows)} files, {video_s:.1f} s of video ==")
    for name, status, seconds, accepted, total, reasons in rows:
        print(f"  {name[:44]:44s} {status:9s} {seconds:7.1f} s  {accepted}/{total} clips accepted  {reasons}")
    stages = [k for k in totals if k != "total"]
    other = totals["total"] - sum(totals[k] for k in stages)
    print(f"  {'stage':12s} {'CPU s':>8s} {'CPU s / s video':>16s} {'share':>6s}")
    for k in stages + ["(between)"]:
        v = other if k == "(between)" else totals[k]
        print(f"  {k:12s} {v:8.2f} {v / video_s:16.3f} {v / totals['total']:6.0%}")
    print(f"  {'total':12s} {totals['total']:8.2f} {totals['total'] / video_s:16.3f}")
    print(f"  bare decode  {bare:8.2f} {bare / video_s:16.3f}   pipeline / bare decode = {totals['total'] / bare:.1f}x")
    if warm:
        print(f"  (before these, one warm-up run of the first file: {warm:.2f} CPU s, paid once per worker)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir", nargs="?", help="folder of videos (searched at its top level)")
    p.add_argument("--generate-minutes", type=float, default=0.0, help="also measure a generated 720p source")
    p.add_argument("--models-dir", default="models")
    p.add_argument("--sync-scorer", default="motion_asd")
    p.add_argument("--language", default="", help="force a language (empty: detect)")
    p.add_argument("--clip-frames", type=int, default=121, help="73 for the 5 s files of real_footage")
    p.add_argument("--peak-memory", action="store_true", help="also report each source's worker peak memory")
    p.add_argument("--workdir", default="", help="where the generated source is kept between runs")
    p.add_argument("--warm-up", action="store_true",
                   help="run the first file once, untimed, before measuring (a worker's one-time costs)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="a pipeline setting to measure, e.g. --set detect_every=8 (repeatable)")
    p.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one source, print peak RSS in MiB
    a = p.parse_args()
    overrides = parse_settings(a.set)
    if a.worker:
        with tempfile.TemporaryDirectory() as out:
            make_processor(a.models_dir, out, a.sync_scorer, a.language, a.clip_frames, overrides).run(
                a.worker, os.path.basename(a.worker))
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        return
    from model.loading.offline_models import assemble_whisper_base
    from pipeline.run.listing import VIDEO_EXTENSIONS

    assemble_whisper_base(a.models_dir)
    sets = []
    if a.dir:
        sets.append((a.dir, sorted(os.path.join(a.dir, n) for n in os.listdir(a.dir) if os.path.splitext(n)[1].lower() in VIDEO_EXTENSIONS)))
    if a.generate_minutes:
        from benchmarks.cpu_stages import make_source

        work = a.workdir or tempfile.mkdtemp(prefix="throughput-")
        path = os.path.join(work, f"talk_{a.generate_minutes:g}min_720p.mp4")
        if not os.path.exists(path):
            t0 = time.perf_counter()
            make_source(path, a.generate_minutes * 60)
            print(f"generated {path} in {time.perf_counter() - t0:.0f} s")
        sets.append((f"generated {a.generate_minutes:g} min 720p", [path]))
    settings = (a.models_dir, a.sync_scorer, a.language, a.clip_frames, overrides)
    for label, paths in sets:
        report(label, *measure(paths, *settings, warm_up=paths[0] if a.warm_up else ""))
        if a.peak_memory:
            for path in paths:
                print(f"  peak memory {os.path.basename(path)[:40]}: "
                      f"{peak_memory_mib(path, *settings):.0f} MiB")


if __name__ == "__main__":
    main()
