"""Issue 8's review of model/ and train/ against the official Wan2.2 / MMAudio code: one test per fix."""
from __future__ import annotations

import pytest
import torch

from diffusion.flow_matching import FlowMatchingConfig, sample_s, shift_for
from diffusion.sampling import SamplerConfig, noise_like, sample
from model.unitalking import PRESETS, Conditioning, UniTalking
from tests.test_unitalking import DEBUG, batch, trained_like


def joint_tokens(width: int, height: int, frames: int = 121, audio_tokens: int = 157) -> int:
    return ((frames - 1) // 4 + 1) * (height // 32) * (width // 32) + audio_tokens


def test_timestep_shift_is_capped_at_the_paper_bucket():
    cfg = FlowMatchingConfig()
    tokens = joint_tokens(704, 704)
    assert tokens == 15161 and shift_for(tokens, cfg) == pytest.approx(5.0)
    g = torch.Generator().manual_seed(0)
    s = sample_s(200_000, tokens, cfg, g)[0]
    assert 0.7 < s.median() < 0.9  # runs away to 0.95 with an extrapolated shift
    assert (s < 0.5).float().mean() > 0.04  # 0.13% with an extrapolated shift
    wide = sample_s(200_000, joint_tokens(1280, 704), cfg, g)[0]
    assert (wide < 0.8).float().mean() > 0.3  # never drawn with an extrapolated shift


def test_buckets_must_be_multiples_of_32_for_wan22():
    from model.buckets import parse_buckets

    with pytest.raises(ValueError, match="multiples of 32.*nearest: 704x704"):
        parse_buckets("720x720")
    assert parse_buckets("704x704,1280x704") == [(704, 704), (1280, 704)]
    assert parse_buckets("720x720", "2.1") == [(720, 720)]  # 8x stride: 16 per token side


def test_audio_only_forward_runs_the_audio_stream_alone():
    model = trained_like(UniTalking(DEBUG)).eval()
    _, audio, cond = batch()
    t = torch.tensor([300.0, 800.0])
    with torch.no_grad():
        none_v, a1 = model(None, audio, None, t, cond)
        for p in model.video.parameters():  # the video stream plays no part
            p.add_(1.0)
        _, a2 = model(None, audio, None, t, cond)
    assert none_v is None and a1.shape == audio.shape and torch.equal(a1, a2)


def test_new_parameters_start_like_wan_and_the_reference_path_closed():
    torch.manual_seed(0)
    model = UniTalking(DEBUG)
    assert torch.all(model.audio.head.head.weight == 0)
    w = model.audio.blocks[0].self_attn.q.weight
    bound = (6 / (w.shape[0] + w.shape[1])) ** 0.5  # xavier-uniform
    assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound and torch.all(model.audio.blocks[0].self_attn.q.bias == 0)
    k = model.audio_ref[0].k.weight
    assert k.abs().max() <= (6 / sum(k.shape)) ** 0.5 and all(torch.all(r.gate == 0) for r in model.video_ref)
    # a pretrained video stream: random non-zero weights there, the fresh model everywhere else
    trained_like(model.video)
    video, audio, cond = batch()
    t = torch.tensor([300.0, 800.0])
    with torch.no_grad():
        v1, _ = model(video, audio, t, t, cond)
        v2, _ = model(video, audio, t, t, Conditioning(text=cond.text))
    assert torch.equal(v1, v2)  # step 0: the reference voice changes nothing yet


def recording_velocity(calls: list):
    def velocity(xv, xa, t_frames, t_audio, conditional):
        calls.append((conditional, xv.clone(), t_frames.clone(), t_audio.clone()))
        return torch.zeros_like(xv), torch.zeros_like(xa)
    return velocity


def test_sampler_gives_both_branches_the_clean_frame_and_integer_timesteps():
    calls = []
    clean = noise_like((1, 48, 3, 4, 4), 5)
    first = torch.tensor([True, False, False])
    sample(recording_velocity(calls), noise_like((1, 48, 3, 4, 4), 1), noise_like((1, 20, 9), 2),
           SamplerConfig(steps=5, video_scale=4.0, audio_scale=3.0), clean_video=clean, clean_frames=first)
    assert {c[0] for c in calls} == {True, False} and len(calls) == 10
    for _, xv, t_frames, t_audio in calls:
        assert torch.equal(xv[:, :, 0], clean[:, :, 0]) and torch.all(t_frames[:, 0] == 0)
        assert torch.all(t_frames[:, 1:] > 0)
        assert torch.equal(t_frames, t_frames.round()) and torch.equal(t_audio, t_audio.round())


def test_negative_prompt_is_the_unconditional_text():
    from diffusion.sampling import unconditional

    cond = Conditioning(text=torch.randn(2, 5, 32), ref_voice=torch.randn(2, 20, 7))
    negative = torch.randn(1, 3, 32)
    u = unconditional(cond, negative)
    assert u.ref_voice is None and u.text.shape == (2, 3, 32) and torch.equal(u.text[1], negative[0])
    assert unconditional(cond).text.shape == (2, 0, 32)


def test_bf16_keeps_the_residual_stream_and_head_input_in_float32():
    model = trained_like(UniTalking(DEBUG)).eval()
    video, audio, cond = batch()
    t = torch.tensor([300.0, 800.0])
    seen = []
    for head in (model.video.head, model.audio.head):
        head.register_forward_pre_hook(lambda m, args: seen.append(args[0].dtype))
    with torch.no_grad():
        v32, a32 = model(video, audio, t, t, cond)
        model.to(torch.bfloat16)
        v16, a16 = model(video, audio, t, t, cond)
    assert seen == [torch.float32] * 4 and v16.dtype == a16.dtype == torch.float32
    rel = lambda a, b: ((a - b).norm() / b.norm()).item()
    assert rel(v16, v32) < 0.05 and rel(a16, a32) < 0.05


@pytest.mark.parametrize("frames", [49, 121, 241])
def test_audio_and_video_tokens_of_one_instant_share_a_temporal_angle(frames):
    model = UniTalking(PRESETS["debug"])
    head_t = (model.config.dim // model.config.heads) - 4 * ((model.config.dim // model.config.heads) // 6)
    fps = 25.0  # video latent k is frame 4k = 0.16 k s; audio token j is 0.032 j s: k and 5k coincide
    latent_frames = (frames - 1) // 4 + 1
    audio_tokens = int(frames / fps * 16000) // 256 // 2  # the MMAudio latent length of the clip
    rope_v, rope_a = model.rotary((latent_frames, 2, 2), audio_tokens, fps)
    for k in range(0, latent_frames, 3):
        if 5 * k < audio_tokens:
            assert torch.allclose(rope_a[5 * k, :head_t // 2], rope_v[k * 4, :head_t // 2], atol=1e-9)
    # the paper's 24 fps: 4 s is latent frame 24 and audio token 125
    rope_v, rope_a = model.rotary((61, 1, 1), 314, 24.0)
    assert torch.allclose(rope_a[125, :head_t // 2], rope_v[24, :head_t // 2], atol=1e-9)


def test_syncnet_loads_checkpoints_without_batch_norm_counters(tmp_path):
    from model.syncnet import RELPATH, SyncNet, load_syncnet

    # a state dict as a module saves it (with its version metadata), less the step counters
    state = SyncNet().state_dict()
    for name in [k for k in state if k.endswith("num_batches_tracked")]:
        del state[name]
    (tmp_path / "syncnet").mkdir()
    torch.save(state, tmp_path / RELPATH)
    net = load_syncnet(str(tmp_path))
    assert torch.equal(net.netcnnaud[0].weight, state["netcnnaud.0.weight"])
    del state["netcnnaud.0.weight"]
    torch.save(state, tmp_path / RELPATH)
    with pytest.raises(RuntimeError, match="Missing key"):  # only the counters may be missing
        load_syncnet(str(tmp_path))
