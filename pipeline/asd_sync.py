"""Lip sync and active speaker from Light-ASD, the offline learned scorer (its AVA-trained weights ship in
`model/weights/light_asd/`).

Light-ASD says, frame by frame, whether the face speaks the audio. Its score follows the audio's content
(loud speech scores high against almost any face), so sliding the audio alone mostly finds the loudest
stretch. The offset is therefore read from the part of the score that needs the moving face: at every
shift, the score against the real face sequence minus the score against a still face (the clip's mean
face embedding) over the same audio. Audio heard late gives a negative offset, as with SyncNet. At the
clip's own alignment, the share of its speech frames in which the face speaks is the active-speaker
score (an off-screen speaker or a dubbed voice scores low).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from pipeline.lip_sync import syncnet_mfcc

FPS = 25.0  # Light-ASD's video rate (4 MFCC frames per video frame)
MIN_FRAMES = 10  # frames left after the widest shift for a meaningful mean


@dataclass
class AsdScore:
    offset: int  # frames at 25 fps; audio late gives a negative offset
    gain: float  # at the best shift: mean speaking logit against the moving face minus a still one
    speaking: float  # share of speech frames in which the face speaks, at the clip's own alignment


def asd_faces(crops_224_bgr: np.ndarray) -> np.ndarray:
    """Light-ASD's input from SyncNet-style 224 crops (the same crop geometry): grey, the central 112."""
    grey = np.stack([cv2.cvtColor(c, cv2.COLOR_BGR2GRAY) for c in crops_224_bgr])
    return grey[:, 56:168, 56:168]


class LightASDScorer:
    def __init__(self, net, device: str = "cpu"):
        self.net, self.device = net, device

    @torch.no_grad()
    def score(self, faces: np.ndarray, pcm16k: np.ndarray, vshift: int, speech: np.ndarray | None = None) -> AsdScore:
        """faces (T, 112, 112) grey at 25 fps; speech (T,) bool marks frames inside speech (None: all)."""
        mfcc = syncnet_mfcc(pcm16k).T  # (M, 13) at 100 Hz
        t = min(len(faces), len(mfcc) // 4)
        length = t - 2 * vshift
        if length < MIN_FRAMES:
            raise ValueError(f"clip too short for a +-{vshift} frame search: {t} frames at 25 fps")
        net = self.net
        v = net.embed_faces(torch.from_numpy(np.ascontiguousarray(faces[:t]))[None].to(self.device))[0]  # (T, 128)
        a = net.embed_audio(torch.from_numpy(mfcc[:4 * t]).float()[None].to(self.device))[0]  # (T, 128)
        # shift k pairs video frame i with audio frame i + k, over the frames every shift can reach
        centre = v[vshift:vshift + length]
        pairs = torch.stack([a[vshift + k:vshift + k + length] for k in range(-vshift, vshift + 1)])
        moving = net.speaking_logits(centre.expand(len(pairs), -1, -1), pairs).mean(1)
        still = net.speaking_logits(centre.mean(0, keepdim=True).expand(len(pairs), length, -1), pairs).mean(1)
        gains = (moving - still).cpu().numpy()
        best = int(np.argmax(gains))
        own = torch.sigmoid(net.speaking_logits(v[None], a[None]))[0].cpu().numpy()  # whole clip, no shift
        mask = np.ones(t, bool) if speech is None else speech[:t]
        speaking = float((own[mask] > 0.5).mean()) if mask.any() else 0.0
        return AsdScore(offset=vshift - best, gain=float(gains[best]), speaking=speaking)
