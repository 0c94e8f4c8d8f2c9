"""Stage 6: lip sync and active speaker. SyncNet decides real runs; `motion_asd` is the offline choice
(evidence from mouth landmarks, mouth darkness and Light-ASD pooled over the source, `checks/sync_evidence.py`;
Light-ASD active speaker); the bare model-free scorer serves debug runs on the synthetic corpus. Each scorer
writes its own columns (syncnet_conf, offline_sync_conf, motion_conf, asd_*), so a filter on one means one
thing; every clip gets a `sync_status`.

The offline evidence has three outcomes: in sync, out of sync, and unverified where it is too weak either
way (kept or rejected as --sync-unverified says). A clip confidently off by a few frames can have its audio
re-cut (--max-offset-correction) and is kept when its own evidence, measured again at the new alignment,
reads in sync."""
from __future__ import annotations

import os

import numpy as np

from pipeline import media
from pipeline.checks.asd_sync import FPS as ASD_FPS, asd_faces
from pipeline.checks.face_tracking import smooth_boxes
from pipeline.checks.lip_sync import MouthMotionScorer, SyncNetScorer, mouth_crops, syncnet_crops
from pipeline.checks.sync_evidence import evidence_curve, pool_source, read_curve, to_grid
from pipeline.config import PipelineConfig, RunConfig, SyncConfig
from pipeline.stages.base import Record, Resources, Stage, reject
from pipeline.stages.worker_state import clip_pcm


def resolve_scorer(cfg: SyncConfig, run: RunConfig) -> str:
    """The scorer a run uses: the one asked for, else SyncNet (debug runs without its weights: mouth motion)."""
    from model.syncnet import weights_path

    if cfg.sync_scorer != "auto":
        return cfg.sync_scorer
    if run.debug_models and not os.path.isfile(weights_path(run.models_dir)):
        return "mouth_motion"
    return "syncnet"


def sync_verdict(name: str, offset: int, fps: float, confidence: float | None, min_conf: float,
                 max_offset: int) -> tuple[str, str] | None:
    """(reason, detail) when a scorer's reading rejects the clip (its confidence first: without it the
    offset means nothing), else None."""
    if confidence is not None and confidence < min_conf:
        return "sync_confidence", f"{name} confidence {confidence:.2f} < {min_conf}"
    if abs(offset) > max_offset:
        return "sync_offset", f"{name} offset {offset:+d} frames at {fps:g} fps beyond +-{max_offset}"
    return None


def speech_mask(c: Record, frames: int, fps: float) -> np.ndarray:
    """(frames,) bool: which frames (at `fps`, from the clip's start) lie inside the source's speech regions."""
    t = c["start_s"] + (np.arange(frames) + 0.5) / fps
    return np.any([(t >= a) & (t < b) for a, b in c.scratch.source.scratch.speech] or [np.zeros(frames, bool)], axis=0)


class SyncStage(Stage):
    name = "sync"
    section = "sync"
    resources = Resources(cpus=1.0, memory_gb=1.5)

    def __init__(self, cfg: PipelineConfig):
        super().__init__(cfg)
        self.scorer = ""
        self.syncnet = self.asd = self.lips = None
        self.motion = MouthMotionScorer()

    def setup(self) -> None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
        self.scorer = resolve_scorer(self.cfg, self.run)
        if self.scorer == "syncnet":
            from model.syncnet import load_syncnet

            self.syncnet = SyncNetScorer(load_syncnet(self.run.models_dir, device), device)
        if self.scorer != "mouth_motion":
            from model.light_asd import load_light_asd
            from pipeline.checks.asd_sync import LightASDScorer

            self.asd = LightASDScorer(load_light_asd(device=device), device, self.threads)
        if self.scorer == "motion_asd":
            from pipeline.checks.lip_landmarks import LipLandmarker

            self.lips = LipLandmarker(self.threads)

    def process(self, records: list[Record]) -> None:
        if self.scorer == "motion_asd":
            self.measure_offline(records)
            return
        for c in records:
            self.measure(c)
            # a clip in sync whose face is not the speaker is rejected, but not for its sync
            c["sync_status"] = "out_of_sync" if c.get("reject_reason") in ("sync_confidence", "sync_offset") else "in_sync"

    def measure_offline(self, clips: list[Record]) -> None:
        """Every clip's evidence first, then each read with its source's (one offset per recording). What is
        kept per clip until then is small: per-frame numbers and Light-ASD's embeddings, never frames."""
        pad = self.cfg.sync_vshift
        measured = [self.offline_evidence(c, pad) for c in clips]
        for c, m, curve in zip(clips, measured, pool_source([m["curve"] for m in measured])):
            r, own = read_curve(curve), read_curve(m["curve"])
            c.update(sync_scorer="motion_asd", sync_offset_frames=r.offset, sync_fps=self.run.fps,
                     sync_offset_s=round(r.offset / self.run.fps, 4), offline_sync_conf=round(r.confidence, 4),
                     audio_shift_frames=0, sync_status=self.offline_status(r.offset, r.confidence, own.offset))
            if c["sync_status"] == "out_of_sync" and self.corrected(c, m, r.offset, pad):
                c.update(audio_shift_frames=-r.offset, sync_status="in_sync")
            self.settle(c, m, own.offset)

    def offline_status(self, offset: int, confidence: float, own_offset: int) -> str:
        """From the reading pooled over the source, and the clip's own offset: a rejection cannot be undone
        (rescoring reads kept clips only), so a clip whose own evidence puts it in sync is not rejected on its
        source's alone; it is unverified."""
        cfg = self.cfg
        if abs(offset) <= cfg.offline_sync_tolerance:
            return "in_sync" if confidence >= cfg.min_sync_evidence else "unverified"
        if abs(own_offset) <= cfg.offline_sync_tolerance:
            return "unverified"
        return "out_of_sync" if confidence >= cfg.min_offsync_evidence else "unverified"

    def offline_evidence(self, c: Record, pad: int, shift: int = 0) -> dict:
        """The clip's own evidence curve over audio shifts -pad..pad (its audio moved `shift` frames later),
        and what the active-speaker check reads."""
        dec = c.scratch.source.scratch.decoded
        frames = media.FrameReader(dec.frames_path, dec.analysis_size, dec.num_frames).read(
            c["start_frame"], c["num_frames"])
        opening, _ = self.lips.opening(frames, c.scratch.track_boxes, c.scratch.track_landmarks)
        darkness = mouth_crops(frames, c.scratch.track_landmarks).reshape(len(frames), -1).mean(1)
        faces = self.asd.embed_faces(asd_faces(self.crops_25fps(c, frames)))  # kept instead of the frames
        return self.evidence_from(c, opening, darkness, faces, pad, shift)

    def evidence_from(self, c: Record, opening: np.ndarray, darkness: np.ndarray, faces, pad: int, shift: int) -> dict:
        """The evidence from per-frame measurements and Light-ASD's face embeddings (T25, 128), audio cut
        `shift` frames later; the measurements are kept so a correction can be measured again."""
        run = self.run
        pad25 = int(np.ceil(pad * ASD_FPS / run.fps))
        wide = int(np.ceil(pad25 * run.fps / ASD_FPS))  # frames at the clip's rate that cover pad25 at 25 fps
        beyond = int(round(wide * run.sample_rate / run.fps - pad25 * run.sample_rate / ASD_FPS))
        audio = self.asd.embed_audio_context(clip_pcm(c, run.sample_rate, wide, shift)[beyond:], len(faces), pad25)
        asd = to_grid(self.asd.shifted_logits(faces, audio, pad25), ASD_FPS, run.fps, pad)
        curve = evidence_curve(opening, darkness, clip_pcm(c, run.sample_rate, pad, shift), run.sample_rate, run.fps,
                               pad, asd)
        return {"curve": curve, "embeds": (faces, audio[pad25:pad25 + len(faces)]), "opening": opening,
                "darkness": darkness, "asd": asd}

    def corrected(self, c: Record, m: dict, offset: int, pad: int) -> bool:
        """Re-cut the audio -offset frames later and measure the clip's own evidence again: kept only when it
        then reads in sync."""
        if not 0 < abs(offset) <= self.cfg.max_offset_correction:
            return False
        again = self.evidence_from(c, m["opening"], m["darkness"], m["embeds"][0], pad, -offset)
        r = read_curve(again["curve"])
        if abs(r.offset) <= self.cfg.offline_sync_tolerance and r.confidence >= self.cfg.min_sync_evidence:
            m["embeds"] = again["embeds"]
            return True
        return False

    def settle(self, c: Record, m: dict, own_offset: int) -> None:
        """The decision of the offline path, then the active speaker for clips still kept."""
        cfg, status = self.cfg, c["sync_status"]
        detail = f"motion_asd offset {c['sync_offset_frames']:+d} frames at {self.run.fps:g} fps (the clip alone: " \
                 f"{own_offset:+d}), evidence {c['offline_sync_conf']:.2f}"
        if status == "out_of_sync":
            reject(c, self.name, "sync_offset", f"{detail} >= {cfg.min_offsync_evidence} beyond "
                   f"+-{cfg.offline_sync_tolerance}")
        elif status == "unverified" and cfg.sync_unverified == "reject":
            reject(c, self.name, "sync_unverified", f"{detail}: too weak to call in or out of sync "
                   f"(--sync-unverified reject)")
        else:
            self.check_speaker(c, None, None, None, m["embeds"])

    def measure(self, c: Record) -> None:
        """Confidence first (without it the offset means nothing), then the offset, then the active speaker;
        the learned active-speaker model runs only on clips whose sync already passed."""
        cfg, dec = self.cfg, c.scratch.source.scratch.decoded
        frames = media.FrameReader(dec.frames_path, dec.analysis_size, dec.num_frames).read(
            c["start_frame"], c["num_frames"])
        pcm = clip_pcm(c, self.run.sample_rate)
        crops = self.crops_25fps(c, frames) if self.scorer in ("syncnet", "light_asd") else None
        embeds = None
        if self.syncnet is not None:
            s = self.syncnet.score(crops, pcm, cfg.sync_vshift)
            c.update(syncnet_conf=round(s.confidence, 4), syncnet_dist=round(s.min_dist, 4))
            name, offset, fps, low = s.scorer, s.offset, s.fps, (s.confidence, cfg.min_sync_conf)
        elif self.scorer == "light_asd":
            embeds = self.asd.embed(asd_faces(crops), pcm)
            o = self.asd.offset(*embeds, cfg.sync_vshift)
            c["asd_sync_gain"] = round(o.gain, 4)
            name, offset, fps, low = "light_asd", o.offset, ASD_FPS, None
        else:
            mouths = mouth_crops(frames, c.scratch.track_landmarks)
            s = self.motion.score(mouths, pcm, self.run.sample_rate, self.run.fps, cfg.sync_vshift)
            c["motion_conf"] = round(s.confidence, 4)
            name, offset, fps, low = self.scorer, s.offset, s.fps, (s.confidence, cfg.min_motion_sync_conf)
        c.update(sync_scorer=name, sync_offset_frames=offset, sync_fps=fps, sync_offset_s=round(offset / fps, 4))
        verdict = sync_verdict(name, offset, fps, *(low or (None, 0.0)), cfg.max_sync_offset)
        if verdict:
            reject(c, self.name, *verdict)
        elif self.asd is not None:
            self.check_speaker(c, frames, crops, pcm, embeds)

    def check_speaker(self, c: Record, frames: np.ndarray, crops, pcm: np.ndarray, embeds=None) -> None:
        """Active speaker: the tracked face speaks in most of the clip's speech (Light-ASD, unshifted)."""
        if embeds is None:
            crops = self.crops_25fps(c, frames) if crops is None else crops
            embeds = self.asd.embed(asd_faces(crops), pcm)
        v, a = embeds
        share = self.asd.speaking_share(v, a, speech_mask(c, len(v), ASD_FPS))
        c["asd_speaking"] = round(share, 4)
        if share < self.cfg.min_asd_speaking:
            reject(c, self.name, "not_speaking", f"the tracked face speaks in {share:.0%} of the speech "
                   f"< {self.cfg.min_asd_speaking:.0%} (an off-screen voice or a still face)")

    def crops_25fps(self, c: Record, frames: np.ndarray) -> np.ndarray:
        """SyncNet-style face crops resampled to 25 fps (both learned models were trained at that rate)."""
        t25 = np.arange(int(len(frames) * SyncNetScorer.FPS / self.run.fps))
        pick = np.minimum(np.round(t25 * self.run.fps / SyncNetScorer.FPS).astype(int), len(frames) - 1)
        return syncnet_crops(frames[pick], smooth_boxes(c.scratch.track_boxes)[pick])


