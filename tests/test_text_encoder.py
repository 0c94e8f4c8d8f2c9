"""umT5 wrapper: a tiny random encoder and tokenizer saved as a transformers folder, loaded back."""
from __future__ import annotations

import pytest

from model.text_encoder import TextEncoder, save_debug_text_encoder, speech_prompt
from sample_corpus.build import SENTENCES


def test_prompt_marks_the_speech():
    assert speech_prompt(" hello there ") == "<S>hello there<E>"
    assert speech_prompt("hi", "A woman in a studio.") == "A woman in a studio. <S>hi<E>"


def test_hidden_states_are_unpadded(tmp_path):
    path = save_debug_text_encoder(str(tmp_path / "umt5"), SENTENCES)
    enc = TextEncoder(path)
    short, long = enc.encode([speech_prompt("hi"), speech_prompt(SENTENCES[0])])
    assert short.shape[1] == long.shape[1] == 32 and short.shape[0] < long.shape[0]
    alone = enc.encode([speech_prompt("hi")])[0]
    assert alone.shape == short.shape and (alone - short).abs().max() < 1e-4  # padding changed nothing
    assert enc.encode(["word " * 2000])[0].shape[0] == 512


def test_missing_encoder_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        TextEncoder(str(tmp_path / "umt5-xxl"))


def test_fetch_plan_puts_every_file_where_its_loader_looks(tmp_path, capsys):
    from model import bigvgan, mmaudio_vae, syncnet, wan_vae
    from model.loading.fetch import main, plan
    from model.loading.offline_models import WHISPER_DIR
    from pipeline.checks.face_detectors import InsightFaceDetector

    targets = {item.name: item.target for item, _, _ in plan(str(tmp_path))}
    assert targets["wan2.2_vae"] == wan_vae.WEIGHT_FILES["2.2"] and targets["wan2.1_vae"] == wan_vae.WEIGHT_FILES["2.1"]
    assert targets["mmaudio_vae"] == mmaudio_vae.WEIGHT_FILE and targets["mmaudio_vocoder"] == bigvgan.WEIGHT_FILE
    assert targets["syncnet"] == "syncnet/" + syncnet.WEIGHTS_FILE and targets["whisper"] == WHISPER_DIR
    assert targets["insightface"] == "insightface/" + InsightFaceDetector.filename
    main(["--models-dir", str(tmp_path), "--dry-run", "--only", "wan2.2_vae"])
    assert "would fetch" in capsys.readouterr().out and not (tmp_path / "wan2.2").exists()
