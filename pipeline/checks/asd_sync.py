"""Light-ASD, the offline learned model (its AVA-trained weights ship in `model/weights/light_asd/`): the
active-speaker check of every scorer but the model-free one, and an offset search of its own.

Light-ASD says, frame by frame, whether the face speaks the audio. At the clip's own alignment, the share
of its speech frames in which the tracked face does not look silent is the active-speaker score (an
off-screen narrator over a listening face scores low). Its score follows the audio's content (loud speech scores high against
almost any face), so sliding the audio alone mostly finds the loudest stretch; the offset search therefore
reads the part of the score that needs the moving face: at every shift, the score against the real face
sequence minus the score against a still face (the clip's mean face embedding) over the same audio. On
3 s clips of recorded speakers this offset is weak (benchmarks/real_footage.py): the `motion_asd` scorer
takes its offset from mouth motion and keeps Light-ASD for the active speaker.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from pipeline.checks.lip_sync import syncnet_mfcc

FPS = 25.0  # Light-ASD's video rate (4 MFCC frames per video frame)
MIN_FRAMES = 10  # frames left after the widest shift for a meaningful mean
# A frame counts as silent at odds of e:1 or more. Between -1 and 0 Light-ASD is unsure rather than sure of
# silence: an in-sync MEAD speaker with a surprised face reads -0.5 on every frame, while a crowd, faces over
# music and a mouth-only crop average -1.2 to -6 (benchmarks/real_footage.py, 49-frame clips).
SILENT_LOGIT = -1.0


@dataclass
class AsdOffset:
    offset: int  # frames at 25 fps; audio late gives a negative offset
    gain: float  # at the best shift: mean speaking logit against the moving face minus a still one


def asd_faces(crops_224_bgr: np.ndarray) -> np.ndarray:
    """Light-ASD's input from SyncNet-style 224 crops (the same crop geometry): grey, the central 112."""
    grey = np.stack([cv2.cvtColor(c, cv2.COLOR_BGR2GRAY) for c in crops_224_bgr])
    return grey[:, 56:168, 56:168]


class LightASDScorer:
    def __init__(self, net, device: str = "cpu", threads: int = 1):
        from pipeline.checks.asd_runtime import face_encoder

        self.net, self.device = net, device
        self.face_encoder = face_encoder(net, device, threads)

    @torch.no_grad()
    def embed(self, faces: np.ndarray, pcm16k: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """faces (T, 112, 112) grey at 25 fps -> face and audio embeddings (T', 128) each, T' = common length."""
        mfcc = syncnet_mfcc(pcm16k).T  # (M, 13) at 100 Hz
        t = min(len(faces), len(mfcc) // 4)
        a = self.net.embed_audio(torch.from_numpy(mfcc[:4 * t]).float()[None].to(self.device))[0]
        return self.embed_faces(faces[:t]), a

    @torch.no_grad()
    def embed_faces(self, faces: np.ndarray) -> torch.Tensor:
        """(T, 112, 112) grey faces at 25 fps -> (T, 128)."""
        return self.face_encoder(faces)

    @torch.no_grad()
    def embed_audio_context(self, pcm_context: np.ndarray, frames: int, pad: int) -> torch.Tensor:
        """(frames + 2 pad, 128) audio embeddings of audio that reaches `pad` frames (at 25 fps) beyond a clip
        of `frames` either side; short audio is padded with silence."""
        mfcc = syncnet_mfcc(pcm_context).T
        need = 4 * (frames + 2 * pad)
        mfcc = np.pad(mfcc[:need], ((0, max(0, need - len(mfcc))), (0, 0)))
        return self.net.embed_audio(torch.from_numpy(mfcc).float()[None].to(self.device))[0]

    @torch.no_grad()
    def shifted_logits(self, v: torch.Tensor, a_context: torch.Tensor, pad: int) -> np.ndarray:
        """(2 pad + 1,) mean speaking logit of the face track with the audio shifted by k = -pad..pad frames
        (video frame i against audio frame i + k), every shift over all T frames."""
        t = len(v)
        pairs = torch.stack([a_context[pad + k:pad + k + t] for k in range(-pad, pad + 1)])
        return self.net.speaking_logits(v.expand(len(pairs), -1, -1), pairs).mean(1).cpu().numpy()

    @torch.no_grad()
    def speaking_share(self, v: torch.Tensor, a: torch.Tensor, speech: np.ndarray | None = None) -> float:
        """Share of the speech frames (speech (T,) bool; None: all) in which the face may be speaking,
        unshifted: every frame but those Light-ASD finds silent with some confidence (logit below
        SILENT_LOGIT)."""
        own = self.net.speaking_logits(v[None], a[None])[0].cpu().numpy()
        mask = np.ones(len(own), bool) if speech is None else speech[:len(own)]
        return float((own[mask] >= SILENT_LOGIT).mean()) if mask.any() else 0.0

    @torch.no_grad()
    def offset(self, v: torch.Tensor, a: torch.Tensor, vshift: int) -> AsdOffset:
        length = len(v) - 2 * vshift
        if length < MIN_FRAMES:
            raise ValueError(f"clip too short for a +-{vshift} frame search: {len(v)} frames at 25 fps")
        net = self.net
        # shift k pairs video frame i with audio frame i + k, over the frames every shift can reach
        centre = v[vshift:vshift + length]
        pairs = torch.stack([a[vshift + k:vshift + k + length] for k in range(-vshift, vshift + 1)])
        moving = net.speaking_logits(centre.expand(len(pairs), -1, -1), pairs).mean(1)
        still = net.speaking_logits(centre.mean(0, keepdim=True).expand(len(pairs), length, -1), pairs).mean(1)
        gains = (moving - still).cpu().numpy()
        best = int(np.argmax(gains))
        return AsdOffset(offset=vshift - best, gain=float(gains[best]))
