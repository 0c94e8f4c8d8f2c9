"""Cut raw talking-head videos into checked clips and write WebDataset shards plus Parquet manifests.

On a running cluster:  ray job submit --working-dir . -- python pipeline/build_shards.py --input DIR --output OUT
On one machine:        python pipeline/build_shards.py --input DIR --output OUT   (starts a local Ray)

Every input ends as a row of OUT/manifests/sources.parquet and every candidate clip as a row of
OUT/manifests/clips.parquet, with its scores and, when rejected, the stage and reason. Rerunning on the
same OUT skips the sources already finished."""
from __future__ import annotations

import os
import sys

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipeline.config import PipelineConfig, parse_config  # noqa: E402
from pipeline.run.listing import VIDEO_EXTENSIONS, exact_duplicates, list_sources, listing_rejects  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def connect_ray(cfg: PipelineConfig) -> None:
    """Join the cluster named by --ray-address or RAY_ADDRESS, or start a private local one (`local`); with
    neither, Ray joins a cluster that `ray start` left running on this machine, and the run says so."""
    import ray

    address = cfg.ray_address or os.environ.get("RAY_ADDRESS")
    if address and address != "local":  # a job submitted with --working-dir already ships the code
        ray.init(address=address, log_to_driver=False)
        return
    if not address:
        from ray._private.services import get_ray_address_from_environment

        running = get_ray_address_from_environment(None, None)
        if running:
            print(f"joining the Ray cluster already running on this machine at {running} (its resources are "
                  "shared with its other jobs); --ray-address local starts a private one", flush=True)
    ray.init(address=address or None, runtime_env={"env_vars": {"PYTHONPATH": REPO}}, log_to_driver=False,
             include_dashboard=False)


def run(cfg: PipelineConfig) -> dict:
    from tqdm import tqdm

    from pipeline import scratch
    from pipeline.run.near_duplicates import RecordingRegister
    from pipeline.run.scheduler import check_models, run_sources
    from pipeline.run.shard_packer import Packers
    from pipeline.run.source_worker import STAGING, new_source_record
    from storage.parts import finished_source_ids, next_run, write_manifests

    from storage.store import Store, is_remote

    if not Store(cfg.input).exists(""):
        raise SystemExit(f"--input {cfg.input!r} is not a folder")
    cfg.input = cfg.input if is_remote(cfg.input) else os.path.abspath(cfg.input)
    cfg.output = cfg.output if is_remote(cfg.output) else os.path.abspath(cfg.output)
    cfg.models_dir = os.path.abspath(cfg.models_dir)
    finished = finished_source_ids(cfg.output)
    todo, encode_only, pending, bad = [], [], [], []
    if cfg.from_clips:
        from pipeline.run.from_clips import previous_results

        earlier = previous_results(cfg.input)
        pending = [r for r in earlier if r["source"]["source_id"] not in finished]
        total, skipped = len(earlier), len(earlier) - len(pending)
    else:
        from pipeline.stages.audio_only import AUDIO_EXTENSIONS

        sources = list_sources(cfg.input, AUDIO_EXTENSIONS if cfg.audio_only else VIDEO_EXTENSIONS)[: cfg.limit or None]
        duplicates = exact_duplicates(sources)  # finished ones too: a new copy of done work is a duplicate
        sources = [s if s[1] not in duplicates else (*s[:3], "duplicate_of") for s in sources]
        fresh = [s for s in sources if new_source_record(*s[:3])["source_id"] not in finished]
        todo = [s[:3] for s in fresh if not s[3]]
        bad = listing_rejects([s for s in fresh if s[3]], duplicates)
        total, skipped = len(sources), len(sources) - len(fresh)
    if todo or pending:
        check_models(cfg)  # nothing is written before the models are known to be there
    scratch.remove_orphans()  # the open shards of a killed run on this machine
    Store(cfg.output).makedirs("")
    Store(cfg.output).remove_dir(STAGING)  # leftovers of a killed run
    packers = Packers(cfg.output, cfg.shard_target_mb, next_run(cfg.output), cfg.part_max_sources, cfg.part_max_wait_s)
    for row in bad:
        packers.add(row)
    if pending:
        from pipeline.run.from_clips import restage

        restage(cfg.input, cfg.output, pending)
        encode_only = [r for r in pending if r.get("staged")]
        for r in pending:
            if not r.get("staged"):  # nothing to encode: the rows stay as they were
                packers.add(r)
    left = len(todo) + len(encode_only)
    print(f"{total} sources, {skipped} already finished, {left} to process", flush=True)
    if todo or encode_only:
        connect_ray(cfg)
        with tqdm(total=left, unit="source", desc="build_shards") as bar:
            def progress(result: dict) -> None:
                bar.set_postfix_str(f"{result['source']['source_path'][:30]} {result['source']['status']}")
                bar.update()

            register = None if cfg.keep_near_duplicates or cfg.audio_only else RecordingRegister().load(cfg.output)
            run_sources(cfg, todo, packers, progress, encode_only, register)
    packers.flush()
    paths = write_manifests(cfg.output)
    return summarize(cfg.output, paths)


def summarize(out_dir: str, paths: tuple[str, str]) -> dict:
    from manifests.summary import summary_text, summary_counts

    counts = summary_counts(out_dir)
    print(summary_text(out_dir, counts), flush=True)
    return counts


def main(argv: list[str] | None = None) -> None:
    cfg = parse_config(argv, __doc__)
    run(cfg)


if __name__ == "__main__":
    main()
