"""The joint audio-video transformer: layout, overfitting, the video-to-audio mask, rotary alignment, FLOPs."""
from __future__ import annotations

import pytest
import torch

from diffusion.flow_matching import FlowMatchingConfig, add_noise, masked_mse, sample_s, velocity_target
from model.flops import attention_flops, forward_flops, linear_flops
from model.rope import Rotation, apply_rope, audio_angles, head_split, video_angles
from model.unitalking import PRESETS, Conditioning, UniTalking, UniTalkingConfig, load_video_stream
from tests.test_lip_sync import reference_layout

DEBUG = PRESETS["debug"]


def trained_like(model: UniTalking, seed: int = 0) -> UniTalking:
    """Every weight random and non-zero, as after training (fresh heads and reference gates start at zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) / max(1, p[0].numel() if p.dim() > 1 else 1) ** 0.5)
    return model


def batch(seed: int = 0, b: int = 2):
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(b, 48, 3, 8, 8, generator=g)
    audio = torch.randn(b, 20, 15, generator=g)
    cond = Conditioning(text=torch.randn(b, 5, DEBUG.text_dim, generator=g),
                        ref_voice=torch.randn(b, 20, 7, generator=g), has_ref=torch.tensor([True, False][:b]))
    return video, audio, cond


def test_video_stream_has_the_official_wan22_ti2v_layout():
    with torch.device("meta"):
        model = UniTalking(PRESETS["paper"])
    want = reference_layout("wan2.2_ti2v_5b_dit")
    assert {k: list(v.shape) for k, v in model.video.state_dict().items()} == want
    assert {k[len("video."):] for k in model.state_dict() if k.startswith("video.")} == set(want)
    # a strict load of a full-size state dict with exactly those names (meta tensors: no 20 GB of memory)
    state = {k: torch.empty(v, device="meta") for k, v in want.items()}
    load_video_stream(model, state)
    with pytest.raises(RuntimeError, match="Missing key"):
        load_video_stream(model, {k: v for k, v in state.items() if k != "head.head.bias"})
    assert 10e9 < sum(p.numel() for p in model.parameters()) < 12e9  # about 5B per stream


def test_initial_weights_follow_the_seed_alone():
    """A ZeRO-3 build draws its defaults differently while the modules are made; only model/init.py's
    seeded draws may decide the weights (train/distributed.init_partitioned repeats them on rank 0)."""
    torch.manual_seed(1)
    a = dict(UniTalking(DEBUG, seed=5).named_parameters())
    torch.manual_seed(2)
    torch.rand(7)
    b = dict(UniTalking(DEBUG, seed=5).named_parameters())
    c = dict(UniTalking(DEBUG, seed=6).named_parameters())
    assert all(torch.equal(a[n], b[n]) for n in a)
    drawn = [n for n, p in a.items() if p.unique().numel() > 1]  # not a constant (zeros, ones)
    assert "video.blocks.0.modulation" in drawn and "audio.patch_embedding.bias" in drawn
    assert all(not torch.equal(a[n], c[n]) for n in drawn)
    m = a["audio.blocks.1.modulation"]
    assert abs(m.std().item() * DEBUG.dim ** 0.5 - 1) < 0.2  # Wan's N(0, 1/dim)


@pytest.mark.integration
def test_debug_model_overfits_one_batch():
    torch.manual_seed(0)
    model = UniTalking(DEBUG)
    video, audio, cond = batch()
    g = torch.Generator().manual_seed(1)
    eps_v, eps_a = torch.randn(video.shape, generator=g), torch.randn(audio.shape, generator=g)
    s_v, s_a = sample_s(2, 48 + 15, FlowMatchingConfig(), g)
    xv, xa = add_noise(video, eps_v, s_v), add_noise(audio, eps_a, s_a)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.9, 0.999), eps=1e-8)
    losses = []
    for _ in range(150):
        pv, pa = model(xv, xa, s_v * 1000, s_a * 1000, cond)
        loss = masked_mse(pv, velocity_target(video, eps_v)) + masked_mse(pa, velocity_target(audio, eps_a))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0], (losses[0], losses[-1])


def test_video_to_audio_mask_keeps_audio_out_of_video():
    model = trained_like(UniTalking(DEBUG)).eval()
    video, audio, cond = batch()
    other = audio + torch.randn_like(audio)
    t = torch.tensor([400.0, 700.0])
    with torch.no_grad():
        v1, a1 = model(video, audio, t * 0, t, cond, video_to_audio=True)
        v2, a2 = model(video, other, t * 0, t, cond, video_to_audio=True)
        v3, _ = model(video, audio, t * 0, t, cond)
        v4, _ = model(video, other, t * 0, t, cond)
    assert torch.equal(v1, v2) and not torch.equal(a1, a2)
    assert not torch.equal(v3, v4)


def test_audio_and_video_tokens_of_one_instant_turn_alike():
    head_dim, frames, tokens = 128, 31, 155  # 5 audio tokens per latent frame
    v = video_angles(frames, 2, 3, head_dim)
    a = audio_angles(tokens, frames / tokens, head_dim)
    dt = head_split(head_dim)[0] // 2
    for f in (0, 7, 30):
        video_token = f * 2 * 3 + 4  # any pixel of frame f
        assert torch.equal(a[5 * f, :dt], v[video_token, :dt])
        assert torch.all(a[5 * f, dt:] == 0)  # audio has no spatial rotation
    x = torch.randn(1, 1, 1, head_dim).expand(1, 2, 1, head_dim).clone()  # one vector at two positions
    theta = torch.stack([v[7 * 6, :], a[35, :]])
    theta[1, dt:] = theta[0, dt:]  # same spatial angles too: then the rotations must coincide exactly
    out = apply_rope(x, Rotation.of(theta))
    assert torch.allclose(out[0, 0], out[0, 1])


def test_flops_match_torch_counter():
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    c = UniTalkingConfig(dim=64, ffn_dim=96, heads=4, layers=2, text_dim=32, text_len=16)
    model = UniTalking(c)
    video, audio = torch.randn(1, 48, 3, 8, 8), torch.randn(1, 20, 15)
    cond = Conditioning(text=torch.randn(1, 5, 32), ref_voice=torch.randn(1, 20, 7))
    for v2a in (False, True):
        with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:  # math: plain matmuls
            model(video, audio, torch.tensor([500.0]), torch.tensor([500.0]), cond, video_to_audio=v2a)
        assert counter.get_total_flops() == forward_flops(c, (48, 3, 8, 8), 15, 7, v2a, video_time_groups=1)
        with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:  # per latent frame, as trained
            model(video, audio, torch.tensor([[0.0, 500.0, 500.0]]), torch.tensor([500.0]), cond, video_to_audio=v2a)
        assert counter.get_total_flops() == forward_flops(c, (48, 3, 8, 8), 15, 7, v2a)
    assert forward_flops(c, (48, 3, 8, 8), 15, 7) == linear_flops(c, (48, 3, 8, 8), 15, 7) + attention_flops(c, (48, 3, 8, 8), 15, 7)
