"""The README's example queries run as written against a real run's manifests (DuckDB and pandas)."""
from __future__ import annotations

import os
import re

import pandas as pd

from tests.conftest import REPO


def readme_queries() -> list[str]:
    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    block = re.search(r"```sql\n(.*?)```", text, re.S).group(1)
    return [q.strip() for q in block.split(";") if q.strip()]


def test_readme_queries_run_on_the_corpus_run(corpus_run):
    import duckdb

    queries = readme_queries()
    assert len(queries) == 3
    manifests = os.path.join(corpus_run["out"], "manifests")
    results = [duckdb.sql(q.replace("OUT/manifests", manifests)).df() for q in queries]
    assert set(results[0]["reject_reason"]) >= {"sync_offset", "no_face", "loudness"}
    assert len(results[1]) == 10 and results[1]["kept_share"].between(0, 1).all()
    assert len(results[2]) > 0 and results[2]["name"].str.endswith((".mp4", ".wav", ".json", ".npy")).all()
    clips = pd.read_parquet(os.path.join(manifests, "clips.parquet"))
    same = clips[(clips["status"] == "accepted") & (clips["language"] == "en")
                 & (clips["sync_offset_frames"].abs() <= 1)
                 & ((clips["syncnet_conf"] >= 3) | (clips["motion_conf"] >= 0.3))]
    assert set(same["clip_id"]) == set(results[2]["clip_id"])  # pandas reads the same files to the same answer
