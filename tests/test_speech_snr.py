"""WADA-SNR (pipeline/checks/speech_snr.py) on real read speech, clean and under added white noise and a recorded
music loop (pygame's example house_lo.ogg, installed --no-deps by scripts/install.sh)."""
from __future__ import annotations

import glob
import os

import numpy as np
import pytest

from pipeline.checks.speech_snr import speech_snr_db
from tests.conftest import REAL_FOOTAGE
from tests.test_real_footage import load_benchmark

pytestmark = pytest.mark.skipif(not REAL_FOOTAGE, reason="REAL_FOOTAGE does not name the real-footage folder")


def test_speech_snr_falls_with_noise_and_music_under_read_speech(footage):
    derived = load_benchmark("derived_cases")
    music = derived.pcm_of(derived.music_file()).astype(np.float64)
    noise = np.random.default_rng(0).standard_normal(16000 * 10)
    wavs = sorted(glob.glob(os.path.join(footage, "speech", "*.wav")))
    assert len(wavs) >= 3
    for path in wavs:
        voice = derived.pcm_of(path).astype(np.float64)
        clean = speech_snr_db(voice, 16000)
        noisy = [speech_snr_db(derived.mix(voice, noise, db), 16000) for db in (10, 3, 0)]
        assert clean > 20, (path, clean)
        assert noisy[0] > noisy[1] > noisy[2] and noisy[1] < 5, (path, noisy)
        # the loop's quiet moments between beats do not hide it (a floor-of-quiet-windows estimate read a
        # music bed at 0 dB under recorded speakers as 6.7-9.8 dB)
        assert speech_snr_db(derived.mix(voice, music, 3), 16000) < 10, path
