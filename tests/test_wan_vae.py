"""Wan2.1 / Wan2.2 video VAE: official layouts at full size, shapes, causality, strict loading."""
from __future__ import annotations

import pytest
import torch

from model.checkpoints import save_debug_weights
from model.wan_vae import WAN21, WAN22, WEIGHT_FILES, WanVAE, WanVAEConfig, load_wan_vae
from tests.test_lip_sync import reference_layout

TINY = {"2.2": WanVAEConfig(dim=4, dec_dim=4, z_dim=48),
        "2.1": WanVAEConfig(version="2.1", dim=4, dec_dim=4, z_dim=16, stats_key="wan2.1_vae")}


@pytest.mark.parametrize("config,key", [(WAN22, "wan2.2_vae"), (WAN21, "wan2.1_vae")])
def test_full_size_layout_matches_official(config, key):
    with torch.device("meta"):
        vae = WanVAE(config)
    assert {k: list(v.shape) for k, v in vae.state_dict().items()} == reference_layout(key)


@pytest.mark.integration
@pytest.mark.parametrize("config,latent", [(WAN22, (1, 48, 31, 44, 44)), (WAN21, (1, 16, 31, 88, 88))])
def test_full_size_shapes_of_a_121_frame_704px_clip(config, latent):
    with torch.device("meta"):  # shapes only: the full network propagates meta tensors in seconds
        vae = WanVAE(config)
        mu, logvar = vae.encode(torch.zeros(1, 3, 121, 704, 704))
        video = vae.decode(mu)
    assert tuple(mu.shape) == tuple(logvar.shape) == latent
    assert tuple(video.shape) == (1, 3, 121, 704, 704)


@pytest.mark.parametrize("version", ["2.2", "2.1"])
def test_round_trip_shape_and_causality(version):
    torch.manual_seed(0)
    vae = WanVAE(TINY[version]).eval()
    x = torch.rand(1, 3, 9, 64, 64) * 2 - 1
    with torch.no_grad():
        mu, _ = vae.encode(x)
        assert vae.decode(mu).shape == x.shape
        later = x.clone()
        later[:, :, 5:] = torch.rand_like(later[:, :, 5:])  # frames of the last chunk only
        mu_later, _ = vae.encode(later)
        first = x.clone()
        first[:, :, 1:] = torch.rand_like(first[:, :, 1:])
        mu_first, _ = vae.encode(first)
    s = 16 if version == "2.2" else 8
    assert mu.shape == (1, TINY[version].z_dim, 3, 64 // s, 64 // s)
    assert torch.equal(mu_first[:, :, 0], mu[:, :, 0])  # latent 0 sees frame 0 only
    assert not torch.equal(mu_first[:, :, 1:], mu[:, :, 1:])
    assert torch.equal(mu_later[:, :, :2], mu[:, :, :2])  # latents 0-1 never see frames 5-8
    with torch.no_grad():
        z2 = mu.clone()
        z2[:, :, 1:] = torch.randn_like(z2[:, :, 1:])
        assert torch.equal(vae.decode(z2)[:, :, 0], vae.decode(mu)[:, :, 0])  # decoding is causal too


def test_frames_must_be_one_plus_four_k():
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        WanVAE(TINY["2.2"]).encode(torch.zeros(1, 3, 8, 32, 32))


def test_strict_load_and_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="Wan2.2_VAE.pth.*model.loading.fetch"):
        load_wan_vae(str(tmp_path), TINY["2.2"])
    save_debug_weights(WanVAE(TINY["2.2"]), str(tmp_path), WEIGHT_FILES["2.2"], seed=1)
    a, b = load_wan_vae(str(tmp_path), TINY["2.2"]), load_wan_vae(str(tmp_path), TINY["2.2"])
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    with pytest.raises(RuntimeError, match="size mismatch"):
        load_wan_vae(str(tmp_path), WanVAEConfig(dim=8, dec_dim=4, z_dim=48))


def test_latent_normalisation_uses_official_constants():
    vae = WanVAE(TINY["2.1"])
    assert vae.latent_mean.flatten()[0].item() == pytest.approx(-0.7571)
    assert 1 / vae.latent_inv_std.flatten()[0].item() == pytest.approx(2.8184)
