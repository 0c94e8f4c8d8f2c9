"""MMAudio 16 kHz VAE and its log-mel front end."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from model.checkpoints import save_debug_weights
from model.mel import LogMel, MelConfig, mel_filterbank
from model.mmaudio_vae import WEIGHT_FILE, AudioVAE, AudioVAEConfig, load_audio_vae
from tests.test_lip_sync import reference_layout

TINY = AudioVAEConfig(dim=8)


def test_full_size_layout_matches_official():
    with torch.device("meta"):
        vae = AudioVAE()
    assert {k: list(v.shape) for k, v in vae.state_dict().items()} == reference_layout("mmaudio_vae_16k")


def test_filterbank_matches_torchaudio_slaney():
    import torchaudio

    ours = mel_filterbank(MelConfig())
    theirs = torchaudio.functional.melscale_fbanks(513, 0.0, 8000.0, 80, 16000, norm="slaney", mel_scale="slaney")
    np.testing.assert_allclose(ours, theirs.T.numpy(), atol=1e-6)


def test_log_mel_matches_an_independent_computation():
    import torchaudio

    g = torch.Generator().manual_seed(0)
    t = torch.arange(16000) / 16000
    wav = (0.3 * torch.sin(2 * torch.pi * 440 * t) + 0.05 * torch.randn(16000, generator=g))[None]
    ours = LogMel()(wav)
    padded = torch.nn.functional.pad(wav[:, None], (384, 384), mode="reflect")[:, 0]
    spec = torchaudio.transforms.Spectrogram(n_fft=1024, hop_length=256, power=1.0, center=False)(padded)
    fb = torchaudio.functional.melscale_fbanks(513, 0.0, 8000.0, 80, 16000, norm="slaney", mel_scale="slaney")
    theirs = torch.log10(torch.clamp(fb.T @ spec, min=1e-5))
    assert ours.shape == theirs.shape == (1, 80, 16000 // 256)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_clip_of_5_04_s_gives_157_latent_frames():
    mel = LogMel()(torch.zeros(1, round(121 / 24 * 16000)))
    with torch.device("meta"):
        mean, logvar = AudioVAE().encode(mel.to("meta"))
    assert mel.shape == (1, 80, 315) and mean.shape == logvar.shape == (1, 20, 157)


def test_tiny_round_trip_and_strict_load(tmp_path):
    with pytest.raises(FileNotFoundError, match="v1-16.pth"):
        load_audio_vae(str(tmp_path), TINY)
    save_debug_weights(AudioVAE(TINY), str(tmp_path), WEIGHT_FILE, seed=2)
    vae = load_audio_vae(str(tmp_path), TINY)
    mel = LogMel()(torch.rand(2, 16000) * 0.2 - 0.1)
    with torch.no_grad():
        mean, logvar = vae.encode(mel)
        out = vae.decode(mean)
    assert mean.shape == (2, 20, mel.shape[-1] // 2) and torch.isfinite(out).all()
    assert out.shape == (2, 80, 2 * mean.shape[-1])
