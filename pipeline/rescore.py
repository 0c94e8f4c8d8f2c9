"""Score the lip sync of a finished run again when better weights arrive, without cutting anything again.

    python -m pipeline.rescore OUT --sync-scorer syncnet [--models-dir models] [--min-sync-conf 1.5] ...

Every clip kept in OUT's shards is scored from its own mp4 and wav (the face found again on every other
frame and tracked in between, as `eval` does). Its sync columns are replaced; a clip now out of sync is
rejected at `sync`, and its samples leave the shard. Part by part: a shard is rewritten (under a temporary
name, then renamed) only where a clip's sync status changed; otherwise only the part's Parquet files are
rewritten, each whole or not at all. The merged manifests are rewritten at the end, and the ones before are
kept in OUT/before_rescore/, so `python -m manifests diff OUT/before_rescore OUT` lists the flips.

Clips rejected before (by the offline check, say) have no sample to score: build_shards with
`--sync-scorer syncnet` on the sources reconsiders them. A rerun after a crash picks up where it stopped:
a part already rescored scores the same again.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
import tarfile
import tempfile

import numpy as np

from records.sample import META, MP4, WAV, SampleMeta
from storage.layout import LEDGER
from storage.parts import part_stems, read_manifest, read_part, write_manifests, write_part, write_table
from storage.layout import shard_file
from storage.store import Store

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ClipSyncNet:
    """SyncNet on a clip's mp4 and wav, as the sync stage decides with it."""

    def __init__(self, models_dir: str, min_conf: float, max_offset: int, vshift: int):
        import torch

        from model.syncnet import load_syncnet
        from pipeline.checks.face_detectors import RetinaFaceDetector
        from pipeline.checks.lip_sync import SyncNetScorer

        device = "cuda" if torch.cuda.is_available() else "cpu"
        self.syncnet = SyncNetScorer(load_syncnet(models_dir, device), device)
        self.detector = RetinaFaceDetector()
        self.min_conf, self.max_offset, self.vshift = min_conf, max_offset, vshift

    def __call__(self, mp4: bytes, pcm: np.ndarray) -> dict:
        """The clip's new sync columns; reject_reason set when it is out of sync."""
        from eval.evaluate import decode_video
        from eval.lip_sync import main_face
        from pipeline.checks.face_tracking import smooth_boxes
        from pipeline.checks.lip_sync import syncnet_crops
        from pipeline.stages.sync import sync_verdict

        with tempfile.TemporaryDirectory(prefix="rescore-") as tmp:
            path = os.path.join(tmp, "clip.mp4")
            with open(path, "wb") as f:
                f.write(mp4)
            frames, _ = decode_video(path, tmp)
        face = main_face(self.detector, frames)
        if face is None:
            return {"sync_status": "out_of_sync", "reject_reason": "no_face", "reject_detail": "no face found again"}
        s = self.syncnet.score(syncnet_crops(frames, smooth_boxes(face.boxes)), pcm, self.vshift)
        out = {"sync_scorer": s.scorer, "sync_offset_frames": s.offset, "sync_fps": s.fps,
               "sync_offset_s": round(s.offset / s.fps, 4), "syncnet_conf": round(s.confidence, 4),
               "syncnet_dist": round(s.min_dist, 4), "sync_status": "in_sync"}
        verdict = sync_verdict(s.scorer, s.offset, s.fps, s.confidence, self.min_conf, self.max_offset)
        if verdict:  # the sync stage's own rule
            out.update(sync_status="out_of_sync", reject_reason=verdict[0], reject_detail=f"{verdict[1]} (rescored)")
        return out


def read_samples(store: Store, shard_rel: str) -> dict[str, bytes]:
    """Every member of a shard, by name (one read of the tar)."""
    with store.open_stream(shard_rel) as f, tarfile.open(fileobj=f, mode="r|") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}


def write_shard(store: Store, shard_rel: str, members: dict[str, bytes]) -> None:
    with tempfile.TemporaryDirectory(prefix="rescore-") as tmp:
        local = os.path.join(tmp, "shard.tar")
        with tarfile.open(local, "w", format=tarfile.USTAR_FORMAT) as tar:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        store.upload(local, shard_rel)


def rescore_part(store: Store, stem: str, score: ClipSyncNet) -> dict[str, int]:
    """Rescore the kept clips of one part; returns counts of what happened."""
    from scipy.io import wavfile

    order, sources, clips = read_part(store, stem)
    sources, clips = sources.to_pylist(), clips.to_pylist()
    kept = [c for c in clips if c["status"] == "accepted" and c.get("shard") and c.get("members")]
    counts = {"rescored": 0, "flipped": 0, "shards_rewritten": 0}
    if not kept:
        return counts
    shard_rel = shard_file(kept[0]['shard'])
    members = read_samples(store, shard_rel)
    moved = False
    for c in kept:
        names = {m["name"].rsplit(".", 1)[1]: m["name"] for m in c["members"]}
        if MP4 not in names or names[MP4] not in members:  # audio-only, or dropped by an interrupted rescore
            continue
        rate, wav = wavfile.read(io.BytesIO(members[names[WAV]]))
        if rate != 16000:
            raise SystemExit(f"{c['clip_id']}: SyncNet hears 16 kHz audio; this run's clips are at {rate} Hz")
        new = score(members[names[MP4]], wav.astype(np.float32) / 32768)
        before = c.get("sync_status")
        c.update({k: v for k, v in new.items() if not k.startswith("reject_")})
        counts["rescored"] += 1
        if new["sync_status"] == before:
            continue
        counts["flipped"] += 1
        moved = True
        if new["sync_status"] == "out_of_sync":
            for name in names.values():
                members.pop(name, None)
            c.update(status="rejected", reject_stage="sync", reject_reason=new["reject_reason"],
                     reject_detail=new["reject_detail"], shard=None, members=None)
        else:  # still kept, with a new status: its metadata member says so
            meta = SampleMeta.from_json(members[names[META]])
            meta.sync = {**(meta.sync or {}), **{k: c.get(k) for k in new if not k.startswith("reject_")}}
            data = meta.to_json()
            members[names[META]] = data
            c["members"] = [{**m, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                            if m["name"] == names[META] else m for m in c["members"]]
    if moved:
        write_shard(store, shard_rel, members)
        counts["shards_rewritten"] += 1
    for s in sources:  # the sources' clip counts follow
        mine = [c for c in clips if c["source_id"] == s["source_id"]]
        s["clips_accepted"] = sum(c["status"] == "accepted" for c in mine)
        s["clips_rejected"] = len(mine) - s["clips_accepted"]
    write_part(store, stem, sources, clips, order)
    return counts


def rescore(out_dir: str, score: ClipSyncNet) -> dict[str, int]:
    from tqdm import tqdm

    store = Store(out_dir)
    import pyarrow as pa

    for name in ("clips", "sources"):  # what `manifests diff` compares the rescored run with
        write_table(store, pa.Table.from_pylist(read_manifest(out_dir, name)), f"before_rescore/manifests/{name}.parquet")
    total = {"rescored": 0, "flipped": 0, "shards_rewritten": 0}
    for stem in tqdm(part_stems(store), desc="rescoring parts"):
        for k, v in rescore_part(store, stem, score).items():
            total[k] += v
    store.remove_dir(LEDGER)  # it summarised the parts as they were: the next run rebuilds it from them
    write_manifests(out_dir)
    return total


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m pipeline.rescore", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("output", help="a build_shards output folder")
    p.add_argument("--sync-scorer", default="syncnet", choices=["syncnet"],
                   help="the scorer to rescore with (SyncNet: models/syncnet/syncnet_v2.model)")
    p.add_argument("--models-dir", default="models")
    p.add_argument("--min-sync-conf", type=float, default=1.5, help="as build_shards' flag")
    p.add_argument("--max-sync-offset", type=int, default=3, help="as build_shards' flag")
    p.add_argument("--sync-vshift", type=int, default=15, help="as build_shards' flag")
    a = p.parse_args(argv)
    try:
        score = ClipSyncNet(a.models_dir, a.min_sync_conf, a.max_sync_offset, a.sync_vshift)
    except FileNotFoundError as e:
        sys.exit(f"{e}\n(python -m model.loading.fetch --only syncnet fetches SyncNet's weights)")
    counts = rescore(a.output, score)
    print(f"rescored {counts['rescored']} clips; {counts['flipped']} changed sync status; "
          f"{counts['shards_rewritten']} shards rewritten; see python -m manifests diff "
          f"{os.path.join(a.output, 'before_rescore')} {a.output}")


if __name__ == "__main__":
    main()
