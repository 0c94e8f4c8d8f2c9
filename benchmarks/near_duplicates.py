"""Calibrate the near-duplicate fingerprints: every video of DIR against copies of itself and against every
other video of DIR.

    python benchmarks/near_duplicates.py ../shared/real_footage/videos

Copies: an mp4 at a third of the size (crf 35, 48 kb/s AAC), and mkv files (crf 34) whose sound is delayed
by 0, 60 and 120 ms. Prints each copy's picture bit errors and loudness correlation (which must pass the
thresholds), the closest other file's (which must fail one), and how many decisions were wrong."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipeline.checks import fingerprint as fp  # noqa: E402

FPS, RATE, WIDTH, HEIGHT = 24.0, 16000, 128, 96


def fingerprint_of(path: str) -> fp.Fingerprint:
    """Decode small frames and 16 kHz audio with ffmpeg, as the decode stage would, and fingerprint them."""
    common = ["ffmpeg", "-nostdin", "-v", "error", "-i", path]
    raw = subprocess.run(common + ["-vf", f"fps={FPS},scale={WIDTH}:{HEIGHT}", "-f", "rawvideo", "-pix_fmt", "rgb24",
                                   "-"], capture_output=True, check=True).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, HEIGHT, WIDTH, 3)
    pcm = np.frombuffer(subprocess.run(common + ["-vn", "-af", f"aresample={RATE}:async=1:first_pts=0", "-ac", "1",
                                                 "-f", "s16le", "-"],
                                       capture_output=True, check=True).stdout, "<i2").astype(np.float32) / 32768
    pictures = fp.PictureHasher(len(frames), FPS)
    for i, frame in enumerate(frames):
        pictures.visit(i, frame)
    return fp.Fingerprint(len(frames) / FPS, pictures.hashes(), fp.loudness_curve(pcm, RATE))


COPIES = {"mp4 1/3": ["-vf", "scale=trunc(iw/6)*2:-2", "-crf", "35", "-b:a", "48k"],
          **{f"mkv +{ms}ms": ["-af", f"adelay={ms}:all=1", "-crf", "34", "-b:a", "48k"] for ms in (0, 60, 120)}}


def copy_of(path: str, out: str, args: list[str]) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", path, *args, "-c:v", "libx264", "-c:a", "aac", out],
                   check=True)


def measures(a: fp.Fingerprint, b: fp.Fingerprint) -> str:
    same, _ = fp.same_recording(a, b)
    pic, snd = fp.picture_bit_errors(a.video, b.video), fp.loudness_correlation(a.audio, b.audio)
    return f"{pic if pic is not None else float('nan'):.3f}/{snd if snd is not None else float('nan'):.2f}{'=' if same else ' '}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir")
    a = p.parse_args()
    names = sorted(n for n in os.listdir(a.dir) if n.endswith(".mp4"))
    prints = {}
    for n in names:
        try:
            prints[n] = fingerprint_of(os.path.join(a.dir, n))
        except (subprocess.CalledProcessError, ValueError):
            print(f"{n}: no picture or voice to fingerprint, left out")
    names = [n for n in names if n in prints and len(prints[n].video) and len(prints[n].audio)]
    print(f"{'file':36s} " + " ".join(f"{c:>12s}" for c in COPIES) + "   closest other file"
          "\n(picture bit errors / loudness correlation; = marks 'same recording')")
    missed, fooled, queries = 0, 0, []
    with tempfile.TemporaryDirectory() as tmp:
        for n in [n for n in names if "__" not in n]:  # originals; derived files are compared as others
            cells = []
            for label, args in COPIES.items():
                out = os.path.join(tmp, "copy" + (".mkv" if label.startswith("mkv") else ".mp4"))
                copy_of(os.path.join(a.dir, n), out, args)
                c = fingerprint_of(out)
                queries.append((f"{n} {label}", c))
                missed += not fp.same_recording(prints[n], c)[0]
                cells.append(measures(prints[n], c))
            score = lambda m: (fp.loudness_correlation(prints[n].audio, prints[m].audio) or -1) - \
                (fp.picture_bit_errors(prints[n].video, prints[m].video) or 0)
            m = max((m for m in names if m != n), key=score)
            fooled += fp.same_recording(prints[n], prints[m])[0]
            print(f"{n[:36]:36s} " + " ".join(f"{c:>12s}" for c in cells) + f"   {measures(prints[n], prints[m])} {m}")
    originals = sum("__" not in n for n in names)
    print(f"\n{originals} originals: {missed} of {originals * len(COPIES)} copies missed; "
          f"{fooled} files taken for the same recording as their closest other file")
    register_against_scan(prints, queries + [(n, prints[n]) for n in names if "__" in n])


def register_against_scan(prints: dict, queries: list) -> None:
    """The run's register (an index of picture hashes) holding the originals, asked about every copy and
    derived file: it must name the recording a scan over every kept one names."""
    from pipeline.run.near_duplicates import RecordingRegister

    register, kept = RecordingRegister(), [n for n in prints if "__" not in n]
    for n in kept:
        video, audio = prints[n].to_text()
        register.add({"source_id": n, "source_path": n, "duration_s": prints[n].duration_s,
                      "video_fingerprint": video, "audio_fingerprint": audio})
    differ = 0
    for name, f in queries:
        found = register.match(f)
        scan = next((n for n in kept if fp.same_recording(f, prints[n])[0]), None)
        differ += (found[0] if found else None) != scan
    print(f"register (picture-hash index) against a scan of every kept recording: {differ} of {len(queries)} "
          f"decisions differ")


if __name__ == "__main__":
    main()
