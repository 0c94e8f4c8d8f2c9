"""What Whisper hears: clips laid into 30 s windows, and its words handed back to the clips they belong to.

Whisper's encoder always hears 30 s: a 3 s clip costs it what 30 s do. Neighbouring clips of a source
share a window (`pack_windows`). With a language named for the run, windows of several short sources share
one too, laid end to end with a short silence between them, as faster-whisper's own VAD filter joins speech
regions. On the 53 clips of 49 frames of both real-footage collections that reached Whisper, 12 windows
were heard instead of 32; against the labelled transcripts (16 clips) the word error rate was 0.246 either
way; 18 of the 53 transcripts differ, mostly by a word cut at the clip's edge. A language detected per
window would be one window's, so without --language every source keeps its own windows."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.stages.base import Record

WINDOW_S = 30.0  # what Whisper's encoder hears at once
SEGMENT_TIME_STEP_S = 0.02  # Whisper's timestamp resolution
GAP_S = 0.2  # silence between pieces of one window: 1 and 2 s made Whisper skip whole pieces after it
# a word reaching this far past its piece (across the gap into the next) is not trusted to be its own; a
# word at a piece's edge, cut by the clip, often reaches into the gap (0.1 s made a third of the pieces
# of the real-footage set be heard again)
STRAY_S = 0.3


def pack_windows(clips: list[Record]) -> list[list[Record]]:
    """Clips (sorted by start) in runs whose span, first start to last end, fits one Whisper window."""
    windows: list[list[Record]] = []
    for c in clips:
        if windows and c["end_s"] - windows[-1][0]["start_s"] <= WINDOW_S:
            windows[-1].append(c)
        else:
            windows.append([c])
    return windows


@dataclass
class Word:
    start: float
    end: float
    word: str
    probability: float


@dataclass
class ClipSegment:
    """A Whisper segment, or the part of one that belongs to a clip: its words and their text."""
    start: float
    end: float
    text: str
    words: list
    avg_logprob: float


@dataclass
class Piece:
    """One window of one source's clips: the span of its audio Whisper hears, and what it heard there."""
    clips: list[Record]
    pcm: np.ndarray
    """The source's whole audio."""
    sample_rate: int
    segments: list[ClipSegment] = field(default_factory=list)
    """What Whisper heard in it, in the source's time."""
    shared_with: int = 1
    """How many pieces shared its Whisper window (1: it had one of its own)."""

    @property
    def start(self) -> float:
        return self.clips[0]["start_s"]

    @property
    def audio(self) -> np.ndarray:
        sr = self.sample_rate
        return self.pcm[int(self.start * sr):int(self.clips[-1]["end_s"] * sr)]


def pack_pieces(pieces: list[Piece], share: bool) -> list[list[Piece]]:
    """Pieces in windows: each alone, or (`share`) as many as fit one window in order, with gaps between."""
    if not share:
        return [[p] for p in pieces]
    windows: list[list[Piece]] = []
    length = 0.0
    for p in pieces:
        seconds = len(p.audio) / p.sample_rate
        if windows and length + GAP_S + seconds <= WINDOW_S:
            windows[-1].append(p)
            length += GAP_S + seconds
        else:
            windows.append([p])
            length = seconds
    return windows


def lay_out(windows: list[list[Piece]], sample_rate: int) -> tuple[np.ndarray, list[dict], list[tuple[Piece, float, float]]]:
    """The audio Whisper is given (every window end to end), each window's span in it (seconds), and each
    piece's place in it (piece, start, end)."""
    parts, spans, places, at = [], [], [], 0
    gap = np.zeros(int(round(GAP_S * sample_rate)), np.float32)
    for window in windows:
        first = at
        for k, p in enumerate(window):
            if k:
                parts.append(gap)
                at += len(gap)
            audio = p.audio.astype(np.float32, copy=False)
            places.append((p, at / sample_rate, (at + len(audio)) / sample_rate))
            parts.append(audio)
            at += len(audio)
            p.shared_with = len(window)
        spans.append({"start": first / sample_rate, "end": at / sample_rate})
    return (np.concatenate(parts) if parts else np.zeros(0, np.float32)), spans, places


def hand_back(segments: list, places: list[tuple[Piece, float, float]]) -> list[Piece]:
    """Give each piece the segments (their words, cut where they cross pieces) heard inside it, moved to its
    source's time: a word goes to the piece nearest its middle, a segment without words to the piece it
    overlaps most. Returns the pieces whose words cannot be trusted: a word reaching past its piece by more
    than STRAY_S, or no word at all in a piece that shared its window (Whisper skips a piece now and then)."""
    def nearest(t: float) -> int:
        return min(range(len(places)), key=lambda k: max(places[k][1] - t, t - places[k][2], 0.0))

    for p, _, _ in places:
        p.segments = []
    doubtful = set()
    for s in segments:
        if not s.words:
            k = max(range(len(places)), key=lambda k: min(s.end, places[k][2]) - max(s.start, places[k][1]))
            p, t0, t1 = places[k]
            if min(s.end, t1) - max(s.start, t0) > 0:
                shift = p.start - t0
                p.segments.append(ClipSegment(max(s.start, t0) + shift, min(s.end, t1) + shift, s.text, [], s.avg_logprob))
            continue
        groups: dict[int, list] = {}
        for w in s.words:
            groups.setdefault(nearest((w.start + w.end) / 2), []).append(w)
        for k, words in groups.items():
            p, t0, t1 = places[k]
            if any(w.start < t0 - STRAY_S or w.end > t1 + STRAY_S for w in words):
                doubtful.add(k)
            shift = p.start - t0
            moved = [Word(w.start + shift, w.end + shift, w.word, w.probability) for w in words]
            text = s.text if len(words) == len(s.words) else "".join(w.word for w in words)
            p.segments.append(ClipSegment(moved[0].start, moved[-1].end, text.strip(), moved, s.avg_logprob))
    doubtful |= {k for k, (p, _, _) in enumerate(places) if p.shared_with > 1 and not any(s.words for s in p.segments)}
    return [places[k][0] for k in sorted(doubtful) if places[k][0].shared_with > 1]


def clip_segments(segments: list, c: Record) -> list[ClipSegment]:
    """The parts of a window's segments that belong to clip `c`: a word belongs to the clip that holds its
    middle, a segment without words to each clip it overlaps by more than Whisper's 20 ms time step; a
    segment whose words all belong to `c` is kept as Whisper gave it."""
    lo, hi = c["start_s"], c["end_s"]
    out = []
    for s in segments:
        words = [w for w in (s.words or []) if lo <= (w.start + w.end) / 2 < hi]
        if s.words and len(words) == len(s.words):
            out.append(s)
        elif s.words:
            if not words:
                continue
            text = "".join(w.word for w in words).strip()
            out.append(ClipSegment(max(s.start, words[0].start), min(s.end, words[-1].end), text, words, s.avg_logprob))
        elif min(s.end, hi) - max(s.start, lo) > SEGMENT_TIME_STEP_S:
            out.append(ClipSegment(max(s.start, lo), min(s.end, hi), s.text.strip(), [], s.avg_logprob))
    return out
