"""Benchmark of the CPU stages on synthetic 720p talking-head sources (not a test).

    python benchmarks/cpu_stages.py [--seconds 60] [--long-minutes 10] [--workdir DIR]

Prints, for a 60 s 720p source: how many times the source is opened for decoding (must be 1), and the
wall time of all CPU stages divided by a bare `ffmpeg -i SRC -f null -` decode of the same file; then a
worker's peak memory (max RSS of the worker process) on a 10-minute 720p source (must stay under 2 GiB).
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

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from sample_corpus import media as cm  # noqa: E402
from sample_corpus.build import SENTENCES, VOICES  # noqa: E402

SIZE = (1280, 720)
FPS = 30


def make_source(path: str, seconds: float) -> None:
    """A 720p, 30 fps talking head with speech, streamed into ffmpeg so memory stays flat."""
    face = cm.transform_face(cm.astronaut_face(), 1.3, canvas=SIZE, offset=(320, 20))
    speech = np.concatenate([cm.pad_to(cm.speak(s, v), 6.0, 0.2) for s, v in zip(SENTENCES, VOICES)])
    n_audio = int(seconds * cm.SAMPLE_RATE)
    audio = np.resize(speech, n_audio)
    env = cm.envelope(audio, FPS, int(seconds * FPS))
    with tempfile.TemporaryDirectory() as tmp:
        wav = os.path.join(tmp, "a.wav")
        from scipy.io import wavfile

        wavfile.write(wav, cm.SAMPLE_RATE, (audio * 32767).astype(np.int16))
        cmd = ["ffmpeg", "-nostdin", "-y", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s",
               f"{SIZE[0]}x{SIZE[1]}", "-r", str(FPS), "-i", "-", "-i", wav, "-c:v", "libx264", "-preset",
               "ultrafast", "-crf", "23", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", path]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
        for i in range(len(env)):
            frame = face.image.copy()
            cm.paint_mouth(frame, face, float(env[i]))
            proc.stdin.write(frame.tobytes())
        proc.stdin.close()
        if proc.wait() != 0:
            raise RuntimeError("ffmpeg failed to write the benchmark source")


def bare_decode_seconds(path: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", path, "-f", "null", "-"], check=True)
    return time.perf_counter() - t0


class DecodeCounter:
    """Counts ffmpeg/ffprobe processes started on the source file (ffmpeg-python starts them too)."""

    def __init__(self, path: str):
        self.path, self.decodes, self.probes = path, 0, 0
        self._popen = subprocess.Popen.__init__

    def __enter__(self):
        counter = self

        def counting_init(proc, args, *a, **kw):
            if isinstance(args, (list, tuple)) and counter.path in map(str, args):
                tool = os.path.basename(str(args[0]))
                if tool == "ffprobe":
                    counter.probes += 1
                elif tool == "ffmpeg":
                    counter.decodes += 1
            counter._popen(proc, args, *a, **kw)

        subprocess.Popen.__init__ = counting_init
        return self

    def __exit__(self, *exc):
        subprocess.Popen.__init__ = self._popen


def run_worker(path: str, models_dir: str, out_dir: str) -> dict:
    from pipeline.config import PipelineConfig
    from pipeline.run.source_worker import SourceProcessor

    cfg = PipelineConfig.of(input=os.path.dirname(path), output=out_dir, models_dir=models_dir)
    proc = SourceProcessor(cfg)
    proc.setup()
    t0 = time.perf_counter()
    result = json.loads(proc.run(path, os.path.basename(path)))
    result["wall_s"] = time.perf_counter() - t0
    result["max_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--long-minutes", type=float, default=10.0)
    p.add_argument("--workdir", default="")
    p.add_argument("--models-dir", default="models")
    p.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one worker, print its result
    a = p.parse_args()
    if a.worker:
        print(json.dumps(run_worker(a.worker, a.models_dir, tempfile.mkdtemp())))
        return
    from model.loading.offline_models import assemble_whisper_base

    assemble_whisper_base(a.models_dir)
    work = a.workdir or tempfile.mkdtemp(prefix="bench-")
    short = os.path.join(work, "talk_60s_720p.mp4")
    if not os.path.exists(short):
        make_source(short, a.seconds)
    bare = bare_decode_seconds(short)
    with DecodeCounter(short) as counter:
        r = run_worker(short, a.models_dir, os.path.join(work, "out"))
    src = r["source"]
    print(f"{a.seconds:.0f} s 720p source: status {src['status']}, {src['clips_accepted']}/{src['clips_total']} clips accepted")
    print(f"  decodes of the source: {counter.decodes} (ffprobe reads: {counter.probes})")
    print(f"  CPU stages wall {r['wall_s']:.1f} s / bare ffmpeg decode {bare:.2f} s = {r['wall_s'] / bare:.1f}x")
    stages = {k: v for k, v in src.items() if k.startswith("seconds_")}
    clip_keys = ("seconds_audio", "seconds_face", "seconds_sync", "seconds_transcribe")
    for k in clip_keys:
        stages[k] = sum((c.get(k) or 0.0) for c in r["clips"])
    print("  per stage (s): " + ", ".join(f"{k[8:]} {v:.1f}" for k, v in stages.items() if k != "seconds_total"))

    long = os.path.join(work, f"talk_{a.long_minutes:g}min_720p.mp4")
    if not os.path.exists(long):
        make_source(long, a.long_minutes * 60)
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", long, "--models-dir", a.models_dir],
                         capture_output=True, text=True, check=True)
    rl = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{a.long_minutes:g} min 720p source: status {rl['source']['status']}, "
          f"{rl['source']['clips_accepted']}/{rl['source']['clips_total']} clips accepted in {rl['wall_s']:.0f} s")
    print(f"  worker peak memory (max RSS): {rl['max_rss_mib']:.0f} MiB "
          f"({'under' if rl['max_rss_mib'] < 2048 else 'OVER'} 2 GiB)")


if __name__ == "__main__":
    main()
