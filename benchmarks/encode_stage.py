"""Benchmark of the encode stage (not a test).

    python benchmarks/encode_stage.py [--clips 8] [--bucket 256] [--full-size-clips 4]

1. The encode stage with debug weights on the CPU: clips per second for 121-frame clips at a bucket.
2. On a CUDA machine: the full-size Wan2.2 VAE (random weights; speed does not depend on their values)
   encoding 121x704x704 in bf16: clips per second and peak GPU memory.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.io import wavfile  # noqa: E402

from pipeline.config import PipelineConfig  # noqa: E402
from pipeline.stages.worker_state import EncodeScratch  # noqa: E402
from records.rows import ClipRow  # noqa: E402
from sample_corpus import media as cm  # noqa: E402
from records.sample import SampleMeta  # noqa: E402
from sample_corpus.build import SENTENCES  # noqa: E402


def synthetic_clips(n: int, workdir: str) -> list[dict]:
    """n talking-head clips (mp4 bytes, audio, metadata) in the form the encode stage receives."""
    face = cm.astronaut_face()
    clips = []
    for k in range(n):
        audio = cm.pad_to(cm.speak(SENTENCES[k % len(SENTENCES)]), 121 / 24)
        path = os.path.join(workdir, f"{k}.mp4")
        cm.write_video(path, cm.talking_frames(face, audio, 24, 121, k), 24, audio, extra_args=("-movflags", "+faststart"))
        wav = io.BytesIO()
        wavfile.write(wav, 16000, (audio * 32767).astype(np.int16))
        meta = SampleMeta(f"clip{k}", width=512, height=512, num_frames=121, transcript=SENTENCES[k % len(SENTENCES)])
        clips.append(ClipRow({"clip_id": f"clip{k}", "source_id": f"s{k // 2}", "start_frame": 121 * k,
                              "crop_box": [0.2, 0.05, 0.8, 0.65],
                              "status": "accepted"},
                             scratch=EncodeScratch(open(path, "rb").read(), wav.getvalue(), audio, meta)))
    return clips


def cpu_debug(n: int, bucket: int) -> None:
    """The stage on the same clips with the next batch decoded while the VAE runs, and without."""
    from model.loading.latent_models import write_debug_models
    from pipeline.stages.encode import EncodeStage

    with tempfile.TemporaryDirectory() as out:
        cfg = PipelineConfig.of(input=out, output=out, debug_models=True, buckets=f"{bucket}x{bucket}", encode_batch=2)
        write_debug_models(os.path.join(out, "debug_models"), cfg.video_vae)
        stage = EncodeStage(cfg)
        stage.setup()
        clips = synthetic_clips(n, out)
        stage(clips[:2])  # warm-up
        took = {}
        for prefetch in (False, True, False, True):
            stage.prefetch = prefetch
            t0 = time.perf_counter()
            stage(clips)
            took.setdefault(prefetch, []).append(time.perf_counter() - t0)
        vae = sum(c["seconds_vae"] for c in clips)
    serial, overlapped = min(took[False]), min(took[True])
    print(f"encode stage, debug weights, CPU ({torch.get_num_threads()} threads), {bucket}x{bucket}x121, batches of 2: "
          f"{n / overlapped:.2f} clips/s ({overlapped / n:.2f} s per clip, mp4 decode and crop included)")
    print(f"  decoding the next batch while the VAE runs: {serial:.2f} s -> {overlapped:.2f} s "
          f"({serial / overlapped:.2f}x; the VAE busy {vae / overlapped:.0%} of the stage, {vae / serial:.0%} without)")
    print("  latent shapes:", json.loads(clips[0]["latent_shapes"]))


def gpu_full_size(n: int) -> None:
    from model.wan_vae import WAN22, WanVAE

    if not torch.cuda.is_available():
        print("full-size Wan2.2 VAE in bf16: skipped (no CUDA device)")
        return
    vae = WanVAE(WAN22).to("cuda", torch.bfloat16).eval()
    x = torch.rand(1, 3, 121, 704, 704, device="cuda", dtype=torch.bfloat16) * 2 - 1
    with torch.no_grad():
        vae.encode(x)  # warm-up: cuDNN picks its kernels
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        for _ in range(n):
            mean, _ = vae.encode(x)
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    print(f"full-size Wan2.2 VAE, bf16, {torch.cuda.get_device_name()}: 121x704x704 -> {tuple(mean.shape[1:])}, "
          f"{n / dt:.3f} clips/s ({dt / n:.2f} s per clip), peak memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=8)
    p.add_argument("--bucket", type=int, default=256)
    p.add_argument("--full-size-clips", type=int, default=4)
    a = p.parse_args()
    subprocess.run(["ffmpeg", "-version"], capture_output=True, check=True)
    cpu_debug(a.clips, a.bucket)
    gpu_full_size(a.full_size_clips)


if __name__ == "__main__":
    main()
