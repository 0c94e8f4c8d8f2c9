"""python -m eval DIR_OR_SHARDS --out REPORT_DIR [--transcripts FILE] [--references FILE]

Scores every video or audio file under DIR (or every sample of the WebDataset shards under it): lip sync
(SyncNet's offset, Sync-C and Sync-D when models/syncnet holds its weights, else the offline mouth-motion
offset and confidence), Light-ASD's speaking share, WER of Whisper's transcript against the reference text,
speaker similarity to the reference voice (GE2E), loudness and silence share. Writes REPORT_DIR/scores.parquet,
summary.json and report.html.
"""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> dict:
    from eval.evaluate import Scorers, evaluate
    from eval.items import collect
    from eval.report import write_report

    p = argparse.ArgumentParser(prog="python -m eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="a folder of media files or of WebDataset shards, one file, or one .tar")
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument("--transcripts", help="JSON {name: reference text}; else NAME.txt beside a file, or the shard's")
    p.add_argument("--references", help="JSON {name: reference voice audio}; else NAME.ref.wav beside a file")
    p.add_argument("--models-dir", default="models", help="whisper-base/, syncnet/ and speaker/ live here")
    p.add_argument("--language", default="en", help="Whisper's language (empty: detect)")
    p.add_argument("--title", default="", help="heading of the HTML report")
    a = p.parse_args(argv)
    items = collect(a.input, a.transcripts, a.references)
    if not items:
        p.error(f"no video, audio or shard sample found under {a.input}")
    scorers = Scorers.load(a.models_dir, a.language, items)
    rows = evaluate(items, scorers)
    stats = write_report(rows, {i.name: i.media for i in items}, scorers.missing, a.out,
                         a.title or f"Evaluation of {a.input}")
    for key, s in stats.items():
        print(f"{key:14s} n={s['n']:<4d} mean={s['mean']:.4g} median={s['median']:.4g} worst={s['worst']}")
    for key, why in scorers.missing.items():
        print(f"missing {key}: {why}")
    print(f"report: {a.out}/report.html")
    return stats


if __name__ == "__main__":
    main(sys.argv[1:])
