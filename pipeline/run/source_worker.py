"""Runs every CPU stage on one source, end to end, inside one worker: the decoded frames stay on that
worker's local scratch disk and every stage reads them from there.

A task (a few sources, records.messages.SourceTask) ends with its shards and manifest parts written by
the worker itself (pipeline/run/task_output.py), or, with latents on, its samples and rows staged on the
output file system for an encode worker; the driver hears a line per source. Nothing pickled crosses the
process boundary."""
from __future__ import annotations

import io
import json
import os
import tempfile
import time
import traceback

import numpy as np
from scipy.io import wavfile

from pipeline import media, scratch
from pipeline.config import PipelineConfig
from pipeline.run.near_duplicates import reject_duplicate
from pipeline.run.task_output import write_task
from pipeline.stages.audio import AudioStage
from pipeline.stages.base import Record, Resources, source_id
from pipeline.stages.decode import DecodeStage, cleanup
from pipeline.stages.face import FaceStage
from pipeline.stages.probe import ProbeStage
from pipeline.stages.segment import SegmentStage
from pipeline.stages.sync import SyncStage
from pipeline.stages.text import TextStage
from pipeline.stages.transcribe import TranscribeStage
from pipeline.stages.visual import VisualStage
from pipeline.stages.worker_state import SourceScratch, clip_pcm
from records.rows import SourceRow
from records.messages import Finished, SourceTask, TaskDone
from records.sample import META, MP4, WAV, SampleMeta, member_rows
from storage.layout import staged_rows, staged_samples
from storage.samples import concatenate
from storage.store import Store, download_file, is_remote

PIPELINE_VERSION = "clips-v1"
UNENCODED_BUCKET = "clips"  # the shards of a run without latents


def new_source_record(path: str, rel: str, size: int | None = None) -> SourceRow:
    if size is None:
        size = os.path.getsize(path)
    return SourceRow({"source_uri": path if is_remote(path) else os.path.abspath(path), "source_path": rel,
                      "source_id": source_id(f"{rel}:{size}"), "size_bytes": size,
                      "status": "processing", "pipeline_version": PIPELINE_VERSION, "decode_passes": 0},
                     scratch=SourceScratch(path))


SOURCE_STAGES = (ProbeStage, DecodeStage, SegmentStage)
# cheapest rejections first: audio needs no pixels, face needs no lip-sync model
CLIP_STAGES = (AudioStage, FaceStage, VisualStage, SyncStage, TextStage, TranscribeStage)


def worker_resources() -> Resources:
    """What a worker running every stage in turn reserves: the most any one stage declares."""
    stages = SOURCE_STAGES + CLIP_STAGES
    return Resources(cpus=max(s.resources.cpus for s in stages), gpus=max(s.resources.gpus for s in stages),
                     memory_gb=max(s.resources.memory_gb for s in stages))


def _libc():
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None


LIBC = _libc()


def release_freed_memory() -> None:
    """Hand the heap's free pages back to the system (glibc's malloc_trim). The heap holds on to what a
    stage freed, and fragments: without this a worker peaked at 1.59 GiB on a 2-minute 720p source and
    1.95 GiB on a 10-minute one; with it, and Whisper batches of 2 on a CPU, the 10-minute source peaks at
    1.52 GiB (benchmarks/throughput.py --peak-memory). Mapping every large buffer instead (mallopt's
    M_MMAP_THRESHOLD) kept memory as flat but cost 12% more CPU time in page faults."""
    if LIBC is not None and hasattr(LIBC, "malloc_trim"):  # glibc only
        LIBC.malloc_trim(0)


def count_clips(src: Record, clips: list[Record]) -> None:
    src["clips_total"] = len(clips)
    src["clips_accepted"] = sum(c["status"] == "accepted" for c in clips)
    src["clips_rejected"] = src["clips_total"] - src["clips_accepted"]


class SourceProcessor:
    def __init__(self, cfg: PipelineConfig):
        self.cfg = cfg
        self.threads = 1  # setup() sets the CPUs the worker reserved
        self.claim = None
        """source row -> None (kept) or (source_id, path, why) of the kept recording it repeats; None: keep all."""
        self.sample_tars: dict[str, str] = {}  # source id -> local tar of its accepted samples
        if cfg.audio_only:
            from pipeline.stages.audio_only import AudioChunkStage, AudioDecodeStage

            self.source_stages = [ProbeStage(cfg), AudioDecodeStage(cfg), AudioChunkStage(cfg)]
            self.clip_stages = [AudioStage(cfg), TranscribeStage(cfg)]
        else:
            self.source_stages = [stage(cfg) for stage in SOURCE_STAGES]
            self.clip_stages = [stage(cfg) for stage in CLIP_STAGES]

    def setup(self) -> None:
        import cv2
        import torch

        scratch.remove_orphans(self.cfg.scratch_dir)  # what killed workers on this machine left
        # every library's own pool is as wide as the machine by default: a worker that reserved n CPUs
        # keeps to n threads, so that workers side by side do not fight over cores
        threads = self.threads = max(1, int(self.cfg.worker_cpus or worker_resources().cpus))
        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)
        for stage in self.source_stages + self.clip_stages:
            stage.threads = threads
            stage.setup()

    def run(self, path: str, rel: str, size: int | None = None) -> str:
        """One source: its JSON document (the source row and its clip rows); nothing is written."""
        return json.dumps(self.run_group(json.dumps([(path, rel, size)]))[0])

    def run_group(self, items_json: str) -> list[dict]:
        """Several sources, [[path, rel, size], ...]: their documents; nothing is written (benchmarks)."""
        try:
            return self.process_group([tuple(item) for item in json.loads(items_json)])
        finally:
            self.drop_samples()

    def run_task(self, task_json: str) -> str:
        """A SourceTask: its shards and parts written (or, with latents, its samples and rows staged); a
        TaskDone. Short sources come in groups so that stages which share work between sources (Whisper's
        windows) can."""
        task = SourceTask.from_json(task_json)
        store = Store(self.cfg.output)
        try:
            results = self.process_group(task.sources)
            if self.cfg.latents == "on":
                self.stage_for_encoding(store, task.name, results)
                return TaskDone(task.name, task.order, [Finished.of(r["source"], None) for r in results],
                                staged=True).to_json()
            lines = write_task(store, task.name, task.order, results, self.sample_tars,
                               dict.fromkeys(self.sample_tars, UNENCODED_BUCKET), self.cfg.shard_target_mb,
                               self.cfg.scratch_dir)
            return TaskDone(task.name, task.order, lines).to_json()
        finally:
            self.drop_samples()

    def stage_for_encoding(self, store: Store, task: str, results: list[dict]) -> None:
        """The task's accepted samples as one tar and all its rows as JSON, for an encode worker on any node."""
        if self.sample_tars:
            local = scratch.make_file("stage", ".tar", self.cfg.scratch_dir)
            try:
                concatenate(local, [self.sample_tars[r["source"]["source_id"]] for r in results
                                    if r["source"]["source_id"] in self.sample_tars])
                store.upload(local, staged_samples(task))
            finally:
                os.remove(local)
        store.write_bytes(staged_rows(task), json.dumps(results).encode())

    def drop_samples(self) -> None:
        for path in self.sample_tars.values():
            if os.path.exists(path):
                os.remove(path)
        self.sample_tars = {}

    def process_group(self, items: list[tuple]) -> list[dict]:
        """Each source through the stages that work per source; then the clips of every source still
        standing through those that share work between sources (`Stage.across_sources`) at once."""
        split = next((k for k, s in enumerate(self.clip_stages) if s.across_sources), len(self.clip_stages))
        begun = [self.begin(*item, self.clip_stages[:split]) for item in items]
        live = [(src, clips) for src, clips, _ in begun if src["status"] != "failed"]
        t0 = time.perf_counter()
        try:
            for stage in self.clip_stages[split:]:
                stage([c for _, clips in live for c in clips])
                release_freed_memory()
        except Exception as e:  # they shared the stage's call: each of them carries its error
            for src, _ in live:
                self.fail(src, e)
        shared = (time.perf_counter() - t0) / max(1, len(live))
        return [self.finish(src, clips, seconds + shared) for src, clips, seconds in begun]

    def begin(self, path: str, rel: str, size: int | None, clip_stages: list) -> tuple[Record, list[Record], float]:
        """A source through the source stages and `clip_stages`: (its row, its clips, seconds taken). Its
        decoded frames are gone when this returns; its audio stays in memory for the stages after."""
        t0 = time.perf_counter()
        src = new_source_record(path, rel, size)
        try:
            if is_remote(path):  # ffmpeg reads local files: object-storage sources come to scratch first
                src.scratch.local_copy = scratch.make_file("download", os.path.splitext(rel)[1], self.cfg.scratch_dir)
                src.scratch.path = download_file(path, src.scratch.local_copy)
            for stage in self.source_stages:
                stage([src])
                release_freed_memory()
            for stage in clip_stages:
                stage(src.scratch.clips)
                release_freed_memory()
        except Exception as e:  # one bad source never stops the job; its row carries the error
            self.fail(src, e)
        finally:
            cleanup(src)
        return src, src.scratch.clips, time.perf_counter() - t0

    @staticmethod
    def fail(src: Record, e: Exception) -> None:
        src.update(status="failed", reject_stage=src.get("reject_stage") or "worker",
                   reject_reason="exception", error=f"{type(e).__name__}: {e}\n{traceback.format_exc()[-2000:]}")

    def finish(self, src: Record, clips: list[Record], seconds: float) -> dict:
        """Decide the source and its clips, compare it with the kept recordings (`claim`), write its accepted
        samples to a local tar: its JSON document."""
        t0 = time.perf_counter()
        try:
            if src["status"] != "failed":
                for c in clips:
                    if c["status"] != "rejected":
                        c["status"] = "accepted"
                if src["status"] != "rejected":
                    src["status"] = "done"
                count_clips(src, clips)
                found = self.claim(src) if self.claim and src["status"] == "done" and src["clips_accepted"] else None
                if found:  # a repeat of a kept recording: nothing of it is cut or written
                    reject_duplicate({"source": src, "clips": clips}, found)
                else:
                    self.stage_samples(src, [c for c in clips if c["status"] == "accepted"])
        except Exception as e:
            self.fail(src, e)
        finally:
            if src.scratch.local_copy:
                os.remove(src.scratch.local_copy)
        if src["status"] == "failed":
            clips = []
            partial = self.sample_tars.pop(src["source_id"], None)
            if partial and os.path.exists(partial):
                os.remove(partial)
        count_clips(src, clips)
        src["seconds_total"] = round(seconds + time.perf_counter() - t0, 3)
        return {"source": src, "clips": clips}

    def stage_samples(self, src: Record, accepted: list[Record]) -> None:
        """Write the accepted clips' samples to a local tar of this source (complete or absent)."""
        import webdataset as wds

        if not accepted:
            return
        with tempfile.TemporaryDirectory(prefix=scratch.owner_tag() + "stage-", dir=self.cfg.scratch_dir or None) as tmp:
            local = scratch.make_file("samples", ".tar", self.cfg.scratch_dir)
            self.sample_tars[src["source_id"]] = local
            with wds.TarWriter(local) as tar:
                for c in accepted:
                    sample = self.sample(src, c, tmp)
                    c["members"] = member_rows(c["clip_id"], sample)
                    tar.write({"__key__": c["clip_id"], **sample})

    def sample(self, src: Record, c: Record, tmp: str) -> dict[str, bytes]:
        cfg = self.cfg
        pcm = clip_pcm(c, cfg.sample_rate)
        out = {}
        if not cfg.audio_only:
            mp4 = os.path.join(tmp, f"{c['clip_id']}.mp4")
            media.cut_clip(src.scratch.path, pcm, cfg.sample_rate, c["start_frame"], c["num_frames"], cfg.fps,
                           (src["normalized_width"], src["normalized_height"]), cfg.crf, mp4, self.threads)
            with open(mp4, "rb") as f:
                out[MP4] = f.read()
            c.update(video_width=src["normalized_width"], video_height=src["normalized_height"])
        wav = io.BytesIO()
        wavfile.write(wav, cfg.sample_rate, (np.clip(pcm, -1, 1) * 32767).astype(np.int16))
        c.update(sample_rate=cfg.sample_rate, audio_samples=len(pcm))
        meta = SampleMeta(
            clip_id=c["clip_id"], source_id=src["source_id"], source_path=src["source_path"],
            source_span_s=[c["start_s"], c["end_s"]], start_frame=c["start_frame"], fps=c["fps"],
            num_frames=c["num_frames"], sample_rate=cfg.sample_rate, audio_samples=len(pcm),
            width=src.get("normalized_width"), height=src.get("normalized_height"), audio_only=cfg.audio_only,
            transcript=c["transcript"], segments=json.loads(c["segments_json"]), words=json.loads(c["words_json"]),
            language=c["language"], word_timing_source=c["word_timing_source"], face_box=c.get("face_box"),
            crop_box=c.get("crop_box"),
            sync={k: c.get(k) for k in ("sync_scorer", "sync_status", "sync_offset_frames", "sync_fps", "syncnet_conf",
                                        "syncnet_dist", "offline_sync_conf", "audio_shift_frames", "motion_conf",
                                        "asd_speaking", "asd_sync_gain")},
            loudness_db=c["loudness_db"], speech_ratio=c["speech_ratio"], pipeline_version=PIPELINE_VERSION)
        out.update({WAV: wav.getvalue(), META: meta.to_json()})
        return out
