"""The joint forward's numerics: the video stream against an independent float32 transcription of Wan2.2's
official WanModel forward (per-token timesteps, complex128 RoPE), and the whole model against outputs recorded
before issue 24 replaced per-token modulation tables by per-frame ones and complex RoPE by float32 cos/sin."""
from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from model.unitalking import PRESETS, Conditioning, UniTalking
from tests.conftest import REPO
from tests.test_unitalking import DEBUG, trained_like

RECORDED = os.path.join(REPO, "tests", "reference", "joint_forward_before.safetensors")


def wan22_rope(x: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
    """Wan2.2's rope_apply: complex128 rotation of (B, L, heads, d) by the (frame, row, column) table."""
    d = x.shape[-1]
    dims = (d - 4 * (d // 6), 2 * (d // 6), 2 * (d // 6))
    tables = [torch.polar(torch.ones(1024, k // 2, dtype=torch.float64),
                          torch.outer(torch.arange(1024, dtype=torch.float64),
                                      1.0 / 10000 ** (torch.arange(0, k, 2, dtype=torch.float64) / k))) for k in dims]
    f, h, w = grid
    freqs = torch.cat([tables[0][:f].view(f, 1, 1, -1).expand(f, h, w, -1),
                       tables[1][:h].view(1, h, 1, -1).expand(f, h, w, -1),
                       tables[2][:w].view(1, 1, w, -1).expand(f, h, w, -1)], -1).reshape(f * h * w, 1, -1)
    xc = torch.view_as_complex(x.to(torch.float64).reshape(*x.shape[:3], -1, 2))
    return torch.view_as_real(xc * freqs).flatten(3).float()


def wan22_video_forward(s: dict[str, torch.Tensor], heads: int, text_len: int, x: torch.Tensor, t_tokens: torch.Tensor,
                        context: torch.Tensor) -> torch.Tensor:
    """WanModel.forward of the TI2V-5B design written from the official code, on a state dict."""
    lin = lambda p, v: F.linear(v, s[f"{p}.weight"], s[f"{p}.bias"])
    rms = lambda p, v: v * torch.rsqrt(v.pow(2).mean(-1, keepdim=True) + 1e-6) * s[f"{p}.weight"]
    ln = lambda v, p=None: F.layer_norm(v, v.shape[-1:], s.get(f"{p}.weight"), s.get(f"{p}.bias"), 1e-6)
    x = F.conv3d(x, s["patch_embedding.weight"], s["patch_embedding.bias"], stride=(1, 2, 2))
    grid, c = tuple(x.shape[2:]), x.shape[1]
    x = x.flatten(2).transpose(1, 2)
    half = 128
    sinus = torch.outer(t_tokens.flatten().double(), torch.pow(10000, -torch.arange(half).double() / half))
    e = torch.cat([torch.cos(sinus), torch.sin(sinus)], 1).float().unflatten(0, t_tokens.shape)
    e = lin("time_embedding.2", F.silu(lin("time_embedding.0", e)))
    e0 = lin("time_projection.1", F.silu(e)).unflatten(2, (6, c))
    ctx = F.pad(context, (0, 0, 0, text_len - context.shape[1]))
    ctx = lin("text_embedding.2", F.gelu(lin("text_embedding.0", ctx), approximate="tanh"))
    b, n = x.shape[0], heads

    def attention(p, q_in, kv_in, rope):
        q = rms(f"{p}.norm_q", lin(f"{p}.q", q_in)).view(b, -1, n, c // n)
        k = rms(f"{p}.norm_k", lin(f"{p}.k", kv_in)).view(b, -1, n, c // n)
        v = lin(f"{p}.v", kv_in).view(b, -1, n, c // n)
        if rope:
            q, k = wan22_rope(q, grid), wan22_rope(k, grid)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return lin(f"{p}.o", out.transpose(1, 2).flatten(2))

    layers = len({k.split(".")[1] for k in s if k.startswith("blocks.")})
    for i in range(layers):
        p = f"blocks.{i}"
        m = (s[f"{p}.modulation"].unsqueeze(0) + e0).chunk(6, dim=2)
        h = ln(x) * (1 + m[1].squeeze(2)) + m[0].squeeze(2)
        y = attention(f"{p}.self_attn", h, h, True)
        x = x + y * m[2].squeeze(2)
        x = x + attention(f"{p}.cross_attn", ln(x, f"{p}.norm3"), ctx, False)
        h = ln(x) * (1 + m[4].squeeze(2)) + m[3].squeeze(2)
        x = x + lin(f"{p}.ffn.2", F.gelu(lin(f"{p}.ffn.0", h), approximate="tanh")) * m[5].squeeze(2)
    hm = (s["head.modulation"].unsqueeze(0) + e.unsqueeze(2)).chunk(2, dim=2)
    x = lin("head.head", ln(x) * (1 + hm[1].squeeze(2)) + hm[0].squeeze(2))
    out_c = x.shape[-1] // 4
    x = x.view(b, *grid, 1, 2, 2, out_c)
    return torch.einsum("bfhwpqrc->bcfphqwr", x).reshape(b, out_c, grid[0], grid[1] * 2, grid[2] * 2)


def test_video_stream_equals_the_official_wan22_forward_in_float32():
    model = trained_like(UniTalking(DEBUG), seed=3).eval()
    g = torch.Generator().manual_seed(4)
    video, audio = torch.randn(2, 48, 3, 8, 8, generator=g), torch.randn(2, 20, 15, generator=g)
    text = torch.randn(2, 5, DEBUG.text_dim, generator=g)
    t_frames = torch.tensor([[0.0, 640.0, 640.0], [910.0, 910.0, 910.0]])  # TI2V: the given first frame at 0
    with torch.no_grad():  # video-to-audio: the video tokens see only themselves, as in Wan
        ours, _ = model(video, audio, t_frames, torch.tensor([640.0, 910.0]), Conditioning(text=text), video_to_audio=True)
        state = {k: v.float() for k, v in model.video.state_dict().items()}
        official = wan22_video_forward(state, DEBUG.heads, DEBUG.text_len, video, t_frames.repeat_interleave(16, 1), text)
    rel = ((ours - official).norm() / official.norm()).item()
    assert rel < 2e-6, rel  # float32 round-off: the rotation is rounded to float32 once instead of float64
    # the comparison can fail: one block's FFN gate off by a little moves the output far beyond that
    with torch.no_grad():
        state["blocks.1.modulation"][0, 5] += 1e-3
        moved = wan22_video_forward(state, DEBUG.heads, DEBUG.text_len, video, t_frames.repeat_interleave(16, 1), text)
    assert ((ours - moved).norm() / official.norm()).item() > 100 * rel


def recorded_model() -> UniTalking:
    """The weights the recording was made with: every parameter drawn from seed 0 in parameter order."""
    return trained_like(UniTalking(PRESETS["debug"], seed=0), seed=0).eval()


def test_outputs_equal_those_recorded_before_per_frame_modulation_and_float32_rope():
    ref = load_file(RECORDED)
    i = {k[len("input."):]: v for k, v in ref.items() if k.startswith("input.")}
    model = recorded_model()
    cond = Conditioning(text=i["text"], ref_voice=i["ref_voice"], has_ref=torch.tensor([True, False]),
                        ref_mask=i["ref_mask"])
    out = {}
    with torch.no_grad():
        for name, v2a in (("joint", False), ("v2a", True)):
            out[f"{name}.video"], out[f"{name}.audio"] = model(i["video"], i["audio"], i["t_frames"], i["t_audio"], cond,
                                                               video_to_audio=v2a, audio_mask=i["audio_mask"], fps=25.0)
        _, out["audio_only.audio"] = model(None, i["audio"], None, i["t_audio"], cond, audio_mask=i["audio_mask"])
    for name, value in out.items():
        want = ref[f"output.{name}"]
        assert ((value - want).abs().max() / want.abs().max()).item() < 2e-6, name
    # per-token timesteps (Wan2.2's form) are still taken, and mean the same as per-frame ones
    with torch.no_grad():
        per_token, _ = model(i["video"], i["audio"], i["t_frames"].repeat_interleave(16, 1), i["t_audio"], cond,
                             audio_mask=i["audio_mask"], fps=25.0)
    assert torch.allclose(per_token, out["joint.video"], rtol=0, atol=1e-6 * want.abs().max().item() + 1e-6)


def test_modulation_is_computed_per_latent_frame_not_per_token():
    """The table each block reads has one row per latent frame: at 704x704x121 that is 31 rows, not 15,004."""
    model = UniTalking(DEBUG)
    shapes = []
    for stream in (model.video, model.audio):
        stream.blocks[0].register_forward_pre_hook(lambda m, args: shapes.append(tuple(args[0].shape)))
    with torch.no_grad():
        model(torch.randn(1, 48, 3, 8, 8), torch.randn(1, 20, 15), torch.tensor([[0.0, 500.0, 500.0]]),
              torch.tensor([500.0]), Conditioning(text=torch.randn(1, 5, DEBUG.text_dim)))
    assert (1, 3, 6, DEBUG.dim) in shapes and (1, 1, 6, DEBUG.dim) in shapes
    assert not any(s[1] in (48, 15) for s in shapes)  # never one row per video or audio token


def test_attention_gets_no_mask_unless_a_token_is_padding():
    from model.audio_norm import AudioNorm
    from train.config import TaskConfig
    from train.tasks import build

    norm = AudioNorm([0.0] * 20, [1.0] * 20)
    full = {"audio": torch.randn(2, 20, 15), "audio_mask": torch.ones(2, 15, dtype=torch.bool),
            "text": torch.randn(2, 5, 32), "fps": 24.0, "video": torch.randn(2, 48, 3, 8, 8),
            "ref_voice": torch.randn(2, 20, 7), "ref_mask": torch.ones(2, 7, dtype=torch.bool),
            "has_ref": torch.tensor([True, True])}
    fwd = build(full, TaskConfig(), norm, torch.Generator().manual_seed(0), "cpu", "tr2av")
    assert fwd.model_inputs()[6] is None and fwd.cond.ref_mask is None
    assert fwd.t_video.shape == (2, 3) and fwd.tokens == 2 * (15 + 3 * 16)
    padded = dict(full, audio_mask=torch.tensor([[True] * 15, [True] * 12 + [False] * 3]),
                  ref_mask=torch.tensor([[True] * 7, [True] * 4 + [False] * 3]))
    fwd = build(padded, TaskConfig(), norm, torch.Generator().manual_seed(0), "cpu", "tr2av")
    assert torch.equal(fwd.model_inputs()[6], padded["audio_mask"]) and torch.equal(fwd.cond.ref_mask, padded["ref_mask"])
    assert fwd.tokens == 15 + 12 + 2 * 3 * 16
    assert math.isfinite(float(fwd.audio.sum()))


def test_previews_run_the_reference_path_whether_or_not_the_batch_has_a_voice():
    """Under ZeRO-3 every rank must run the same modules: a preview batch without a reference voice still
    runs the reference path, closed, so a rank whose batch has one does not wait alone in a weight fetch."""
    from model.audio_norm import AudioNorm
    from train.preview import conditions

    norm = AudioNorm([0.0] * 20, [1.0] * 20)
    base = {"text": torch.randn(2, 5, 32), "audio": torch.randn(2, 20, 15)}
    without = conditions(base, norm, "cpu")
    with_voice = conditions(dict(base, ref_voice=torch.randn(2, 20, 7), ref_mask=torch.ones(2, 7, dtype=torch.bool),
                                 has_ref=torch.tensor([True, False])), norm, "cpu")
    assert without.ref_voice is not None and not bool(without.has_ref[0])
    assert with_voice.ref_voice.shape == (1, 20, 7) and bool(with_voice.has_ref[0])
    model = recorded_model()
    calls = []
    for ref in model.audio_ref:
        ref.register_forward_hook(lambda m, args, out: calls.append(1))
    with torch.no_grad():
        model(None, torch.randn(1, 20, 15), None, torch.tensor([500.0]), without)
    assert len(calls) == len(model.audio_ref)


def test_every_parameter_gets_its_initial_value_from_the_units():
    """A model built without PyTorch's default initialisation (meta device, or ZeRO-3 under
    `no_default_init`) and then given its units' values equals a plain seeded build: no parameter relies on
    a constructor's default."""
    from model import init

    original = torch.nn.Linear.reset_parameters
    with init.no_default_init():
        model = UniTalking(PRESETS["debug"])  # unseeded: its units draw from the global RNG, overwritten below
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    init.run(model.init_units(), 5)
    plain = dict(UniTalking(PRESETS["debug"], seed=5).named_parameters())
    assert all(torch.equal(p, plain[n]) for n, p in model.named_parameters())
    assert torch.nn.Linear.reset_parameters is original  # the defaults are back outside the block
