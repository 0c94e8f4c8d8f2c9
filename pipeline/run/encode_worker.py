"""Encodes the accepted clips of one source: reads its staged clip samples, runs the encode stage, stages
complete training samples (clip mp4, wav, json and one .npy per latent) for the shard packer.

Takes and returns JSON text; samples travel as tar files on the output file system, never pickled."""
from __future__ import annotations

import dataclasses
import io
import json
import os
import tempfile
import traceback

import numpy as np
from scipy.io import wavfile

from pipeline import scratch
from pipeline.config import PipelineConfig
from pipeline.stages.base import reject
from pipeline.stages.encode import EncodeStage
from pipeline.stages.worker_state import EncodeScratch
from records.rows import ClipRow
from records.sample import META, MP4, WAV, SampleMeta, latent_member, member_rows
from storage.samples import read_samples, write_samples
from storage.store import Store

PUBLIC_LATENT_COLUMNS = ("latent_bucket", "latent_shapes", "latent_dtype", "reference_clip_id", "ref_image_clip_id",
                         "ref_voice_clip_id", "video_vae_version", "audio_vae_version", "text_encoder_version", "prompt")


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
    result["staged"], result["bucket"] = None, None
    return result


class EncodeProcessor:
    def __init__(self, cfg: PipelineConfig):
        self.cfg = cfg
        self.stage = EncodeStage(cfg)

    def setup(self) -> None:
        scratch.remove_orphans(self.cfg.scratch_dir)
        self.stage.setup()

    def run(self, staged_path: str, result_json: str) -> str:
        """`staged_path`: the source's staged clips, relative to the output."""
        result = json.loads(result_json)
        accepted = sorted((c for c in result["clips"] if c["status"] == "accepted"), key=lambda c: c["start_frame"])
        store = Store(self.cfg.output)
        try:
            records = self.records(store, staged_path, accepted)
            self.stage(records)
            bucket = records[0]["latent_bucket"]
            samples = [(r["clip_id"], self.sample(r)) for r in records]
            out = f"{staged_path.rsplit('/', 1)[0]}/{result['source']['source_id']}.{bucket}.tar"
            with tempfile.TemporaryDirectory(prefix=scratch.owner_tag() + "stage-", dir=self.cfg.scratch_dir or None) as tmp:
                write_samples(os.path.join(tmp, "samples.tar"), samples)
                store.upload(os.path.join(tmp, "samples.tar"), out)
        except Exception:  # the source's clips are rejected with the reason; the job goes on
            return json.dumps(reject_encoding(result, "encode_error", traceback.format_exc()))
        by_id, members = {r["clip_id"]: r for r in records}, dict(samples)
        for c in accepted:
            c.update({k: by_id[c["clip_id"]].get(k) for k in PUBLIC_LATENT_COLUMNS})
            c["members"] = member_rows(c["clip_id"], members[c["clip_id"]])
        store.remove(staged_path)
        result["staged"], result["bucket"] = out, bucket
        return json.dumps(result)

    @staticmethod
    def records(store: Store, staged_path: str, accepted: list[dict]) -> list[ClipRow]:
        samples = read_samples(store, staged_path)
        records = []
        for c in accepted:
            s = samples[c["clip_id"]]
            rate, pcm = wavfile.read(io.BytesIO(s[WAV]))
            records.append(ClipRow(c, scratch=EncodeScratch(s.get(MP4), s[WAV], pcm.astype(np.float32) / 32768.0,
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
