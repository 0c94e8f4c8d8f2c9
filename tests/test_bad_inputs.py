"""Inputs that cannot even be listed cleanly, or copy another input byte for byte, end as one row each
with a clear reason, beside the others."""
from __future__ import annotations

import os
import shutil

import pyarrow.parquet as pq

from tests.conftest import build_shards


def test_unlistable_files_become_rows(corpus_run, models_dir, tmp_path):
    inp = tmp_path / "in"
    inp.mkdir()
    shutil.copy(os.path.join(corpus_run["corpus"], "insync_24fps.mp4"), inp / "good.mp4")
    shutil.copy(os.path.join(corpus_run["corpus"], "insync_24fps.mp4"), os.fsencode(inp) + b"/caf\xe9-latin1.mp4")
    os.symlink(tmp_path / "gone.mp4", inp / "dangling.mp4")
    shutil.copy(inp / "good.mp4", inp / "z_copy.mp4")  # the same bytes under another name
    out = str(tmp_path / "out")
    build_shards(str(inp), out, models_dir, "--latents", "off", "--sync-scorer", "mouth_motion")
    rows = pq.read_table(os.path.join(out, "manifests", "sources.parquet")).to_pylist()
    by_name = {r["source_path"]: r for r in rows}
    assert len(rows) == 4 and set(by_name) == {"good.mp4", "caf\\xe9-latin1.mp4", "dangling.mp4", "z_copy.mp4"}
    copy = by_name["z_copy.mp4"]
    assert (copy["status"], copy["reject_reason"], copy["duplicate_of"]) == \
        ("rejected", "duplicate_of", by_name["good.mp4"]["source_id"])
    assert by_name["good.mp4"]["status"] == "done"
    assert (by_name["caf\\xe9-latin1.mp4"]["reject_reason"], by_name["dangling.mp4"]["reject_reason"]) == \
        ("name_not_utf8", "dangling_link")
    assert all(by_name[n]["reject_detail"] for n in ("caf\\xe9-latin1.mp4", "dangling.mp4"))
    # a rerun sees them as finished, not as new work
    again = build_shards(str(inp), out, models_dir, "--latents", "off", "--sync-scorer", "mouth_motion")
    assert "4 already finished, 0 to process" in again.stdout
