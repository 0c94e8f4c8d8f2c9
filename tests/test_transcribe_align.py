"""The whisperx alignment path, with a tiny random wav2vec2 CTC model saved in the same format as a real
one (no aligner can be downloaded here): the stage must load it from models/align/<lang>/, use it, say so,
and keep word times inside the clip."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from pipeline.config import PipelineConfig
from pipeline.stages.transcribe import TranscribeStage
from pipeline.stages.worker_state import SourceScratch, new_clip
from records.rows import SourceRow
from sample_corpus import media as cm
from sample_corpus.build import SENTENCES


def save_tiny_aligner(path: str) -> None:
    import torch
    from transformers import (Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC,
                              Wav2Vec2Processor)

    os.makedirs(path, exist_ok=True)
    letters = ["<pad>", "<s>", "</s>", "<unk>", "|"] + list("abcdefghijklmnopqrstuvwxyz'")
    with open(os.path.join(path, "vocab.json"), "w") as f:
        json.dump({c: i for i, c in enumerate(letters)}, f)
    tokenizer = Wav2Vec2CTCTokenizer(os.path.join(path, "vocab.json"), word_delimiter_token="|")
    extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, do_normalize=True, return_attention_mask=False)
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(path)
    torch.manual_seed(0)
    config = Wav2Vec2Config(vocab_size=len(letters), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=64, conv_dim=(16,) * 7, num_conv_pos_embeddings=16,
                            num_conv_pos_embedding_groups=2, pad_token_id=0)
    Wav2Vec2ForCTC(config).save_pretrained(path)


@pytest.mark.integration
def test_alignment_model_is_used_when_present(models_dir, tmp_path):
    models = tmp_path / "models"
    for sub in ("whisper-base", "nltk_data"):
        shutil.copytree(os.path.join(models_dir, sub), models / sub)
    save_tiny_aligner(str(models / "align" / "en"))
    speech = cm.pad_to(cm.speak(SENTENCES[1]), 121 / 24, lead_s=0.2)
    source = SourceRow(scratch=SourceScratch("", pcm=speech, speech=[(0.2, 4.8)]))
    clip = new_clip(source, {"start_frame": 0, "num_frames": 121, "fps": 24.0, "start_s": 0.0, "end_s": 121 / 24,
                             "status": "candidate"})
    stage = TranscribeStage(PipelineConfig.of(input="x", output="y", models_dir=str(models)))
    stage.setup()
    stage([clip])
    assert clip["word_timing_source"] == "whisperx_align:en"
    assert "window" in clip["transcript"].lower()
    words = json.loads(clip["words_json"])
    assert words and all(0.0 <= w["start"] <= w["end"] <= 121 / 24 for w in words if w["start"] is not None)
    assert clip["seconds_transcribe"] > 0


@pytest.mark.integration
def test_neighbouring_clips_share_one_whisper_window_and_keep_their_own_words(models_dir):
    """Two clips back to back, each speaking its own sentence: Whisper hears them in one 30 s window (its
    encoder costs the same for 3 s as for 30 s), and each clip gets the words said inside it, timed
    inside it."""
    import jiwer
    import numpy as np

    seconds = 121 / 24
    pcm = np.concatenate([cm.pad_to(cm.speak(SENTENCES[k]), seconds, lead_s=0.2) for k in (2, 3)])
    source = SourceRow(scratch=SourceScratch("", pcm=pcm, speech=[(0.2, 2 * seconds - 0.2)]))
    clips = [new_clip(source, {"start_frame": 121 * k, "num_frames": 121, "fps": 24.0, "start_s": k * seconds,
                               "end_s": (k + 1) * seconds, "status": "candidate"}) for k in (0, 1)]
    stage = TranscribeStage(PipelineConfig.of(input="x", output="y", models_dir=models_dir, language="en"))
    stage.setup()
    heard = []
    transcribe = stage.batched.transcribe
    stage.batched.transcribe = lambda audio, **kw: heard.append(kw["clip_timestamps"]) or transcribe(audio, **kw)
    stage(clips)
    assert heard == [[{"start": 0.0, "end": pytest.approx(2 * seconds, abs=1 / 16000)}]]
    norm = lambda t: " ".join("".join(ch for ch in t.lower() if ch.isalnum() or ch == " ").split())
    for clip, k in zip(clips, (2, 3)):
        assert jiwer.wer(norm(SENTENCES[k]), norm(clip["transcript"])) <= 0.2, clip["transcript"]
        words = json.loads(clip["words_json"])
        assert words and all(0.0 <= w["start"] <= w["end"] <= seconds for w in words)


@pytest.mark.integration
def test_short_sources_of_one_group_share_a_whisper_window_and_keep_their_own_words(models_dir):
    """Three short sources of a worker's group, with the language named: Whisper hears them in one window
    (one encoder pass instead of three), and each source's clip gets its own sentence, timed in its own
    source. Without a language, each source is heard alone (a window's detected language is one source's)."""
    import jiwer

    seconds = 73 / 25
    clips = []
    for k in (1, 2, 3):
        pcm = cm.pad_to(cm.speak(SENTENCES[k]), seconds + 1.0, lead_s=0.5)
        source = SourceRow(scratch=SourceScratch("", pcm=pcm, speech=[(0.5, seconds)]))
        clips.append(new_clip(source, {"start_frame": 12, "num_frames": 73, "fps": 25.0, "start_s": 12 / 25,
                                       "end_s": 85 / 25, "status": "candidate"}))
    norm = lambda t: " ".join("".join(ch for ch in t.lower() if ch.isalnum() or ch == " ").split())
    for language, windows in (("en", [1]), ("", [1, 1, 1])):
        stage = TranscribeStage(PipelineConfig.of(input="x", output="y", models_dir=models_dir, language=language))
        stage.setup()
        heard = []
        transcribe = stage.batched.transcribe
        stage.batched.transcribe = lambda audio, **kw: heard.append(kw["clip_timestamps"]) or transcribe(audio, **kw)
        for c in clips:
            c.update(status="candidate")
        stage(clips)
        assert [len(spans) for spans in heard] == windows
        for clip, k in zip(clips, (1, 2, 3)):
            assert clip["whisper_window_pieces"] == (3 if language else 1)
            said = " ".join(norm(SENTENCES[k]).split()[:len(norm(clip["transcript"]).split())])
            assert jiwer.wer(said, norm(clip["transcript"])) <= 0.25, (SENTENCES[k], clip["transcript"])
            words = json.loads(clip["words_json"])
            assert words and all(0.0 <= w["start"] <= w["end"] <= seconds for w in words)
