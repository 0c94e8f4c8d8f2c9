"""From sampled latents to what people look at and listen to: the Wan VAE decodes video, the MMAudio VAE
and BigVGAN vocoder decode audio (after the audio latent normalisation is undone), ffmpeg muxes an mp4."""
from __future__ import annotations

import os
import subprocess
import tempfile

import numpy as np
import torch
from scipy.io import wavfile

from model import bigvgan, mmaudio_vae, wan_vae
from model.audio_norm import AudioNorm

SAMPLE_RATE = 16000


class Decoders:
    """Wan2.2 VAE, MMAudio VAE and vocoder: latents back to frames and sound."""

    def __init__(self, video: wan_vae.WanVAE, audio: mmaudio_vae.AudioVAE, vocoder: bigvgan.BigVGAN,
                 device: str | torch.device = "cpu"):
        self.video, self.audio, self.vocoder, self.device = video, audio, vocoder.to(device), device

    @classmethod
    def load(cls, models_dir: str, debug: bool = False, device: str | torch.device = "cpu", toy: str = "") -> "Decoders":
        """Strictly from `models_dir`; `debug` writes and loads the pipeline's seeded debug weights (the ones
        shards built with --debug-models were encoded with); `toy` loads fitted toy autoencoders instead of
        the VAEs (shards built with --toy-autoencoders) and Griffin-Lim instead of the vocoder."""
        from model.loading import latent_models as lm

        if debug and not toy:
            lm.write_debug_models(models_dir, "2.2")
        video, audio = lm.autoencoders(models_dir, "2.2", debug, toy)
        return cls(video.to(device), audio.to(device), lm.vocoder(models_dir, debug, toy), device)

    @torch.no_grad()
    def waveform(self, audio: torch.Tensor, norm: AudioNorm) -> np.ndarray:
        """(20, La) normalised audio latent -> float32 waveform at 16 kHz."""
        mel = self.audio.decode(norm.denormalize(audio[None].float().to(self.device)))
        return self.vocoder(mel)[0, 0].float().cpu().numpy()

    @torch.no_grad()
    def frames(self, video: torch.Tensor) -> np.ndarray:
        """(48, F, h, w) normalised video latent -> (T, H, W, 3) uint8 RGB."""
        dtype = next(iter([*self.video.parameters(), *self.video.buffers()])).dtype
        x = self.video.decode(video[None].to(self.device, dtype))[0]
        return ((x.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 3, 0).cpu().numpy()


def write_wav(path: str, wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> str:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    wavfile.write(path, sample_rate, (np.clip(wave, -1, 1) * 32767).astype(np.int16))
    return path


def write_mp4(path: str, frames: np.ndarray, wave: np.ndarray, fps: float, sample_rate: int = SAMPLE_RATE) -> str:
    """H.264 video with AAC sound; the sound is cut or padded to the video's length."""
    n = int(round(len(frames) / fps * sample_rate))
    wave = np.pad(wave[:n], (0, max(0, n - len(wave))))
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wav = write_wav(os.path.join(tmp, "audio.wav"), wave, sample_rate)
        h, w = frames.shape[1:3]
        cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
               "-r", str(fps), "-i", "pipe:0", "-i", wav, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "18",
               "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", path]
        subprocess.run(cmd, input=np.ascontiguousarray(frames).tobytes(), check=True, capture_output=True)
    return path
