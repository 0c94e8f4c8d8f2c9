"""Light-ASD: the shipped official checkpoint (MIT) loads strictly into the project's network, whose state
dict has exactly the official names and shapes; a missing tensor is an error."""
from __future__ import annotations

import hashlib
import os

import pytest
import torch

from model.light_asd import SHIPPED_DIR, WEIGHT_FILE, LightASD, load_light_asd

# sha256 of weight/pretrain_AVA_CVPR.model in Junhua-Liao/Light-ASD (commit ed38c23)
OFFICIAL_SHA256 = "d44bc3ea7baa8e0946fa3921311714a630ed8b90a1928fab0dbe30d918909317"


def shipped() -> str:
    return os.path.join(SHIPPED_DIR, WEIGHT_FILE)


def test_the_shipped_file_is_the_official_checkpoint_with_its_licence():
    with open(shipped(), "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == OFFICIAL_SHA256
    with open(os.path.join(SHIPPED_DIR, "LICENSE"), encoding="utf-8") as f:
        text = f.read()
    assert text.startswith("MIT License") and "Liao Junhua" in text


def test_layout_matches_the_official_checkpoint_and_loads_strictly(tmp_path):
    official = torch.load(shipped(), map_location="cpu", weights_only=True)
    ours = LightASD().state_dict()
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in official.items()}
    assert len(official) == 192 and sum(v.numel() for k, v in official.items() if "num_batches" not in k) > 1e6
    net = load_light_asd()
    assert torch.equal(net.model.GRU.gru_backward.weight_hh_l0, official["model.GRU.gru_backward.weight_hh_l0"])
    broken = tmp_path / WEIGHT_FILE
    torch.save({k: v for k, v in official.items() if k != "lossAV.FC.bias"}, broken)
    with pytest.raises(RuntimeError, match="Missing key"):
        load_light_asd(str(broken))


def test_speaking_logits_have_one_value_per_frame():
    net = load_light_asd()
    g = torch.Generator().manual_seed(0)
    faces = torch.randint(0, 256, (2, 30, 112, 112), generator=g).float()
    mfcc = torch.randn(2, 120, 13, generator=g) * 10
    with torch.no_grad():
        v, a = net.embed_faces(faces), net.embed_audio(mfcc)
        logits = net.speaking_logits(v, a)
    assert v.shape == a.shape == (2, 30, 128) and logits.shape == (2, 30) and torch.isfinite(logits).all()


def test_temporal_convolutions_equal_the_official_conv3d():
    """The visual blocks compute their (k, 1, 1) convolutions as 2-D ones for speed: each must give what the
    official Conv3d gives with the same weights, including a stride in time."""
    from model.light_asd import temporal_conv

    net = load_light_asd()
    g = torch.Generator().manual_seed(0)
    for conv in (net.model.visualEncoder.block1.t_3, net.model.visualEncoder.block2.t_5):
        x = torch.randn(2, conv.in_channels, 11, 7, 9, generator=g)
        strided = torch.nn.Conv3d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=(2, 1, 1),
                                  padding=conv.padding, bias=False)
        strided.weight.data.copy_(conv.weight.data)
        with torch.no_grad():
            for c in (conv, strided):
                torch.testing.assert_close(temporal_conv(c, x), torch.nn.Conv3d.forward(c, x), rtol=1e-4, atol=1e-4)


def test_the_workers_face_encoder_computes_the_official_network():
    """CPU workers embed faces with Light-ASD's encoder re-laid frame by frame, batch norms folded, under ONNX
    Runtime (pipeline/checks/asd_runtime.py): on recorded-like input its embeddings are the network's own,
    for any number of frames."""
    from pipeline.checks.asd_runtime import FrameMajorFaceEncoder, OnnxFaceEncoder

    net = load_light_asd()
    g = torch.Generator().manual_seed(0)
    base = torch.randint(40, 220, (1, 1, 112, 112), generator=g).float()
    onnx = OnnxFaceEncoder(net.model.visualEncoder)
    for t in (5, 31):
        faces = (base + torch.randn(1, t, 112, 112, generator=g) * 20).clamp(0, 255).to(torch.uint8)
        with torch.no_grad():
            want = net.embed_faces(faces.float())[0]
            eager = FrameMajorFaceEncoder(net.model.visualEncoder).eval()(faces[0].float())
        got = onnx(faces[0].numpy())
        scale = want.abs().max().item()
        assert got.shape == want.shape == (t, 128) and scale > 0.1
        assert (eager - want).abs().max().item() < 1e-4 * scale and (got - want).abs().max().item() < 1e-4 * scale
