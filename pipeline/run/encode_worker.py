"""Encodes the accepted clips of a source worker's task: reads its staged rows and samples, runs the encode
stage on all its clips together (batches across sources), and writes the task's shards, one bucket (latent
shape) per source, with their manifest parts (pipeline/run/task_output.py).

Takes and returns small JSON messages (records/messages.py); samples travel as tar files on the output
file system, never pickled, never through the driver."""
from __future__ import annotations

import dataclasses
import io
import json
import os
import traceback

import numpy as np

from pipeline import scratch
from pipeline.config import PipelineConfig
from pipeline.run.task_output import write_task
from pipeline.stages.base import reject
from pipeline.stages.encode import EncodeStage
from pipeline.stages.worker_state import EncodeScratch
from records.messages import TaskDone
from records.rows import ClipRow
from records.sample import META, MP4, WAV, SampleMeta, latent_member, member_rows
from storage.layout import staged_rows, staged_samples
from storage.samples import read_samples, wav_pcm, write_samples
from storage.store import Store

PUBLIC_LATENT_COLUMNS = ("latent_bucket", "latent_shapes", "latent_dtype", "reference_clip_id", "ref_image_clip_id",
                         "ref_voice_clip_id", "video_vae_version", "audio_vae_version", "text_encoder_version", "prompt",
                         "seconds_encode", "seconds_vae")


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def reject_encoding(result: dict, reason: str, error: str) -> dict:
    """Every accepted clip of the source rejected at the encode stage and the source marked failed, so a
    rerun tries it again: an encode error is a worker's condition (out of GPU memory, a missing or wrong
    model, a full disk) more often than the clip's, and a corrected rerun must not find it done."""
    for c in result["clips"]:
        if c["status"] == "accepted":
            reject(c, "encode", reason, error.strip().splitlines()[-1][:500] if error.strip() else reason)
            c["shard"], c["members"] = None, None
    src = result["source"]
    src.update(error=error[-2000:], clips_accepted=0, clips_rejected=src["clips_total"], status="failed",
               reject_stage="encode", reject_reason=reason)
    return result


class EncodeProcessor:
    def __init__(self, cfg: PipelineConfig):
        self.cfg = cfg
        self.stage = EncodeStage(cfg)

    def setup(self) -> None:
        scratch.remove_orphans(self.cfg.scratch_dir)
        self.stage.setup()

    def run_task(self, done_json: str) -> str:
        """A source worker's TaskDone (staged): the task's shards and parts written; its TaskDone."""
        done = TaskDone.from_json(done_json)
        store = Store(self.cfg.output)
        results = json.loads(store.read_bytes(staged_rows(done.name)))
        tars: dict[str, str] = {}
        buckets: dict[str, str] = {}
        try:
            encoded = self.encode(store, done.name, results)
            for sid, (bucket, samples) in encoded.items():
                tars[sid], buckets[sid] = scratch.make_file("samples", ".tar", self.cfg.scratch_dir), bucket
                write_samples(tars[sid], samples)
            lines = write_task(store, done.name, done.order, results, tars, buckets, self.cfg.shard_target_mb,
                               self.cfg.scratch_dir)
        finally:
            for path in tars.values():
                if os.path.exists(path):
                    os.remove(path)
        store.remove(staged_samples(done.name))
        store.remove(staged_rows(done.name))
        return TaskDone(done.name, done.order, lines).to_json()

    def encode(self, store: Store, task: str, results: list[dict]) -> dict[str, tuple[str, list]]:
        """{source id: (bucket, [(clip id, members)])} of the sources whose clips were encoded; all the task's
        clips in one stage call, or, when that fails, source by source, each failing one rejected with why."""
        accepted = {r["source"]["source_id"]: sorted((c for c in r["clips"] if c["status"] == "accepted"),
                                                     key=lambda c: c["start_frame"]) for r in results}
        accepted = {sid: clips for sid, clips in accepted.items() if clips}
        if not accepted:
            return {}
        try:
            samples = read_samples(store, staged_samples(task))
        except Exception:  # noqa: BLE001 - storage failed a read: every source is left to the next run
            for r in results:
                if r["source"]["source_id"] in accepted:
                    reject_encoding(r, "encode_error", traceback.format_exc())
            return {}
        try:
            return self.encode_sources(accepted, samples)
        except Exception:  # noqa: BLE001 - a source at a time finds which of them it was
            pass
        out = {}
        for r in results:
            sid = r["source"]["source_id"]
            try:
                if sid in accepted:
                    out.update(self.encode_sources({sid: accepted[sid]}, samples))
            except Exception:  # noqa: BLE001 - the source's clips are rejected with the reason; the job goes on
                reject_encoding(r, "encode_error", traceback.format_exc())
        return out

    def encode_sources(self, accepted: dict[str, list[dict]], samples: dict[str, dict[str, bytes]]) -> dict:
        records = {sid: self.records(clips, samples) for sid, clips in accepted.items()}
        self.stage([r for rs in records.values() for r in rs])
        out = {}
        for sid, clips in accepted.items():
            by_id = {r["clip_id"]: r for r in records[sid]}
            made = [(r["clip_id"], self.sample(r)) for r in records[sid]]
            members = dict(made)
            for c in clips:
                c.update({k: by_id[c["clip_id"]].get(k) for k in PUBLIC_LATENT_COLUMNS})
                c["members"] = member_rows(c["clip_id"], members[c["clip_id"]])
            out[sid] = (records[sid][0]["latent_bucket"], made)
        return out

    @staticmethod
    def records(accepted: list[dict], samples: dict[str, dict[str, bytes]]) -> list[ClipRow]:
        records = []
        for c in accepted:
            s = samples[c["clip_id"]]
            records.append(ClipRow(c, scratch=EncodeScratch(s.get(MP4), s[WAV], wav_pcm(s[WAV]),
                                                            SampleMeta.from_json(s[META]))))
        return records

    @staticmethod
    def sample(r: ClipRow) -> dict[str, bytes]:
        meta = dataclasses.replace(
            r.scratch.meta, prompt=r["prompt"], latent_bucket=r["latent_bucket"],
            latent_shapes=json.loads(r["latent_shapes"]), latent_dtype=r["latent_dtype"],
            reference_clip_id=r["reference_clip_id"], ref_image_clip_id=r["ref_image_clip_id"],
            ref_voice_clip_id=r["ref_voice_clip_id"],
            models={k: r.get(f"{k}_version") for k in ("video_vae", "audio_vae", "text_encoder")})
        out = {MP4: r.scratch.mp4} if r.scratch.mp4 is not None else {}
        out.update({WAV: r.scratch.wav, META: meta.to_json()})
        out.update({latent_member(name): npy_bytes(array) for name, array in r.scratch.latents.items()})
        return out
