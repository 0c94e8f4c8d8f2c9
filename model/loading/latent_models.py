"""The networks that turn a clip into training latents, loaded once per encode worker.

Real runs load the official checkpoints from `--models-dir`. `--debug-models` first writes small seeded
random weights (same file formats, same loaders, narrow widths but the official latent shapes) into
OUT/debug_models, and every manifest row then names them as debug weights.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from model import bigvgan, mmaudio_vae, wan_vae
from model.mel import LogMel
from model.text_encoder import DEFAULT_DIR as UMT5_DIR
from model.text_encoder import TextEncoder, save_debug_text_encoder

DEBUG_VIDEO = {"2.2": wan_vae.WanVAEConfig(dim=2, dec_dim=2, z_dim=48),
               "2.1": wan_vae.WanVAEConfig(version="2.1", dim=2, dec_dim=2, z_dim=16, stats_key="wan2.1_vae")}
DEBUG_AUDIO = mmaudio_vae.AudioVAEConfig(dim=8)
DEBUG_VOCODER = bigvgan.VocoderConfig(width=64)
DEBUG_TEXT_VOCAB = ["<S>", "<E>", "the quick brown fox jumps over the lazy dog", "hello good morning everyone"]


def configs(video_vae: str, debug: bool) -> tuple[wan_vae.WanVAEConfig, mmaudio_vae.AudioVAEConfig, bigvgan.VocoderConfig]:
    """Video VAE, audio VAE and vocoder configurations: the official ones, or the debug ones."""
    if debug:
        return DEBUG_VIDEO[video_vae], DEBUG_AUDIO, DEBUG_VOCODER
    return (wan_vae.WAN22 if video_vae == "2.2" else wan_vae.WAN21), mmaudio_vae.AudioVAEConfig(), bigvgan.VocoderConfig()


def required_files(models_dir: str, video_vae: str, toy: str = "") -> list[str]:
    """What a real (non-debug) encode needs in the models folder (with toy autoencoders, the text encoder)."""
    vaes = [] if toy else [os.path.join(models_dir, wan_vae.WEIGHT_FILES[video_vae]),
                           os.path.join(models_dir, mmaudio_vae.WEIGHT_FILE)]
    return vaes + [os.path.join(models_dir, UMT5_DIR, "config.json")]


def write_debug_models(models_dir: str, video_vae: str, seed: int = 0) -> str:
    """Seeded random weights for every encoder, written where the loaders look; idempotent."""
    from model.checkpoints import save_debug_weights

    video = os.path.join(models_dir, wan_vae.WEIGHT_FILES[video_vae])
    if not os.path.isfile(video):
        save_debug_weights(wan_vae.WanVAE(DEBUG_VIDEO[video_vae]), models_dir, wan_vae.WEIGHT_FILES[video_vae], seed)
    if not os.path.isfile(os.path.join(models_dir, mmaudio_vae.WEIGHT_FILE)):
        save_debug_weights(mmaudio_vae.AudioVAE(DEBUG_AUDIO), models_dir, mmaudio_vae.WEIGHT_FILE, seed + 1)
    if not os.path.isfile(os.path.join(models_dir, bigvgan.WEIGHT_FILE)):
        save_debug_weights(bigvgan.BigVGAN(DEBUG_VOCODER), models_dir, bigvgan.WEIGHT_FILE, seed + 2)
    if not os.path.isfile(os.path.join(models_dir, UMT5_DIR, "config.json")):
        save_debug_text_encoder(os.path.join(models_dir, UMT5_DIR), DEBUG_TEXT_VOCAB, seed + 3)
    return models_dir


@dataclass
class LatentModels:
    video: wan_vae.WanVAE
    audio: mmaudio_vae.AudioVAE
    mel: LogMel
    text: TextEncoder
    device: str
    dtype: torch.dtype
    versions: dict[str, str]

    @classmethod
    def load(cls, models_dir: str, video_vae: str = "2.2", debug: bool = False, toy: str = "") -> "LatentModels":
        """`toy`: a folder of fitted toy autoencoders (model/toy_autoencoders.py) in place of both VAEs; the
        text encoder still comes from `models_dir` (debug or official)."""
        device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        video, audio = autoencoders(models_dir, video_vae, debug, toy)
        text = TextEncoder(os.path.join(models_dir, UMT5_DIR), device, dtype)
        tag = "debug-random" if debug else "official"
        versions = {"video_vae": f"wan{video_vae}_vae:{tag}", "audio_vae": f"mmaudio_vae_16k:{tag}",
                    "text_encoder": f"{text.version}:{tag}"}
        if toy:
            from model.toy_autoencoders import version

            versions.update(video_vae=f"video_{version(toy)}", audio_vae=f"audio_{version(toy)}")
        return cls(video.to(device, dtype), audio.to(device), LogMel().to(device), text, device, dtype, versions)


def autoencoders(models_dir: str, video_vae: str, debug: bool, toy: str = "") -> tuple[torch.nn.Module, torch.nn.Module]:
    """The video and audio autoencoders, loaded strictly: the toy ones from `toy` when given, else Wan's
    and MMAudio's (debug or official) from `models_dir`. The audio one stays float32: it is small."""
    if toy:
        from model.toy_autoencoders import load_toy_audio, load_toy_video

        return load_toy_video(toy), load_toy_audio(toy)
    video_cfg, audio_cfg, _ = configs(video_vae, debug)
    return wan_vae.load_wan_vae(models_dir, video_cfg), mmaudio_vae.load_audio_vae(models_dir, audio_cfg)


def vocoder(models_dir: str, debug: bool, toy: str = "") -> torch.nn.Module:
    """BigVGAN (debug or official), or with the toy autoencoders, Griffin-Lim (they have no vocoder)."""
    if toy:
        from model.toy_autoencoders import GriffinLim

        return GriffinLim()
    return bigvgan.load_vocoder(models_dir, configs("2.2", debug)[2])
