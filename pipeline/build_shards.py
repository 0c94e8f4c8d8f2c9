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
from pipeline.run.listing import (VIDEO_EXTENSIONS, digests_on_workers, exact_duplicates, list_sources,  # noqa: E402
                                  listing_rejects, size_collisions)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def connect_ray(cfg: PipelineConfig) -> None:
    """Join the cluster named by --ray-address or RAY_ADDRESS, or start a private local one (`local`); with
    neither, Ray joins a cluster that `ray start` left running on this machine, and the run says so."""
    import ray

    if ray.is_initialized():
        return
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
    import itertools

    import pyarrow.compute as pc
    from tqdm import tqdm

    from pipeline import scratch
    from pipeline.run.row_parts import RowParts
    from pipeline.run.scheduler import check_models, register_actor, run_sources, source_tasks
    from pipeline.run.source_worker import new_source_record
    from records.messages import SourceTask
    from storage.layout import STAGING, manifest_file, task_name
    from storage.ledger import LedgerWriter, finished_table, next_run, remove_unfinished
    from storage.store import Store, is_remote

    if not Store(cfg.input).exists(""):
        raise SystemExit(f"--input {cfg.input!r} is not a folder")
    cfg.input = cfg.input if is_remote(cfg.input) else os.path.abspath(cfg.input)
    cfg.output = cfg.output if is_remote(cfg.output) else os.path.abspath(cfg.output)
    cfg.models_dir = os.path.abspath(cfg.models_dir)
    lines = finished_table(cfg.output, ["status"], repair=True)
    finished = set(lines.filter(pc.not_equal(lines.column("status"), "failed")).column("source_id").to_pylist())
    run_no, numbers = next_run(cfg.output, lines), itertools.count(1)
    del lines
    order = lambda: (run_no, next(numbers))
    todo, pending, bad = [], [], []
    if cfg.from_clips:
        from pipeline.run.from_clips import previous_results

        earlier = previous_results(cfg.input)
        pending = [r for r in earlier if r["source"]["source_id"] not in finished]
        total, skipped = len(earlier), len(earlier) - len(pending)
    else:
        from pipeline.stages.audio_only import AUDIO_EXTENSIONS

        sources = list_sources(cfg.input, AUDIO_EXTENSIONS if cfg.audio_only else VIDEO_EXTENSIONS)[: cfg.limit or None]
        duplicates = {}  # finished ones too: a new copy of done work is a duplicate
        if size_collisions(sources):  # only files whose size another shares are read, by workers, near the bytes
            connect_ray(cfg)
            duplicates = exact_duplicates(sources, digests_on_workers)
        sources = [s if s[1] not in duplicates else (*s[:3], "duplicate_of") for s in sources]
        fresh = [s for s in sources if new_source_record(*s[:3])["source_id"] not in finished]
        todo = [s[:3] for s in fresh if not s[3]]
        bad = listing_rejects([s for s in fresh if s[3]], duplicates)
        total, skipped = len(sources), len(sources) - len(fresh)
    if todo or pending:
        check_models(cfg)  # nothing is written before the models are known to be there
    scratch.remove_orphans()  # what killed workers of an earlier run on this machine left
    Store(cfg.output).makedirs("")
    Store(cfg.output).remove_dir(STAGING)  # leftovers of a killed run
    remove_unfinished(cfg.output)
    tasks = [SourceTask(task_name(*o), o, group) for group in source_tasks(todo, cfg.group_sources, cfg.group_mb)
             for o in [order()]]
    ledger = LedgerWriter(cfg.output, run_no, cfg.part_max_sources, cfg.part_max_wait_s)
    encode_only, untouched = [], []
    if pending:
        from pipeline.run.from_clips import restage

        encode_only, untouched = restage(cfg.input, cfg, pending, order)
    rows = RowParts(cfg.output, ledger, order, cfg.part_max_sources, cfg.part_max_wait_s)
    for row in bad + untouched:  # nothing to do for them: their rows stay as they were
        rows.add(row)
    left = len(todo) + sum(len(t.sources) for t in encode_only)
    print(f"{total} sources, {skipped} already finished, {left} to process", flush=True)
    if tasks or encode_only:
        connect_ray(cfg)  # once: a second call finds Ray connected
        with tqdm(total=left, unit="source", desc="build_shards") as bar:
            def progress(line) -> None:
                bar.set_postfix_str(f"{line.source_path[:30]} {line.status}")
                bar.update()

            register = None if cfg.keep_near_duplicates or cfg.audio_only else register_actor(cfg)
            run_sources(cfg, tasks, rows, ledger, progress, encode_only, register)
    wrote = bool(rows.sources) or bool(ledger.lines) or ledger.files > 0
    rows.flush()
    ledger.flush()
    if wrote or not Store(cfg.output).exists(manifest_file("clips")):
        write_manifests_off_driver(cfg)
    return summarize(cfg.output)


def write_manifests_off_driver(cfg: PipelineConfig) -> None:
    """The merged manifests and the shard index, written a part at a time by a Ray task on a worker when the
    run has a cluster (every row passes through it: the driver keeps to messages), else here."""
    import ray

    from storage.parts import write_manifests

    if ray.is_initialized():
        ray.get(ray.remote(num_cpus=1, max_retries=2)(write_manifests).remote(cfg.output))
    else:
        write_manifests(cfg.output)


def summarize(out_dir: str) -> dict:
    from manifests.summary import summary_text, summary_counts

    counts = summary_counts(out_dir)
    print(summary_text(out_dir, counts), flush=True)
    return counts


def main(argv: list[str] | None = None) -> None:
    cfg = parse_config(argv, __doc__)
    run(cfg)


if __name__ == "__main__":
    main()
