"""Evaluation of talking clips, real or generated: lip sync, WER, speaker similarity, loudness.

    python -m eval DIR_OR_SHARDS --out REPORT_DIR [--transcripts FILE] [--references FILE]
    python -m eval.samples CHECKPOINT PROMPTS.jsonl --out DIR
"""
