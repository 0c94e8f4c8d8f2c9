"""The sample's json member as a type: what a newer writer adds survives a rewrite, and a sample not yet
encoded carries no latent fields. (The pipeline-to-trainer round trip on real shards is in
test_training_data.py.)"""
import json

import pytest

from records.sample import SampleMeta


def test_unknown_keys_survive_a_rewrite_and_latent_fields_appear_only_once_encoded():
    written = json.dumps({"clip_id": "c1", "fps": 25.0, "transcript": "hello", "sync": {"sync_status": "unverified"},
                          "made_by_a_newer_writer": [1, 2]}).encode()
    meta = SampleMeta.from_json(written)
    assert (meta.fps, meta.transcript, meta.sync_status) == (25.0, "hello", "unverified")
    again = json.loads(meta.to_json())
    assert again["made_by_a_newer_writer"] == [1, 2] and "latent_bucket" not in again and "prompt" not in again
    meta.latent_bucket, meta.prompt = "128x128x25", "a person says: hello"
    encoded = SampleMeta.from_json(meta.to_json())
    assert encoded == meta and encoded.to_json() == meta.to_json()
    with pytest.raises(ValueError, match="must be an object"):
        SampleMeta.from_json(b"[1, 2]")
