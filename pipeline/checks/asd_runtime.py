"""Light-ASD's face encoder for CPU workers: the same function as `model.light_asd.VisualEncoder`, laid out
frame by frame with its batch norms folded into the convolutions and run by ONNX Runtime.

Every clip the offline sync scorer reads goes through this encoder, frame by frame at 25 fps; on a 76-frame
track and one core of the development machine, PyTorch's eager mode took 13.8 ms a frame, ONNX Runtime 7-8
(the sync stage before and after: README, `benchmarks/throughput.py`). The network itself stays in
`model/light_asd.py`, loaded strictly from the official checkpoint; this module only rewrites what that
network computes, and is built from it at setup.
"""
from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from model.light_asd import FACE_MEAN, FACE_STD, VisualBlock, VisualEncoder


def folded(conv: nn.Conv3d, bn: nn.BatchNorm3d) -> tuple[torch.Tensor, torch.Tensor]:
    """A bias-free convolution followed by an inference-mode batch norm, as one convolution with a bias."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    weight = conv.weight * scale.view(-1, *([1] * (conv.weight.dim() - 1)))
    return weight.detach(), (bn.bias - bn.running_mean * scale).detach()


class FrameMajorBlock(nn.Module):
    """One visual block on (T, C, H, W): spatial (1, k, k) convolutions as 2-D ones over the frames, temporal
    (k, 1, 1) ones as 2-D convolutions over (time, pixels)."""

    def __init__(self, block: VisualBlock):
        super().__init__()
        self.stride = block.s_3.stride[1]
        for name in ("s_3", "s_5", "t_3", "t_5", "last"):
            w, b = folded(getattr(block, name), getattr(block, f"bn_{name}"))
            w = w[..., 0] if name.startswith("t") else w[:, :, 0]  # t: (O, I, k, 1); s: (O, I, k, k); last: 1x1
            self.register_buffer(f"{name}_w", w.contiguous())
            self.register_buffer(f"{name}_b", b.contiguous())

    def temporal(self, x: torch.Tensor, name: str) -> torch.Tensor:
        t, c, h, w = x.shape
        k = getattr(self, f"{name}_w").shape[2]
        y = F.conv2d(x.permute(1, 0, 2, 3).reshape(1, c, t, h * w), getattr(self, f"{name}_w"),
                     getattr(self, f"{name}_b"), padding=(k // 2, 0))
        return F.relu(y).reshape(-1, t, h, w).permute(1, 0, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (T, C, H, W)
        a = F.relu(F.conv2d(x, self.s_3_w, self.s_3_b, stride=self.stride, padding=1))
        b = F.relu(F.conv2d(x, self.s_5_w, self.s_5_b, stride=self.stride, padding=2))
        return F.relu(F.conv2d(self.temporal(a, "t_3") + self.temporal(b, "t_5"), self.last_w, self.last_b))


class FrameMajorFaceEncoder(nn.Module):
    """(T, 112, 112) grey 0-255 -> (T, 128): Light-ASD's `embed_faces` for one face track."""

    def __init__(self, encoder: VisualEncoder):
        super().__init__()
        self.blocks = nn.ModuleList(FrameMajorBlock(b) for b in (encoder.block1, encoder.block2, encoder.block3))

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        x = ((faces / 255 - FACE_MEAN) / FACE_STD)[:, None]
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i < 2:
                x = F.max_pool2d(x, 3, 2, 1)
        return x.amax(dim=(2, 3))


class OnnxFaceEncoder:
    """The frame-major encoder exported to ONNX in memory and run by ONNX Runtime on `threads` threads."""

    def __init__(self, encoder: VisualEncoder, threads: int = 1):
        import warnings

        import onnxruntime as ort

        module = FrameMajorFaceEncoder(encoder).eval()
        buf = io.BytesIO()
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter: no onnxscript needed
            torch.onnx.export(module, (torch.zeros(8, 112, 112),), buf, input_names=["faces"],
                              output_names=["embeddings"], dynamic_axes={"faces": {0: "t"}, "embeddings": {0: "t"}},
                              opset_version=17, dynamo=False)
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        self.session = ort.InferenceSession(buf.getvalue(), options, providers=["CPUExecutionProvider"])

    def __call__(self, faces: np.ndarray) -> torch.Tensor:
        """(T, 112, 112) grey faces -> (T, 128)."""
        return torch.from_numpy(self.session.run(None, {"faces": np.asarray(faces, np.float32)})[0])


def face_encoder(net, device: str, threads: int = 1):
    """What embeds a face track: ONNX Runtime on a CPU, the network itself on a GPU (or where the export
    fails, with a warning: a torch without the TorchScript exporter)."""
    if device == "cpu":
        try:
            return OnnxFaceEncoder(net.model.visualEncoder, threads)
        except Exception as e:  # the eager network computes the same, only slower
            import warnings

            warnings.warn(f"Light-ASD's face encoder runs in eager PyTorch (ONNX export failed: {e})")
    return lambda faces: net.embed_faces(torch.from_numpy(np.ascontiguousarray(faces)).float()[None].to(device))[0]
