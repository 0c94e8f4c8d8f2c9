"""Generate a talking clip from a trained checkpoint: text (+ first image, + reference voice) -> mp4 with sound.

    python -m generate.sample --checkpoint RUN/export/ema --text "Hello there." \\
        --image face.png --ref-voice voice.wav --out hello.mp4 --models-dir models

The checkpoint is the EMA export of `train/run.py` (it carries the model configuration and the audio latent
statistics): the model is built on the meta device and takes the exported tensors as they are (no second
copy, no initialisation of 11B parameters), in bf16 on a GPU. umT5, the Wan2.2 VAE, the MMAudio VAE and the vocoder come from --models-dir, loaded as the
pipeline's encode stage loads them (on the GPU when there is one); --device places the transformer.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np
import torch

from diffusion.sampling import SamplerConfig, model_velocity, noise_like, sample, unconditional
from generate.media import SAMPLE_RATE, Decoders, write_mp4, write_wav
from model.audio_norm import AudioNorm
from model.text_encoder import speech_prompt
from model.unitalking import Conditioning, UniTalking, UniTalkingConfig


def load_export(path: str, device, dtype: torch.dtype | None = None) -> tuple[UniTalking, AudioNorm]:
    """The model (strictly) and audio statistics from an export; `dtype` defaults to bf16 on a GPU and
    float32 on a CPU."""
    from model.checkpoints import export_metadata, read_safetensors_shards, resolve_export

    path = resolve_export(path)
    meta = export_metadata(path)
    if "model" not in meta or "audio_stats" not in meta:
        raise ValueError(f"{path} is not an export of train/run.py (no model config / audio stats in its metadata)")
    fields = json.loads(meta["model"])
    fields["video_patch"] = tuple(fields["video_patch"])
    device = torch.device(device)
    dtype = dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)
    with torch.device("meta"):
        model = UniTalking(UniTalkingConfig(**fields))
    state = {k: v.to(device, dtype) for k, v in read_safetensors_shards(path).items()}
    model.load_state_dict(state, strict=True, assign=True)
    stats = json.loads(meta["audio_stats"])
    return model.eval(), AudioNorm(stats["mean"], stats["std"])


def read_audio(path: str, seconds: float) -> np.ndarray:
    """The first `seconds` of any audio file as 16 kHz mono float32."""
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", path, "-t", str(seconds), "-ac", "1", "-ar", str(SAMPLE_RATE),
           "-f", "f32le", "pipe:1"]
    return np.frombuffer(subprocess.run(cmd, capture_output=True, check=True).stdout, np.float32).copy()


def read_image(path: str, width: int, height: int) -> np.ndarray:
    """(H, W, 3) uint8: the image centre-cropped to the bucket's aspect and resized."""
    vf = f"scale={width}:{height}:force_original_aspect_ratio=increase,crop={width}:{height}"
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", path, "-vf", vf, "-frames:v", "1", "-f", "rawvideo",
           "-pix_fmt", "rgb24", "pipe:1"]
    return np.frombuffer(subprocess.run(cmd, capture_output=True, check=True).stdout, np.uint8).reshape(height, width, 3)


def audio_tokens(seconds: float) -> int:
    """MMAudio latent length of a clip: 2L + 1 centred mel frames (hop 256) give L latent tokens."""
    return int(seconds * SAMPLE_RATE) // 256 // 2


class Generator:
    """A checkpoint with the encoders and decoders it needs, loaded once for any number of clips."""

    def __init__(self, checkpoint: str, models_dir: str, debug_models: bool = False, device: str | None = None,
                 toy: str = ""):
        from model.loading.latent_models import LatentModels, vocoder, write_debug_models

        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model, self.norm = load_export(checkpoint, self.device)
        if debug_models:
            write_debug_models(models_dir, "2.2")
        self.enc = LatentModels.load(models_dir, "2.2", debug_models, toy)  # the encoders the pipeline uses
        self.spatial = self.enc.video.config.spatial if toy else 16
        self.decoders = Decoders(self.enc.video, self.enc.audio, vocoder(models_dir, debug_models, toy), self.enc.device)

    @torch.no_grad()
    def make(self, text: str, out: str, caption: str = "", negative_text: str | None = None, image: str | None = None,
             ref_voice: str | None = None, size: tuple[int, int] = (704, 704), frames: int = 121, fps: float = 24.0,
             audio_only: bool = False, sampler: SamplerConfig = SamplerConfig(), seed: int = 0) -> str:
        """One clip: an mp4 with sound (a wav with `audio_only`) at `out`; returns its path."""
        from model.wan_vae import to_video_tensor

        enc, model, device, (width, height) = self.enc, self.model, self.device, size
        prompts = [speech_prompt(text, caption or None)] + ([negative_text] if negative_text is not None else [])
        texts = [t.float()[None].to(device) for t in enc.text.encode(prompts)]
        cond = Conditioning(text=texts[0])
        if ref_voice:
            mel = enc.mel(torch.from_numpy(read_audio(ref_voice, 5.0))[None].to(enc.device))
            cond.ref_voice = self.norm.normalize(enc.audio.encode(mel)[0].float()).to(device)
        noise_a = noise_like((1, model.config.audio_channels, audio_tokens(frames / fps)), seed + 1, device)
        noise_v = clean = first = None
        if not audio_only:
            f, h, w = (frames - 1) // 4 + 1, height // self.spatial, width // self.spatial
            noise_v = noise_like((1, model.config.video_channels, f, h, w), seed, device)
            if image:
                still = to_video_tensor(read_image(image, width, height)[None, None])
                latent, _ = enc.video.encode(still.to(enc.device, enc.dtype))
                clean = torch.zeros_like(noise_v)
                clean[:, :, :1] = latent.float().to(device)
                first = torch.arange(f) == 0
        negative = texts[1] if len(texts) > 1 else None
        video, audio = sample(model_velocity(model, cond, unconditional(cond, negative), fps=fps),
                              noise_v, noise_a, sampler, clean, first)
        wave = self.decoders.waveform(audio[0], self.norm)
        if video is None:
            return write_wav(out, wave)
        return write_mp4(out, self.decoders.frames(video[0]), wave, fps)


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="an export folder (RUN/export/ema) or a run folder")
    p.add_argument("--text", required=True, help="the words to speak")
    p.add_argument("--caption", default="", help="optional scene description before the speech")
    p.add_argument("--negative-text", default=None, help="negative prompt for the unconditional branch")
    p.add_argument("--image", help="first frame (any image ffmpeg reads)")
    p.add_argument("--ref-voice", help="reference voice (3-5 s of any audio file)")
    p.add_argument("--out", required=True, help="output .mp4 (or .wav with --audio-only)")
    p.add_argument("--models-dir", default="models")
    p.add_argument("--debug-models", action="store_true", help="seeded debug encoders/decoders (tests)")
    p.add_argument("--toy-autoencoders", default="", metavar="FIT_DIR",
                   help="fitted toy autoencoders in place of the VAEs (shards built with --toy-autoencoders)")
    p.add_argument("--size", default="704x704", help="WxH (multiples of 32)")
    p.add_argument("--frames", type=int, default=121, help="1 + 4k frames")
    p.add_argument("--fps", type=float, default=24.0)
    p.add_argument("--audio-only", action="store_true", help="speech alone (a stage-1 checkpoint)")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--solver", default="unipc", choices=["unipc", "euler"])
    p.add_argument("--video-scale", type=float, default=4.0)
    p.add_argument("--audio-scale", type=float, default=3.0)
    p.add_argument("--shift", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args(argv)
    if (a.frames - 1) % 4:
        p.error("--frames must be 1 + 4k")
    from model.buckets import parse_buckets
    from model.toy_autoencoders import toy_multiple

    (size,) = parse_buckets(a.size, multiple=toy_multiple(a.toy_autoencoders))
    sampler = SamplerConfig(steps=a.steps, shift=a.shift, solver=a.solver, video_scale=a.video_scale,
                            audio_scale=a.audio_scale)
    gen = Generator(a.checkpoint, a.models_dir, a.debug_models, a.device, a.toy_autoencoders)
    return gen.make(a.text, a.out, a.caption, a.negative_text, a.image, a.ref_voice, size, a.frames, a.fps,
                    a.audio_only, sampler, a.seed)


if __name__ == "__main__":
    print(main(sys.argv[1:]))
