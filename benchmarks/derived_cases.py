"""Derived cases of recorded speakers, one per data filter, each with the rejection it must get:

- frozen: the first frame held for the whole clip under the original voice (a photo with a voice-over);
- subtitles: a two-line caption burnt in under the face, as broadcast subtitles are;
- blurred: a Gaussian blur of sigma 2% of the frame width (out of focus, or upscaled from a small picture);
- blocky: re-encoded with 0.002 bits per pixel and frame (heavy compression; x264 cannot go below about
  1 kbit/s, so a 160 px recording gets 0.0064);
- upscaled: shrunk to a quarter of its width and scaled back up (bicubic), as footage upscaled for upload;
- noisy: white noise added to the voice at -3 dB SNR (speech power over noise power);
- music: a recorded house-music loop under the voice at 3 dB SNR (a loud music bed). Labelled `any`: WADA-SNR
  reads a music bed as 2.3-9 dB even when the music is 6 dB louder than the voice, inside the range of
  in-sync in-the-wild interviews (-2.9-30 dB), so the speech-SNR threshold validated by speaker (2.5 dB)
  cannot catch it without losing those; at 3 dB white noise reads -0.7-4, at -3 dB -5.8 to -2.2.

    python benchmarks/derived_cases.py ../shared/real_footage OUT [--names face_2,lrs2_00004]

OUT receives videos/ (the originals as links, and the derived files) and labels.json in the layout of
../shared/real_footage, so benchmarks/real_footage.py and the tests run on it as they do on the originals.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from model.packaged import packaged_file  # noqa: E402

DEFAULT_NAMES = ("face_2", "face_5", "lrs2_00004")
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
MUSIC = ("pygame", "examples/data/house_lo.ogg")  # a recorded music loop inside the pygame wheel (--no-deps)
EXPECT = {  # case -> the reject reason it must get (stage:reason)
    "frozen": "visual:static_video",
    "subtitles": "text:burnt_in_text",
    "blurred": "visual:blurred_face",
    "blocky": "probe:low_bitrate",
    "upscaled": "visual:low_quality",
    "noisy": "audio:speech_snr",
    "music": None,  # not caught by any filter at its validated threshold (above)
}


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def frozen(src: str, out: str) -> None:
    seconds = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", src],
                             capture_output=True, text=True, check=True).stdout.strip()
    ffmpeg("-i", src, "-filter_complex", "[0:v]trim=end_frame=1,loop=loop=-1:size=1,setpts=N/25/TB[v]", "-map", "[v]",
           "-map", "0:a", "-t", seconds, "-r", "25", "-c:v", "libx264", "-crf", "18", "-c:a", "copy", out)


def subtitles(src: str, out: str) -> None:
    lines = ["and this is what we have been", "waiting for all along, he said"]
    draw = ",".join(f"drawtext=fontfile={FONT}:text='{t}':fontcolor=white:fontsize=h/22:box=1:boxcolor=black@0.6:"
                    f"boxborderw=6:x=(w-text_w)/2:y=h*{0.80 + 0.08 * k:.2f}" for k, t in enumerate(lines))
    ffmpeg("-i", src, "-vf", draw, "-c:v", "libx264", "-crf", "18", "-c:a", "copy", out)


def size_of(src: str) -> tuple[int, int]:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height",
                          "-of", "csv=p=0", src], capture_output=True, text=True, check=True).stdout
    w, h = out.strip().split(",")[:2]
    return int(w), int(h)


def blurred(src: str, out: str) -> None:
    """A Gaussian blur of sigma 2% of the frame width (far out of focus, or upscaled from a twentieth of the size)."""
    ffmpeg("-i", src, "-vf", f"gblur=sigma={size_of(src)[0] / 50:.2f}", "-c:v", "libx264", "-crf", "18", "-c:a", "copy", out)


def blocky(src: str, out: str, bits_per_pixel: float = 0.002) -> None:
    """Re-encoded with 0.002 bits per pixel and frame (about 36 kbit/s at 844x844 and 25 fps)."""
    w, h = size_of(src)
    rate = f"{max(1, int(bits_per_pixel * w * h * 25 / 1000))}k"
    ffmpeg("-i", src, "-c:v", "libx264", "-b:v", rate, "-maxrate", rate, "-bufsize", rate, "-c:a", "copy", out)


def upscaled(src: str, out: str, factor: int = 4) -> None:
    """Shrunk to 1/4 of its width and scaled back up with a bicubic filter (detail lost, size kept)."""
    w, h = size_of(src)
    small = f"{max(2, w // factor // 2 * 2)}:{max(2, h // factor // 2 * 2)}"
    ffmpeg("-i", src, "-vf", f"scale={small},scale={w}:{h}:flags=bicubic", "-c:v", "libx264", "-crf", "18", "-c:a",
           "copy", out)


def pcm_of(src: str) -> np.ndarray:
    """16 kHz mono float samples of a file's audio."""
    return np.frombuffer(subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", src, "-ac", "1", "-ar", "16000",
                                         "-f", "f32le", "-"], capture_output=True, check=True).stdout, np.float32)


def noisy(src: str, out: str, snr_db: float = -3.0, seed: int = 0) -> None:
    """White noise at `snr_db` below the voice's mean power (over the whole recording), muxed with the picture."""
    pcm = pcm_of(src)
    noise = np.random.default_rng(seed).standard_normal(len(pcm)).astype(np.float32)
    with_bed(src, out, pcm, noise, snr_db)


def music_bed(src: str, out: str, snr_db: float = 3.0) -> None:
    """A recorded house-music loop (pygame's example house_lo.ogg) looped under the voice at `snr_db`."""
    pcm = pcm_of(src)
    music = pcm_of(music_file())
    with_bed(src, out, pcm, music, snr_db)


def music_file() -> str:
    path = packaged_file(None, "", *MUSIC)
    if path is None:
        raise FileNotFoundError(f"{MUSIC[1]} not found: pip install --no-deps pygame==2.6.1 (scripts/install.sh does)")
    return path


def mix(voice: np.ndarray, bed: np.ndarray, snr_db: float) -> np.ndarray:
    """The voice plus `bed` (looped or cut to its length) scaled to `snr_db` below the voice's mean power."""
    bed = np.resize(bed, len(voice))
    return voice + bed * np.sqrt(np.mean(voice.astype(np.float64) ** 2) / np.mean(bed.astype(np.float64) ** 2)
                                 / 10 ** (snr_db / 10))


def with_bed(src: str, out: str, pcm: np.ndarray, bed: np.ndarray, snr_db: float) -> None:
    """`mix` of the voice and `bed`, muxed with the original picture."""
    wav = out + ".f32"
    np.clip(mix(pcm, bed, snr_db), -1, 1).astype(np.float32).tofile(wav)
    ffmpeg("-i", src, "-f", "f32le", "-ar", "16000", "-ac", "1", "-i", wav, "-map", "0:v", "-map", "1:a", "-c:v", "copy",
           "-c:a", "aac", out)
    os.remove(wav)


MAKERS = {"frozen": frozen, "subtitles": subtitles, "blurred": blurred, "blocky": blocky, "upscaled": upscaled,
          "noisy": noisy, "music": music_bed}


def build(footage: str, out: str, names=DEFAULT_NAMES) -> dict:
    """The originals (linked) and their derived cases under out/videos, with out/labels.json."""
    labels = json.load(open(os.path.join(footage, "labels.json"), encoding="utf-8"))
    os.makedirs(os.path.join(out, "videos"), exist_ok=True)
    os.makedirs(os.path.join(out, "speech"), exist_ok=True)
    derived = {}
    for name in names:
        src = os.path.abspath(os.path.join(footage, "videos", f"{name}.mp4"))
        link = os.path.join(out, "videos", f"{name}.mp4")
        if not os.path.lexists(link):
            os.symlink(src, link)
        derived[f"{name}.mp4"] = labels[f"{name}.mp4"]
        for case, make in MAKERS.items():
            target = os.path.join(out, "videos", f"{name}__{case}.mp4")
            if not os.path.exists(target):
                make(src, target)
            derived[f"{name}__{case}.mp4"] = {"expect": "reject" if EXPECT[case] else "any", "reason": EXPECT[case],
                                              "case": case,
                                              "why": (make.__doc__ or case).strip().split("\n")[0],
                                              "transcript": labels[f"{name}.mp4"].get("transcript", "")}
    with open(os.path.join(out, "labels.json"), "w", encoding="utf-8") as f:
        json.dump(derived, f, indent=1)
    with open(os.path.join(out, "speech", "transcripts.json"), "w", encoding="utf-8") as f:
        json.dump({}, f)
    return derived


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("footage")
    p.add_argument("out")
    p.add_argument("--names", default=",".join(DEFAULT_NAMES))
    a = p.parse_args()
    for k, v in build(a.footage, a.out, a.names.split(",")).items():
        print(f"{k:40s} {v.get('reason', 'accept')}")
