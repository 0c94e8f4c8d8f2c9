"""The trainer's data and objective pieces on the corpus run's real shards: corrupt input skipped and
counted, exact resume of the stream position, audio statistics, posterior samples, padding masks, config."""
from __future__ import annotations

import glob
import io
import json
import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest
import torch

from tests.conftest import REPO
from train.data import LatentStream, StreamSpec, list_shards
from train.streams import DataPosition, stream_ids, train_loader


def shard_dir(corpus_run) -> str:
    return os.path.join(corpus_run["out"], "shards")


def spec_for(shards: list[str], seed: int = 0, budget: int = 1400) -> StreamSpec:
    return StreamSpec(shards, stage=2, seed=seed, tokens_per_batch=budget, max_batch=4)


def test_corrupt_samples_and_shards_are_skipped_and_counted(corpus_run, tmp_path):
    src = list_shards([shard_dir(corpus_run)], 2)[0]  # workers write a shard per task: the first will do
    bucket = tmp_path / "shards" / "128x128x121"
    bucket.mkdir(parents=True)
    broken_keys = set()
    with tarfile.open(src) as tar, tarfile.open(bucket / "000000.tar", "w") as out:
        members = [m for m in tar if m.isfile()]
        keys = sorted({m.name.split(".", 1)[0] for m in members})
        for m in members:
            data = tar.extractfile(m).read()
            key, ext = m.name.split(".", 1)
            if key == keys[0] and ext == "video_mean.npy":
                data, _ = b"not an npy file", broken_keys.add(key)
            if key == keys[1] and ext == "audio_mean.npy":
                a = np.load(io.BytesIO(data), allow_pickle=False).copy()
                a[0, 0] = np.nan
                buf = io.BytesIO()
                np.save(buf, a)
                data, _ = buf.getvalue(), broken_keys.add(key)
            info = tarfile.TarInfo(m.name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    whole = (bucket / "000000.tar").read_bytes()
    (bucket / "000001.tar").write_bytes(whole[: len(whole) // 3])  # cut off mid-sample
    stream = iter(LatentStream(spec_for(list_shards([str(tmp_path / "shards")], 2)), 0))
    seen = set()
    for _ in range(12):
        batch = next(stream)
        seen |= set(batch["keys"])
    assert seen and not seen & broken_keys and seen <= set(keys)
    skipped = batch["skipped"]
    assert skipped.get("ValueError", 0) >= 2, skipped  # the bad npy and the NaN latent, at least once each
    assert any(k.startswith("shard:") for k in skipped), skipped  # the truncated shard


def test_a_resumed_loader_continues_with_the_batches_it_had_not_seen(corpus_run):
    spec = spec_for(list_shards([shard_dir(corpus_run)], 2), budget=700)  # one sample per batch
    ids = stream_ids(rank=1, workers=2)
    position = DataPosition(ids)
    batches = iter(train_loader(spec, position, workers=2))
    for _ in range(7):
        position.consumed(next(batches))
    saved = json.loads(json.dumps(position.to_json()))  # as the checkpoint stores it
    expected = [next(batches)["keys"] for _ in range(6)]
    resumed = DataPosition(ids, saved)
    again = iter(train_loader(spec, resumed, workers=2))
    assert [next(again)["keys"] for _ in range(6)] == expected
    fresh = lambda rank: iter(train_loader(spec, DataPosition(stream_ids(rank, 2)), workers=2))
    rank0, rank1 = fresh(0), fresh(1)
    assert [next(rank0)["keys"] for _ in range(6)] != [next(rank1)["keys"] for _ in range(6)]  # own streams
    with pytest.raises(ValueError, match="differ from this run.s ranks x workers"):
        DataPosition(stream_ids(0, 1), saved)


def test_audio_stats_command_brings_the_shards_to_unit_scale(corpus_run, tmp_path):
    from model.audio_norm import AudioNorm

    out = tmp_path / "stats.json"
    subprocess.run([sys.executable, "-m", "train.audio_stats", shard_dir(corpus_run), "--out", str(out)], cwd=REPO,
                   check=True, capture_output=True)
    latents = []
    for path in glob.glob(os.path.join(shard_dir(corpus_run), "*", "*.tar")):
        with tarfile.open(path) as tar:
            latents += [np.load(io.BytesIO(tar.extractfile(m).read()), allow_pickle=False)
                        for m in tar if m.name.endswith(".audio_mean.npy")]
    raw = torch.from_numpy(np.stack(latents).astype(np.float32))  # (N, 20, L)
    assert raw.std(dim=(0, 2)).max() < 0.6 or raw.mean(dim=(0, 2)).abs().max() > 0.3  # not unit scale as stored
    norm = AudioNorm.load(str(out))
    z = norm.normalize(raw)
    assert z.mean(dim=(0, 2)).abs().max() < 1e-3 and (z.std(dim=(0, 2), unbiased=False) - 1).abs().max() < 1e-3
    assert torch.allclose(norm.denormalize(z), raw, atol=1e-5)


def test_audio_trains_on_a_posterior_sample(corpus_run):
    from model.audio_norm import AudioNorm
    from train.config import TaskConfig
    from train.tasks import build

    batch = next(iter(LatentStream(spec_for(list_shards([shard_dir(corpus_run)], 2)), 0)))
    norm = AudioNorm([0.0] * 20, [1.0] * 20)

    def target(b, posterior):
        g = torch.Generator().manual_seed(0)
        fwd = build(b, TaskConfig(stage=1, audio_posterior=posterior), norm, g, "cpu", task="tts")
        return fwd.target_audio

    mean_only = target(batch, False)
    assert not torch.allclose(target(batch, True), mean_only)
    certain = dict(batch, audio_logvar=torch.full_like(batch["audio_logvar"], -30.0))  # std 3e-7
    assert (target(certain, True) - mean_only).abs().max() < 1e-4


def test_padded_audio_is_masked_out_of_attention():
    from model.unitalking import Conditioning, UniTalking
    from tests.test_unitalking import DEBUG, trained_like
    from train.data import pad_stack

    model = trained_like(UniTalking(DEBUG)).eval()
    g = torch.Generator().manual_seed(0)
    short, long = torch.randn(20, 9, generator=g).numpy(), torch.randn(20, 15, generator=g).numpy()
    audio, mask = pad_stack([short, long], axis=1)
    text = torch.randn(2, 4, DEBUG.text_dim, generator=g)
    t = torch.tensor([500.0, 500.0])
    with torch.no_grad():
        _, padded = model(None, audio, None, t, Conditioning(text=text), audio_mask=mask)
        _, alone = model(None, torch.from_numpy(short)[None], None, t[:1], Conditioning(text=text[:1]))
    assert mask.tolist()[0] == [True] * 9 + [False] * 6
    assert torch.allclose(padded[0, :, :9], alone[0], atol=1e-5)


def test_config_from_yaml_with_command_line_overrides(tmp_path):
    from train.config import load_config

    recipe = os.path.join(REPO, "train", "configs", "stage2_paper.yaml")
    cfg = load_config(recipe, ["--data.dirs", "a,b", "--optim.lr", "3e-5", "--parallel.zero_stage=3",
                               "--model.activation_checkpointing", "false"])
    assert cfg.data.dirs == ["a", "b"] and cfg.optim.lr == 3e-5 and cfg.parallel.zero_stage == 3
    assert cfg.optim.betas == [0.9, 0.999] and cfg.optim.eps == 1e-8 and cfg.model.preset == "paper"
    assert not cfg.model.activation_checkpointing and cfg.task.stage == 2
    with pytest.raises(ValueError, match="unknown option 'lrr'"):
        load_config(recipe, ["--data.dirs", "a", "--optim.lrr", "1"])
    with pytest.raises(ValueError, match="data.dirs is empty"):
        load_config(recipe, [])


def test_the_pipelines_samples_read_back_through_the_sample_contract(corpus_run):
    """Pipeline writer to trainer reader: every sample the corpus run shipped has the members
    records/sample.py names, its json member parses into SampleMeta and writes back byte for byte, and the
    trainer's reader decodes it with the manifest's transcript, frame rate and sync status."""
    import tarfile

    import pyarrow.parquet as pq

    from records.sample import LATENTS, MEDIA, META, SampleMeta, latent_member
    from train.data import read_shard

    rows = {r["clip_id"]: r for r in pq.read_table(os.path.join(corpus_run["out"], "manifests", "clips.parquet"))
            .to_pylist() if r["status"] == "accepted"}
    seen, shards = 0, list_shards([shard_dir(corpus_run)], 2)
    for path in shards:
        with tarfile.open(path) as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}
        keys = list(dict.fromkeys(name.split(".", 1)[0] for name in members))  # in file order
        for key in keys:
            mine = {name.split(".", 1)[1] for name in members if name.startswith(key + ".")}
            assert {META, *MEDIA} <= mine and mine - {META, *MEDIA} <= {latent_member(n) for n in LATENTS}, mine
            meta = SampleMeta.from_json(members[f"{key}.{META}"])
            assert meta.to_json() == members[f"{key}.{META}"] and not meta.extra
            assert (meta.clip_id, meta.transcript, meta.sync_status) == \
                (key, rows[key]["transcript"], rows[key]["sync_status"])
            assert meta.latent_bucket == rows[key]["latent_bucket"] and meta.num_frames == rows[key]["num_frames"]
        bad: dict = {}
        decoded = read_shard(path, 2, bad)
        assert not bad and [d["key"] for d in decoded] == keys
        for d in decoded:
            assert d["transcript"] == rows[d["key"]]["transcript"] and d["fps"] == rows[d["key"]]["fps"]
            assert d["video"].ndim == 4 and d["audio"].ndim == 2
        seen += len(keys)
    listed = {os.path.relpath(p, shard_dir(corpus_run)) for p in shards}
    assert seen == sum(r["shard"] in listed for r in rows.values()) > 0
