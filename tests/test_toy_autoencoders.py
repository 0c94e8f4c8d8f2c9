"""The toy autoencoders: the official latent layouts, strict loading through the loaders the real VAEs use,
reconstruction of what they were fitted on, Griffin-Lim's sound, and the sampler's given audio."""
from __future__ import annotations

import numpy as np
import pytest
import torch


def talking_clips(count: int = 3, frames: int = 9, size: int = 32) -> list[np.ndarray]:
    """Small clips of a textured picture whose dark 'mouth' opens and closes."""
    rng = np.random.default_rng(0)
    base = rng.integers(40, 220, (size, size, 3)).astype(np.uint8)
    clips = []
    for c in range(count):
        clip = np.repeat(base[None], frames, 0).copy()
        for t in range(frames):
            h = 1 + int(5 * abs(np.sin(0.7 * t + c)))
            clip[t, 20:20 + h, 10:22] = 30
        clips.append(clip)
    return clips


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    from model.mel import LogMel
    from model.toy_autoencoders import ToyConfig, save
    from model.toy_fit import fit_audio, fit_video

    t = torch.arange(16000 * 2) / 16000
    waves = [0.3 * torch.sin(2 * np.pi * f * t) * (0.5 + 0.5 * torch.sin(2 * np.pi * 3 * t)) for f in (220.0, 330.0, 500.0)]
    mels = [LogMel()(w[None])[0].numpy() for w in waves]
    config = ToyConfig(still_channels=24, motion_channels=8)
    video, audio = fit_video(talking_clips(), config), fit_audio(mels, config)
    out = str(tmp_path_factory.mktemp("toy"))
    save(out, config, video, audio, {"note": "test"})
    return out, mels


def test_layouts_and_round_trip(fitted):
    from model.toy_autoencoders import load_toy_audio, load_toy_video
    from model.toy_fit import mel_distance, psnr, round_trip_video

    fit_dir, mels = fitted
    video, audio = load_toy_video(fit_dir), load_toy_audio(fit_dir)
    clip = talking_clips()[1]
    x = torch.from_numpy(clip[None]).permute(0, 4, 1, 2, 3).float() / 127.5 - 1
    z, logvar = video.encode(x)
    assert z.shape == (1, 32, 3, 4, 4) and logvar.shape == z.shape  # 1 + 8 frames -> 1 + 2; 32 px / 8
    assert video.decode(z).shape == x.shape
    assert psnr(clip, round_trip_video(video, clip)) > 30  # fitted on it: the 32 channels hold it
    za, _ = audio.encode(torch.from_numpy(mels[0])[None])
    assert za.shape == (1, 20, mels[0].shape[1] // 2)
    assert mel_distance(audio, mels[0]) < 0.05
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        video.encode(x[:, :, :8])


def test_motion_channels_hold_the_motion(fitted):
    """A still clip has (almost) nothing in the motion channels; the talking one has."""
    from model.toy_autoencoders import load_toy_video

    video = load_toy_video(fitted[0])
    clip = talking_clips()[0]
    still = np.repeat(clip[:1], len(clip), 0)
    to_x = lambda c: torch.from_numpy(c[None]).permute(0, 4, 1, 2, 3).float() / 127.5 - 1
    moving, static = video.encode(to_x(clip))[0], video.encode(to_x(still))[0]
    assert static[:, 24:].abs().max() < 1e-3
    assert moving[:, 24:].abs().max() > 0.5


def test_loaded_as_the_pipeline_loads_latent_models(fitted, tmp_path):
    """LatentModels and Decoders take the toy folder in place of the VAEs; a tampered file fails strictly."""
    from safetensors.torch import load_file, save_file

    from generate.media import Decoders
    from model.audio_norm import AudioNorm
    from model.loading.latent_models import LatentModels, write_debug_models
    from model.toy_autoencoders import VIDEO_FILE, ToyVideoAE, load_toy_video

    models = write_debug_models(str(tmp_path / "models"), "2.2")
    enc = LatentModels.load(models, "2.2", debug=True, toy=fitted[0])
    assert isinstance(enc.video, ToyVideoAE)
    assert enc.versions["video_vae"].startswith("video_toy-pca:")
    dec = Decoders.load(models, True, "cpu", toy=fitted[0])
    z = torch.zeros(32, 3, 4, 4)
    assert dec.frames(z).shape == (9, 32, 32, 3)
    assert dec.waveform(torch.zeros(20, 10), AudioNorm([0.0] * 20, [1.0] * 20)).shape == (20 * 256,)
    state = load_file(f"{fitted[0]}/{VIDEO_FILE}")
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("toy.json", "toy_audio.safetensors"):
        (broken / name).write_bytes(open(f"{fitted[0]}/{name}", "rb").read())
    state.pop("latent_std")
    save_file(state, str(broken / VIDEO_FILE))
    with pytest.raises(RuntimeError, match="latent_std"):
        load_toy_video(str(broken))


def test_griffin_lim_keeps_the_spectrum():
    """A tone with a syllable-rate envelope comes back with its mel spectrum and its envelope in time."""
    from model.mel import LogMel
    from model.toy_autoencoders import GriffinLim

    t = torch.arange(16000) / 16000
    envelope = (t > 0.3) & (t < 0.6)
    wave = 0.3 * torch.sin(2 * np.pi * 440 * t) * envelope
    mel = LogMel()(wave[None])
    back = GriffinLim()(mel)[0, 0]
    assert back.shape == (mel.shape[-1] * 256,)
    again = LogMel()(back[None])
    loud = mel > -2
    assert float((again - mel)[loud].abs().mean()) < 0.3
    energy = lambda w, a, b: float(w[int(a * 16000):int(b * 16000)].pow(2).mean())
    assert energy(back, 0.35, 0.55) > 100 * energy(back, 0.7, 0.95)


def test_sampler_keeps_given_audio_clean():
    """With audio given, every model call sees it, with timestep 0."""
    from diffusion.sampling import SamplerConfig, sample

    seen = []

    def velocity(xv, xa, t_frames, t_audio, conditional):
        seen.append((xa.clone(), t_audio.clone()))
        return torch.zeros_like(xv), torch.ones_like(xa)

    given = torch.randn(1, 20, 6)
    sample(velocity, torch.randn(1, 4, 2, 2, 2), torch.randn(1, 20, 6), SamplerConfig(steps=3, solver="euler", video_scale=1.0, audio_scale=1.0),
                          clean_audio=given)
    assert all(torch.equal(xa, given) and float(t.abs().max()) == 0.0 for xa, t in seen) and len(seen) == 3


def test_bucket_multiple_follows_the_toy_cell():
    from model.buckets import parse_buckets

    assert parse_buckets("128x80", multiple=16) == [(128, 80)]
    with pytest.raises(ValueError, match="multiples of 32"):
        parse_buckets("128x80")
