"""ffmpeg and ffprobe, always through argument lists (file names never reach a shell)."""
from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from fractions import Fraction

import ffmpeg
import numpy as np


class ProbeError(Exception):
    """ffprobe could not read the file; `reason` is a short code for the manifest."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def _rate(text: str | None) -> float:
    try:
        r = Fraction(text or "0/1")
        return float(r) if r.denominator else 0.0
    except (ValueError, ZeroDivisionError):
        return 0.0


def _rotation(stream: dict) -> int:
    for side in stream.get("side_data_list", []) or []:
        if "rotation" in side:
            return int(side["rotation"])
    rot = (stream.get("tags") or {}).get("rotate")
    return -int(rot) if rot else 0  # the legacy tag is clockwise, the display matrix counter-clockwise


def ffmpeg_said(line: str, path: str) -> str:
    """A line of ffmpeg's log without the component's address prefix ("[aac @ 0x55d0...]", new each run) or the
    file's path, so a manifest says the same wherever and whenever the file was read."""
    return re.sub(r"^\[[^\]]*\]\s*", "", line).replace(path, "<file>").strip()


def ffmpeg_log(stderr: bytes, path: str) -> list[str]:
    """Each line of an ffmpeg run's stderr, as ffmpeg_said gives it."""
    return [ffmpeg_said(ln, path) for ln in stderr.decode("utf-8", "replace").splitlines()]


STILL_CODECS = {"png", "bmp", "webp", "tiff", "jpeg2000"}  # pictures, not footage


def _seconds(value, unit) -> str | None:
    return None if value is None else f"{float(value * unit):.6f}"  # as ffprobe prints them


def streams_in_process(path: str) -> dict:
    """The fields of ffprobe's -show_streams -show_format answer that `probe` reads, from PyAV in this
    process: starting an ffprobe costs 0.1 CPU-s before it reads a byte, 4% of a worker's time on 5 s files.
    The rotation is that of the first decoded picture (the stream's display matrix, which PyAV does not
    expose on the stream)."""
    import av

    with av.open(path) as container:
        streams = []
        for s in container.streams:
            cc = s.codec_context
            d = {"codec_type": s.type, "codec_name": cc.codec.canonical_name if cc is not None else None,
                 "disposition": {"attached_pic": int(bool(s.disposition & av.stream.Disposition.attached_pic))},
                 "duration": _seconds(s.duration, s.time_base) if s.time_base else None,
                 "bit_rate": (cc.bit_rate if cc is not None else 0) or None, "tags": dict(s.metadata)}
            if s.type == "video":
                d.update(width=cc.width, height=cc.height, nb_frames=s.frames or None,
                         r_frame_rate=str(s.base_rate or "0/0"), avg_frame_rate=str(s.average_rate or "0/0"))
            elif s.type == "audio":
                d.update(sample_rate=cc.sample_rate, channels=cc.channels)
            streams.append(d)
        video = next((d for d in streams if d["codec_type"] == "video" and not d["disposition"]["attached_pic"]), None)
        if video is not None:
            index = next(k for k, d in enumerate(streams) if d is video)
            picture = next(container.decode(container.streams[index]))
            video["side_data_list"] = [{"rotation": picture.rotation}] if picture.rotation else []
        fmt = {"format_name": container.format.name, "bit_rate": container.bit_rate or None,
               "duration": _seconds(container.duration, 1e-6), "start_time": _seconds(container.start_time, 1e-6)}
    return {"streams": streams, "format": fmt}


def probe(path: str, in_process: bool = True) -> dict:
    """Streams, duration, frame rate and rotation of a media file, as flat manifest fields. Read in this
    process (`streams_in_process`); a file that PyAV cannot read goes to ffprobe, whose words say why."""
    if os.path.getsize(path) == 0:
        raise ProbeError("empty_file", "file has 0 bytes")
    try:
        if not in_process:
            raise ValueError("ffprobe asked for")
        info = streams_in_process(path)
    except Exception:  # noqa: BLE001 - whatever PyAV says, ffprobe says it in the words the manifests keep
        info = None
    try:
        info = info or ffmpeg.probe(path)
    except ffmpeg.Error as e:
        # every line ffprobe said (the cause, e.g. "moov atom not found", often comes before the last), without
        # the demuxer's address prefix or the file's path, so the manifest is the same wherever the file lies
        raw = (e.stderr or b"").decode("utf-8", "replace").splitlines()
        first = next((k for k, ln in enumerate(raw) if ln.startswith("[") or path in ln), len(raw))  # after the banner
        lines = [ffmpeg_said(ln, path) for ln in raw[first:]]
        said = "; ".join(dict.fromkeys(ln for ln in lines if ln)) or "ffprobe failed"
        raise ProbeError("unreadable", said[-300:]) from None
    streams = info.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"
                  and not (s.get("disposition") or {}).get("attached_pic")), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if audio is not None and not (int(audio.get("sample_rate") or 0) and int(audio.get("channels") or 0)):
        raise ProbeError("unreadable", "the audio stream has no sample rate or channels (not really audio)")
    if video is not None and not (int(video.get("width") or 0) and int(video.get("height") or 0)):
        raise ProbeError("unreadable", "the video stream has no picture size (not really video)")
    fmt = info.get("format", {})
    # seconds of content: a stream may start late (a cut from a broadcast starts at 10 s), and audio may
    # run past the pictures; what a video source holds is its video stream's length
    content = float(fmt.get("duration") or 0.0) - max(0.0, float(fmt.get("start_time") or 0.0))
    out = {
        "container": fmt.get("format_name"),
        "duration_s": max(0.0, content),
        "has_video": video is not None,
        "has_audio": audio is not None,
    }
    if video is not None:
        rot = _rotation(video)
        w, h = int(video.get("width") or 0), int(video.get("height") or 0)
        r_fps, avg_fps = _rate(video.get("r_frame_rate")), _rate(video.get("avg_frame_rate"))
        out.update(video_codec=video.get("codec_name"), width=w, height=h, rotation=rot,
                   display_width=h if rot % 180 else w, display_height=w if rot % 180 else h,
                   fps=avg_fps or r_fps, variable_fps=bool(r_fps and avg_fps and abs(r_fps - avg_fps) > 0.01),
                   num_frames=int(video.get("nb_frames") or 0))
        out["duration_s"] = float(video.get("duration") or 0.0) or out["duration_s"]
        # the video stream's bit rate (else the container's less the audio's) per pixel and frame: how many
        # bits the coder had for the picture
        rate = int(video.get("bit_rate") or 0) or max(
            0, int(fmt.get("bit_rate") or 0) - int((audio or {}).get("bit_rate") or 0))
        out["video_bits_per_pixel"] = round(rate / (w * h * out["fps"]), 5) if rate and out["fps"] else None
        fmt_name = fmt.get("format_name") or ""
        out["still_image"] = video.get("codec_name") in STILL_CODECS or fmt_name == "image2" or fmt_name.endswith("_pipe")
    if audio is not None:
        out.update(audio_codec=audio.get("codec_name"), audio_sample_rate=int(audio.get("sample_rate") or 0),
                   audio_channels=int(audio.get("channels") or 0))
    return out


def even_size(width: int, height: int, long_side: int, upscale: bool = False) -> tuple[int, int]:
    """(w, h) scaled so the long side is `long_side` (not above the source unless `upscale`), both even."""
    scale = long_side / max(width, height)
    if not upscale:
        scale = min(scale, 1.0)
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


@dataclass
class DecodeResult:
    frames_path: str  # raw RGB frames, analysis size, target fps
    audio_path: str  # raw s16le mono PCM at the target rate
    num_frames: int
    analysis_size: tuple[int, int]
    errors: str  # ffmpeg's complaints, as ffmpeg_said gives them


def decode(path: str, workdir: str, fps: float, sample_rate: int, analysis: tuple[int, int],
           threads: int = 0) -> DecodeResult:
    """Decode the whole source once; one ffmpeg process writes the analysis frames and the PCM audio.

    Frames and audio both start at t = 0 (padded if a stream starts late), so frame i and sample
    round(i * sample_rate / fps) are the same instant. No full-size copy is written: the clips that pass
    are cut from the source itself (cut_clip), one lossy generation after it. `threads`: the decoder's
    (0: ffmpeg's choice, a thread per core; on one thread a 720p decode took 12% less CPU time)."""
    frames_path = os.path.join(workdir, "frames.rgb")
    audio_path = os.path.join(workdir, "audio.s16")
    src = ffmpeg.input(path, **({"threads": threads} if threads else {}))
    aw, ah = analysis
    ana = src.video.filter("fps", fps=fps, start_time=0).filter("scale", aw, ah, flags="area")
    audio = src.audio.filter("aresample", sample_rate, **{"async": 1, "first_pts": 0}).filter(
        "aformat", channel_layouts="mono")
    outputs = ffmpeg.merge_outputs(
        ffmpeg.output(ana, frames_path, format="rawvideo", pix_fmt="rgb24"),
        ffmpeg.output(audio, audio_path, format="s16le", ar=sample_rate, ac=1),
    )
    args = outputs.global_args("-nostdin", "-v", "error", "-y").compile()
    proc = subprocess.run(args, capture_output=True)
    errors = "\n".join(ffmpeg_log(proc.stderr, path))
    if proc.returncode != 0 and not os.path.exists(frames_path):
        raise RuntimeError(f"ffmpeg decode failed: {errors.strip()[-400:]}")
    n = os.path.getsize(frames_path) // (aw * ah * 3) if os.path.exists(frames_path) else 0
    return DecodeResult(frames_path, audio_path, n, analysis, errors.strip())


class FrameReader:
    """Reads windows of the raw analysis frames without mapping the whole file (memory stays flat)."""

    def __init__(self, path: str, size: tuple[int, int], num_frames: int):
        self.path, (self.w, self.h), self.num_frames = path, size, num_frames
        self.frame_bytes = self.w * self.h * 3

    def read(self, start: int, count: int) -> np.ndarray:
        count = max(0, min(count, self.num_frames - start))
        with open(self.path, "rb") as f:
            f.seek(start * self.frame_bytes)
            buf = f.read(count * self.frame_bytes)
        return np.frombuffer(buf, np.uint8).reshape(count, self.h, self.w, 3)

    def windows(self, start: int, stop: int, size: int):
        for s in range(start, stop, size):
            yield s, self.read(s, min(size, stop - s))


def read_pcm(path: str) -> np.ndarray:
    """The decoded s16le audio as float32 in [-1, 1]."""
    if not os.path.exists(path):
        return np.zeros(0, np.float32)
    return np.fromfile(path, dtype="<i2").astype(np.float32) / 32768.0


CUT_LEAD_FRAMES = 12  # decoded before a clip and dropped, so that the fps filter settles on the same
# source frames as it did in the analysis decode (it anchors its grid at the first frame it is given)


def clip_seek_s(start_frame: int, fps: float) -> float:
    """Where cut_clip seeks in the source for a clip starting at analysis frame `start_frame`."""
    return (start_frame - min(start_frame, CUT_LEAD_FRAMES)) / fps


def cut_clip(source_path: str, pcm: np.ndarray, sample_rate: int, start_frame: int, num_frames: int, fps: float,
             size: tuple[int, int], crf: int, out_path: str, threads: int = 0) -> None:
    """Write one clip as mp4 straight from the source's span (display orientation, `size`, `fps`), with the
    exact PCM slice as its audio: the clip's pictures are one x264 generation after the source.

    The span is read from a seek point CUT_LEAD_FRAMES before the clip on the analysis decode's frame grid,
    then trimmed: frame k of the clip is analysis frame start_frame + k. The video is cut by the trim
    filter, not `-frames:v`, which would end the output at the last video frame and drop the audio still
    queued in the muxer."""
    lead, seek = min(start_frame, CUT_LEAD_FRAMES), clip_seek_s(start_frame, fps)
    pcm16 = (np.clip(pcm, -1, 1) * 32767).astype("<i2").tobytes()
    video = (f"fps={fps:g}:start_time=0,trim=start_frame={lead}:end_frame={lead + num_frames},setpts=PTS-STARTPTS,"
             f"scale={size[0]}:{size[1]}:flags=bicubic")
    limit = ["-threads", str(threads)] if threads else []  # decoder's, then x264's (0: one per core)
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", *limit, "-ss", f"{seek:.6f}", "-i", source_path,
           "-f", "s16le", "-ar", str(sample_rate), "-ac", "1", "-i", "pipe:0",
           "-map", "0:v:0", "-map", "1:a:0", "-vf", video,
           "-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf), "-pix_fmt", "yuv420p", *limit,
           "-g", str(max(1, int(round(fps)))), "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", out_path]
    subprocess.run(cmd, input=pcm16, check=True, capture_output=True)
