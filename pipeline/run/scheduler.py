"""Drives the Ray workers: sources through CPU source workers, then (with latents on) each source's
accepted clips through encode workers that take a GPU where the cluster has one. A source reaches the
packers as soon as its last step is done; a worker that dies costs only the source it held."""
from __future__ import annotations

import json
import os
from collections import deque

from pipeline.config import PipelineConfig
from pipeline.run.encode_worker import reject_encoding
from pipeline.run.near_duplicates import RecordingRegister
from pipeline.run.source_worker import new_source_record, staging_path, worker_resources
from pipeline.stages.encode import EncodeStage


def failed_result(path: str, rel: str, size: int, error: str) -> dict:
    src = new_source_record(path, rel, size)
    src.update(status="failed", reject_stage="worker", reject_reason="worker_died", error=error[-2000:],
               clips_total=0, clips_accepted=0, clips_rejected=0)
    return {"source": src, "clips": []}


def actor_classes(cfg: PipelineConfig, cluster: dict[str, float]):
    """Makers of source and encode workers: an actor class per kind (so a process says what it runs), placed
    by the resources its stages declare. Ray never restarts them: the scheduler replaces a dead one."""
    import ray

    class Worker:
        kind = ""

        def __init__(self, cfg: PipelineConfig):
            if self.kind == "source":
                from pipeline.run.source_worker import SourceProcessor as Processor
            else:
                from pipeline.run.encode_worker import EncodeProcessor as Processor
            self.processor = Processor(cfg)
            self.processor.setup()

        def run(self, *args: str) -> str:
            return self.processor.run(*args)

        def run_group(self, items_json: str) -> str:
            return self.processor.run_group(items_json)

    SourceWorker = ray.remote(max_restarts=0)(type("SourceWorker", (Worker,), {"kind": "source"}))
    EncodeWorker = ray.remote(max_restarts=0)(type("EncodeWorker", (Worker,), {"kind": "encode"}))
    need = worker_resources()
    # node labels of ray_cluster.yaml: CPU stages on CPU workers, encoders on GPU workers, where they exist
    on = lambda label: {"resources": {label: 0.001}} if label in cluster else {}
    source = lambda: SourceWorker.options(num_cpus=cfg.worker_cpus or need.cpus, num_gpus=need.gpus,
                                          memory=int(need.memory_gb * 2**30), **on("cpu_node")).remote(cfg)
    encode = lambda: EncodeWorker.options(num_cpus=EncodeStage.resources.cpus,
                                          num_gpus=cfg.encode_gpus if cluster.get("GPU") else 0,
                                          **on("gpu_node")).remote(cfg)
    return source, encode


def worker_counts(cfg: PipelineConfig, cpus: float, gpus: float) -> tuple[int, int]:
    encoders = 0
    if cfg.latents == "on":
        encoders = cfg.encode_workers or (max(1, int(gpus // cfg.encode_gpus)) if gpus else 1)
    left = cpus - encoders * EncodeStage.resources.cpus
    per_source = cfg.worker_cpus or worker_resources().cpus
    return cfg.workers or max(1, int(left // per_source)), encoders


def source_tasks(todo: list[tuple[str, str, int]], most: int, group_mb: float) -> list[list[tuple[str, str, int]]]:
    """Sources in worker tasks: a source under `group_mb` MiB joins the task before it while that holds fewer
    than `most` sources and `group_mb` MiB in all (short sources share Whisper windows there); a larger one
    goes alone."""
    tasks: list[list[tuple[str, str, int]]] = []
    held = 0
    limit = group_mb * 2**20
    for item in todo:
        size = item[2] or 0
        if tasks and size < limit and len(tasks[-1]) < most and held + size <= limit:
            tasks[-1].append(item)
            held += size
        else:
            tasks.append([item])
            held = size if size < limit else limit + 1
    return tasks


def run_sources(cfg: PipelineConfig, todo: list[tuple[str, str, int]], packers, progress,
                encode_only: list[dict] = (), register: RecordingRegister | None = None) -> None:
    """`todo`: (path or URI, relative path, size) of sources to cut; `encode_only`: results of an earlier run whose
    staged clips only need latents (build_shards --from-clips); `register`: recordings already kept, to which
each source with accepted clips is compared (None keeps near duplicates)."""
    import ray

    from storage.store import Store

    cluster = ray.cluster_resources()
    tasks = source_tasks(list(todo), cfg.group_sources, cfg.group_mb)
    n_src, n_enc = worker_counts(cfg, cluster.get("CPU", 1), cluster.get("GPU", 0))
    new_worker = dict(zip(("source", "encode"), actor_classes(cfg, cluster)))
    idle = {"source": [new_worker["source"]() for _ in range(min(n_src, len(tasks)))],
            "encode": [new_worker["encode"]() for _ in range(n_enc)]}
    queue = {"source": deque(tasks), "encode": deque(encode_only)}
    pending, tries = {}, {}
    while queue["source"] or queue["encode"] or pending:
        for kind in ("source", "encode"):
            while idle[kind] and queue[kind]:
                actor, payload = idle[kind].pop(), queue[kind].popleft()
                ref = (actor.run_group.remote(json.dumps(payload)) if kind == "source"
                       else actor.run.remote(payload["staged"], json.dumps(payload)))
                pending[ref] = (kind, actor, payload)
        (ref,), _ = ray.wait(list(pending), num_returns=1)
        kind, actor, payload = pending.pop(ref)
        try:
            results = json.loads(ray.get(ref))
            idle[kind].append(actor)
        except ray.exceptions.RayError as e:
            # the worker died (killed, out of memory) or raised: a fresh worker takes its place, and the
            # work it held is tried once more before it is recorded as failed
            ray.kill(actor, no_restart=True)
            idle[kind].append(new_worker[kind]())
            key = (kind, tuple(rel for _, rel, _ in payload) if kind == "source" else payload["source"]["source_id"])
            tries[key] = tries.get(key, 0) + 1
            if tries[key] < 2:
                print(f"a {kind} worker died on {', '.join(key[1]) if kind == 'source' else key[1]}; "
                      f"retrying it on a new worker", flush=True)
                queue[kind].appendleft(payload)
                continue
            results = ([failed_result(*item, str(e)) for item in payload] if kind == "source"
                       else reject_encoding(payload, "encode_worker_died", str(e)))
        for result in (results if kind == "source" else [results]):  # a source task returns a list
            if kind == "source" and register is not None and register.claim(result):
                Store(cfg.output).remove(staging_path(result["source"]["source_id"]))
            if kind == "source" and result["source"]["clips_accepted"]:
                result["staged"] = staging_path(result["source"]["source_id"])
                if cfg.latents == "on":
                    queue["encode"].append(result)
                    continue
                result["bucket"] = "clips"
            packers.add(result)
            progress(result)


def check_models(cfg: PipelineConfig) -> None:
    """Fail before any work when a real run lacks a model file (debug runs make their own)."""
    from model.loading.latent_models import required_files
    from model.syncnet import weights_path
    from pipeline.stages.sync import resolve_scorer

    if resolve_scorer(cfg.sync, cfg.run) == "syncnet" and not os.path.isfile(weights_path(cfg.models_dir)):
        raise SystemExit(f"missing model file: {weights_path(cfg.models_dir)}\nSyncNet decides lip sync in real "
                         f"runs; download it with: python -m model.loading.fetch --models-dir {cfg.models_dir} --only syncnet\n"
                         "(or choose the offline scorer explicitly: --sync-scorer motion_asd)")
    if cfg.latents == "on" and not cfg.debug_models:
        missing = [p for p in required_files(cfg.models_dir, cfg.video_vae) if not os.path.exists(p)]
        if missing:
            raise SystemExit("missing model files:\n  " + "\n  ".join(missing) +
                             f"\ndownload them with: python -m model.loading.fetch --models-dir {cfg.models_dir}"
                             "\n(or run with --latents off, or --debug-models for a trial with random weights)")
    if not cfg.from_clips:  # every clip is transcribed: without Whisper every source would fail one by one
        from model.loading.offline_models import whisper_dir

        try:
            whisper_dir(cfg.models_dir)
        except FileNotFoundError as e:
            raise SystemExit(str(e)) from None
