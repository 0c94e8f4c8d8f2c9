"""Samplers: deterministic for a seed, CFG at scale 1 is the conditional prediction, UniPC beats Euler,
and the training timestep sampler's shift grows with the sequence length."""
from __future__ import annotations

import torch

from diffusion.flow_matching import FlowMatchingConfig, sample_s, shift_for
from diffusion.sampling import SamplerConfig, guided, model_velocity, noise_like, sample
from model.unitalking import PRESETS, Conditioning, UniTalking
from tests.test_unitalking import trained_like


def debug_setup():
    model = trained_like(UniTalking(PRESETS["debug"])).eval()
    g = torch.Generator().manual_seed(3)
    cond = Conditioning(text=torch.randn(1, 5, 32, generator=g), ref_voice=torch.randn(1, 20, 7, generator=g))
    uncond = Conditioning(text=torch.zeros(1, 0, 32))
    return model, cond, uncond


def test_same_seed_same_latents_and_first_frame_kept():
    model, cond, uncond = debug_setup()
    clean = torch.randn(1, 48, 3, 8, 8)
    first = torch.tensor([True, False, False])
    cfg = SamplerConfig(steps=4)
    runs = [sample(model_velocity(model, cond, uncond), noise_like((1, 48, 3, 8, 8), 7), noise_like((1, 20, 15), 8),
                   cfg, clean_video=clean, clean_frames=first) for _ in range(2)]
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
    assert torch.equal(runs[0][0][:, :, 0], clean[:, :, 0])
    other = sample(model_velocity(model, cond, uncond), noise_like((1, 48, 3, 8, 8), 9), noise_like((1, 20, 15), 8),
                   cfg, clean_video=clean, clean_frames=first)
    assert not torch.equal(other[0], runs[0][0])


def test_guidance_scale_one_is_the_conditional_prediction():
    model, cond, uncond = debug_setup()
    velocity = model_velocity(model, cond, uncond)
    xv, xa = noise_like((1, 48, 3, 8, 8), 1), noise_like((1, 20, 15), 2)
    s_frames, s_audio = torch.full((1, 3), 600.0), torch.full((1,), 600.0)
    cv, ca = velocity(xv, xa, s_frames, s_audio, True)
    gv, ga = guided(velocity, SamplerConfig(video_scale=1.0, audio_scale=1.0))(xv, xa, s_frames, s_audio)
    assert torch.equal(gv, cv) and torch.equal(ga, ca)
    uv, ua = velocity(xv, xa, s_frames, s_audio, False)
    hv, ha = guided(velocity, SamplerConfig(video_scale=4.0, audio_scale=3.0))(xv, xa, s_frames, s_audio)
    assert torch.allclose(hv, uv + 4.0 * (cv - uv)) and torch.allclose(ha, ua + 3.0 * (ca - ua))
    assert not torch.equal(uv, cv)


def test_unipc_is_more_accurate_than_euler_on_gaussian_data():
    mu, sd = 0.7, 0.5  # data N(mu, sd^2): the exact flow maps noise e to mu + sd * e

    def exact(xv, xa, s_frames, s_audio, conditional):
        out = []
        for x, s in ((xv, s_frames[:, :1, None, None, None] / 1000), (xa, s_audio[:, None, None] / 1000)):
            x0 = mu + (1 - s) * sd ** 2 / ((1 - s) ** 2 * sd ** 2 + s ** 2) * (x - (1 - s) * mu)
            out.append((x - x0) / s)
        return out

    nv, na = noise_like((1, 4, 3, 2, 2), 0), noise_like((1, 4, 5), 1)
    err = {}
    for solver in ("euler", "unipc"):
        xv, xa = sample(exact, nv, na, SamplerConfig(steps=10, shift=1.0, solver=solver, video_scale=1, audio_scale=1))
        err[solver] = max((xv - (mu + sd * nv)).abs().max().item(), (xa - (mu + sd * na)).abs().max().item())
    assert err["unipc"] < 0.02 and err["unipc"] * 5 < err["euler"], err


def test_timestep_shift_grows_with_length_and_sharing_is_configurable():
    cfg = FlowMatchingConfig()
    assert shift_for(4096, cfg) > shift_for(1000, cfg) > shift_for(256, cfg)
    g = torch.Generator().manual_seed(0)
    short = sample_s(4000, 256, cfg, g)[0].mean()
    long = sample_s(4000, 3000, cfg, g)[0].mean()
    assert long > short  # longer sequences train at more noise
    sv, sa = sample_s(8, 1000, cfg, g)
    assert torch.equal(sv, sa)
    sv, sa = sample_s(8, 1000, FlowMatchingConfig(shared_timesteps=False), g)
    assert not torch.equal(sv, sa) and ((0 < sv) & (sv < 1)).all()
