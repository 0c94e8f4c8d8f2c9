"""Issue 3 acceptance 3: the corpus run makes latent shards; every accepted clip is one sample; shards load
with webdataset and with ray.data.read_webdataset; every tensor loads without pickle."""
from __future__ import annotations

import glob
import io
import json
import os
import tarfile

import numpy as np

LATENT_NAMES = {"video_mean", "audio_mean", "audio_logvar", "text", "ref_image"}


def accepted(corpus_run):
    return {c["clip_id"]: c for clips in corpus_run["clips"].values() for c in clips if c["status"] == "accepted"}


def latent_tars(corpus_run):
    return sorted(glob.glob(os.path.join(corpus_run["out"], "shards", "128x128x121", "*.tar")))


def test_every_tensor_loads_without_pickle_with_its_recorded_shape(corpus_run):
    rows = accepted(corpus_run)
    seen = set()
    for path in latent_tars(corpus_run):
        with tarfile.open(path) as tar:
            for m in tar:
                key, ext = m.name.split(".", 1)
                if ext.endswith(".npy"):
                    array = np.load(io.BytesIO(tar.extractfile(m).read()), allow_pickle=False)
                    shapes = json.loads(rows[key]["latent_shapes"])
                    assert list(array.shape) == shapes[ext[:-4]] and array.dtype == np.float16
                    assert np.isfinite(array).all()
                    seen.add(key)
    assert seen == set(rows)


def test_latent_shapes_follow_the_official_compression(corpus_run):
    for row in accepted(corpus_run).values():
        shapes = json.loads(row["latent_shapes"])
        assert LATENT_NAMES <= set(shapes)
        assert shapes["video_mean"] == [48, 31, 8, 8]  # 121 frames at 128x128: 4x in time, 16x in space
        assert shapes["audio_mean"] == shapes["audio_logvar"] == [20, 157]  # 5.04 s at 31.25 Hz
        assert shapes["ref_image"] == [48, 1, 8, 8] and shapes["text"][1] == 32
        assert row["latent_bucket"] == "128x128x121" and row["prompt"].startswith("<S>") and row["prompt"].endswith("<E>")
        assert all("debug-random" in row[k] for k in ("video_vae_version", "audio_vae_version", "text_encoder_version"))


def test_references_come_from_another_clip_of_the_source(corpus_run):
    rows = accepted(corpus_run)
    a, b = [c for c in corpus_run["clips"]["scene_cut.mp4"] if c["status"] == "accepted"]
    assert a["reference_clip_id"] == a["ref_voice_clip_id"] == a["ref_image_clip_id"] == b["clip_id"]
    assert b["reference_clip_id"] == a["clip_id"]
    assert json.loads(a["latent_shapes"])["ref_voice"] == [20, 125]  # 4 s of the other clip
    alone = [r for r in rows.values() if r["source_path"] == "insync_24fps.mp4"][0]
    assert alone["reference_clip_id"] is None and alone["ref_voice_clip_id"] is None
    assert alone["ref_image_clip_id"] == alone["clip_id"] and "ref_voice" not in json.loads(alone["latent_shapes"])


def test_shards_load_with_webdataset(corpus_run):
    import webdataset as wds

    samples = list(wds.WebDataset(latent_tars(corpus_run), shardshuffle=False).decode())
    assert {s["__key__"] for s in samples} == set(accepted(corpus_run))
    for s in samples:
        assert isinstance(s["video_mean.npy"], np.ndarray) and s["json"]["latent_bucket"] == "128x128x121"
        assert s["json"]["models"]["video_vae"].endswith("debug-random")


def test_shards_load_with_ray_data(corpus_run):
    import ray

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        rows = ray.data.read_webdataset(latent_tars(corpus_run)).take_all()
    finally:
        ray.shutdown()
    assert {r["__key__"] for r in rows} == set(accepted(corpus_run))
    assert all(np.asarray(r["audio_mean.npy"]).shape == (20, 157) for r in rows)


def test_reencode_from_clip_shards_changes_only_latent_columns(corpus_run, models_dir, tmp_path):
    import pyarrow.parquet as pq

    from records.schema import LATENT_COLUMNS, RUN_DEPENDENT
    from tests.conftest import build_shards

    out = str(tmp_path / "reencoded")
    build_shards(corpus_run["out"], out, models_dir, "--from-clips", "--video-vae", "2.1", "--debug-models",
                 "--buckets", "128x128")
    skip = LATENT_COLUMNS | RUN_DEPENDENT
    rows = lambda table: sorted(({k: v for k, v in r.items() if k not in skip} for r in table.to_pylist()),
                                key=lambda r: (r["source_path"], r.get("start_frame") or 0))  # manifests go by part
    for name in ("sources", "clips"):
        before = pq.read_table(os.path.join(corpus_run["out"], "manifests", f"{name}.parquet"))
        after = pq.read_table(os.path.join(out, "manifests", f"{name}.parquet"))
        assert rows(after) == rows(before)
    clips = [c for c in pq.read_table(os.path.join(out, "manifests", "clips.parquet")).to_pylist()
             if c["status"] == "accepted"]
    assert clips and all(json.loads(c["latent_shapes"])["video_mean"] == [16, 31, 16, 16] for c in clips)
    assert all(c["video_vae_version"].startswith("wan2.1_vae") for c in clips)
