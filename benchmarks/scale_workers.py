"""Trivial source workers for benchmarks/scale.py: each source of a task becomes a realistic source row
(60 s, base64 fingerprints of a 60 s recording) and five clip rows (a transcript, fifteen timed words,
scores; 70% accepted), with small sample members, written by the real task writer and claimed through the
real near-duplicate register actor; nothing is decoded. Every tenth source repeats an earlier one's
recording, so some claims find a match."""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from pipeline import scratch
from pipeline.checks.fingerprint import Fingerprint
from pipeline.run.near_duplicates import reject_duplicate
from pipeline.run.source_worker import new_source_record
from pipeline.run.task_output import write_task
from records.messages import SourceTask, TaskDone
from records.sample import member_rows
from storage.samples import write_samples
from storage.store import Store

WORDS = json.dumps([{"word": f"word{k}", "start": k * 0.3, "end": k * 0.3 + 0.25, "prob": 0.9} for k in range(15)])
MEMBERS = ("mp4", "wav", "json", "video_mean.npy", "audio_mean.npy", "text.npy")


def fingerprint_of(number: int) -> tuple[str, str]:
    rng = np.random.default_rng(number)
    video = rng.integers(0, 2 ** 64, 120, dtype=np.uint64)
    audio = np.clip(np.cumsum(rng.normal(0, 6, (1500, 2)), 0) + 128, 0, 255).astype(np.uint8)
    return Fingerprint(60.0, video, audio).to_text()


class TrivialSourceProcessor:
    def __init__(self, cfg):
        self.cfg, self.claim = cfg, None

    def setup(self) -> None:
        pass

    def source(self, path: str, rel: str, size: int) -> tuple[dict, list[tuple[str, dict]]]:
        src = new_source_record(path, rel, size)
        number = int(hashlib.md5(rel.encode()).hexdigest()[:8], 16)
        video, audio = fingerprint_of(number - number % 10 if number % 10 == 1 else number)
        src.update(status="done", duration_s=60.0, decoded_seconds=60.0, has_video=True, has_audio=True,
                   video_fingerprint=video, audio_fingerprint=audio, seconds_total=30.0)
        clips, samples = [], []
        for k in range(5):
            cid = hashlib.md5(f"{src['source_id']}:{k}".encode()).hexdigest()[:16]
            accepted = (number + k) % 10 < 7
            clips.append({"clip_id": cid, "source_id": src["source_id"], "source_path": rel,
                          "status": "accepted" if accepted else "rejected", "start_s": 5.0 * k, "end_s": 5.0 * k + 5.04,
                          "start_frame": 121 * k, "num_frames": 121, "fps": 24.0, "language": "en",
                          "reject_stage": None if accepted else "sync", "reject_reason": None if accepted else "sync_offset",
                          "transcript": "a sentence of about eighty characters said by the person in the clip here",
                          "words_json": WORDS, "segments_json": json.dumps([{"start": 0, "end": 5, "text": "x"}]),
                          "loudness_db": -20.0, "speech_ratio": 0.9, "syncnet_conf": 7.0, "sync_status": "in_sync"})
            if accepted:
                members = {ext: f"{cid}.{ext}".encode() * 8 for ext in MEMBERS}
                clips[-1]["members"] = member_rows(cid, members)
                samples.append((cid, members))
        src.update(clips_total=5, clips_accepted=len(samples), clips_rejected=5 - len(samples))
        return {"source": src, "clips": clips}, samples

    def run_task(self, task_json: str) -> str:
        task = SourceTask.from_json(task_json)
        results, tars = [], {}
        try:
            for item in task.sources:
                result, samples = self.source(*item)
                found = self.claim(result["source"]) if self.claim and samples else None
                if found:
                    reject_duplicate(result, found)
                elif samples:
                    tars[result["source"]["source_id"]] = path = scratch.make_file("samples", ".tar", self.cfg.scratch_dir)
                    write_samples(path, samples)
                results.append(result)
            lines = write_task(Store(self.cfg.output), task.name, task.order, results, tars,
                               dict.fromkeys(tars, "clips"), self.cfg.shard_target_mb, self.cfg.scratch_dir)
        finally:
            for path in tars.values():
                os.remove(path)
        return TaskDone(task.name, task.order, lines).to_json()
