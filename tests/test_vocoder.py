"""BigVGAN 16 kHz vocoder: official layout, old weight-norm names, anti-aliasing filters, shapes."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from model.bigvgan import WEIGHT_FILE, BigVGAN, VocoderConfig, kaiser_sinc, load_vocoder
from tests.test_lip_sync import reference_layout

TINY = VocoderConfig(width=128)


def test_full_size_layout_matches_official():
    with torch.device("meta"):
        net = BigVGAN()
    assert {k: list(v.shape) for k, v in net.state_dict().items()} == reference_layout("mmaudio_bigvgan_16k")


def test_lowpass_filter_is_a_half_band_lowpass():
    taps = kaiser_sinc(0.25, 0.3, 12).flatten().numpy()
    assert taps.sum() == pytest.approx(1.0) and np.allclose(taps, taps[::-1])
    response = np.abs(np.fft.rfft(taps, 512))
    assert response[0] == pytest.approx(1.0) and response[-1] < 0.05  # passes DC, stops Nyquist


def test_checkpoint_with_old_weight_norm_names_loads_strictly(tmp_path):
    torch.manual_seed(0)
    net = BigVGAN(TINY)
    old = {}
    for k, v in net.state_dict().items():  # the names checkpoints saved before torch's parametrizations
        k = k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1", "weight_v")
        old[k] = v
    os.makedirs(tmp_path / "mmaudio")
    torch.save({"generator": old}, tmp_path / WEIGHT_FILE)
    loaded = load_vocoder(str(tmp_path), TINY)
    mel = torch.randn(1, 80, 12)
    with torch.no_grad():
        wav = loaded(mel)
        assert torch.allclose(wav, net.eval()(mel), atol=1e-6)
    assert wav.shape == (1, 1, 12 * 256) and wav.abs().max() <= 1.0


def test_missing_vocoder_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="best_netG.pt"):
        load_vocoder(str(tmp_path))
