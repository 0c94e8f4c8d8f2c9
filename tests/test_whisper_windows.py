"""Whisper windows shared by several sources: how pieces are laid out, and how words come back to them.
Whisper itself is not run here (test_transcribe_align.py runs it); its segments are written by hand."""
from types import SimpleNamespace

import numpy as np

from pipeline.run.scheduler import source_tasks
from pipeline.stages.whisper_windows import Piece, hand_back, lay_out, pack_pieces
from pipeline.stages.worker_state import SourceScratch, new_clip
from records.rows import SourceRow

SR = 16000


def piece(start_s: float, seconds: float, source_seconds: float = 40.0) -> Piece:
    pcm = np.arange(int(source_seconds * SR), dtype=np.float32)  # each sample names its place in the source
    src = SourceRow(scratch=SourceScratch("", pcm=pcm))
    clip = new_clip(src, {"start_s": start_s, "end_s": start_s + seconds, "start_frame": 0, "num_frames": 1,
                          "fps": 25.0, "status": "candidate"})
    return Piece([clip], pcm, SR)


def word(start, end, text):
    return SimpleNamespace(start=start, end=end, word=text, probability=0.9)


def segment(words, text=None):
    return SimpleNamespace(start=words[0].start if words else 0.0, end=words[-1].end if words else 0.0,
                           words=words, text=text or "".join(w.word for w in words), avg_logprob=-0.2)


def test_pieces_fill_windows_in_order_with_gaps_and_keep_their_own_samples():
    pieces = [piece(1.0, 4.0), piece(10.0, 9.0), piece(0.0, 12.0), piece(5.0, 6.0)]
    windows = pack_pieces(pieces, share=True)
    assert [len(w) for w in windows] == [3, 1]  # 4 + 9 + 12 + 2 gaps fit 30 s; the 6 s piece does not
    audio, spans, places = lay_out(windows, SR)
    for p, a, b in places:  # each piece's place in what Whisper hears holds that piece's samples
        np.testing.assert_array_equal(audio[int(round(a * SR)):int(round(b * SR))], p.audio)
        assert p.audio[0] == p.start * SR
    assert spans[0]["start"] == 0.0 and spans[1]["start"] == spans[0]["end"]
    assert [len(w) for w in pack_pieces(pieces, share=False)] == [1, 1, 1, 1]


def test_words_go_back_to_their_piece_in_its_source_time_and_strays_are_heard_again():
    a, b, c = piece(2.0, 3.0), piece(7.0, 3.0), piece(20.0, 3.0)
    _, _, places = lay_out([[a, b, c]], SR)  # a: 0-3 s, b: 3.2-6.2, c: 6.4-9.4
    segments = [segment([word(0.5, 1.0, " one"), word(1.1, 2.0, " two"), word(3.4, 4.0, " three")]),
                segment([word(6.0, 6.9, " four")])]  # reaches back 0.4 s into the gap before c
    again = hand_back(segments, places)
    assert [w.word for s in a.segments for w in s.words] == [" one", " two"]
    assert a.segments[0].start == 2.5 and a.segments[0].end == 4.0  # seconds of a's source
    assert b.segments[0].text == "three" and abs(b.segments[0].words[0].start - 7.2) < 1e-9
    assert [w.word for s in c.segments for w in s.words] == [" four"]
    assert again == [c]


def test_a_piece_that_got_no_words_in_a_shared_window_is_heard_again_but_one_alone_is_not():
    a, b = piece(0.0, 3.0), piece(5.0, 3.0)
    _, _, places = lay_out([[a, b]], SR)
    assert hand_back([segment([word(0.2, 0.8, " hello")])], places) == [b]
    _, _, places = lay_out([[a], [b]], SR)
    assert hand_back([segment([word(0.2, 0.8, " hello")])], places) == []
    assert b.segments == []


def test_small_sources_are_grouped_up_to_a_count_and_a_size_and_big_ones_go_alone():
    mb = 2**20
    todo = [(f"s{k}", f"s{k}", size * mb) for k, size in enumerate([1, 1, 1, 40, 2, 2, 2, 2, 30, 3])]
    tasks = source_tasks(todo, most=3, group_mb=32)
    assert [[rel for _, rel, _ in t] for t in tasks] == [["s0", "s1", "s2"], ["s3"], ["s4", "s5", "s6"], ["s7", "s8"],
                                                         ["s9"]]
    assert [len(t) for t in source_tasks(todo, most=1, group_mb=32)] == [1] * len(todo)
