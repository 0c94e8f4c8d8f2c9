"""Drives the Ray workers: tasks of a few sources through CPU source workers, then (with latents on) each
task's accepted clips through encode workers that take a GPU where the cluster has one. Workers write the
shards and manifest parts themselves; the driver passes small typed messages (records/messages.py), keeps
the ledger, and writes only the rows of sources no worker could finish. A worker that dies costs only the
task it held, which a fresh worker runs again under the same names."""
from __future__ import annotations

import json
import os
from collections import deque

from pipeline.config import PipelineConfig
from pipeline.run.encode_worker import reject_encoding
from pipeline.run.near_duplicates import RecordingRegister
from pipeline.run.row_parts import RowParts
from pipeline.run.source_worker import new_source_record, worker_resources
from pipeline.stages.encode import EncodeStage
from records.messages import FINGERPRINT, Finished, SourceTask, TaskDone
from storage.ledger import LedgerWriter


def failed_result(path: str, rel: str, size: int, error: str) -> dict:
    src = new_source_record(path, rel, size)
    src.update(status="failed", reject_stage="worker", reject_reason="worker_died", error=error[-2000:],
               clips_total=0, clips_accepted=0, clips_rejected=0)
    return {"source": src, "clips": []}


CLAIM_FIELDS = ("source_id", "source_path", "clips_accepted") + FINGERPRINT


def register_actor(cfg: PipelineConfig):
    """The near-duplicate register as an actor that source workers ask before writing a source's samples:
    claims stay out of the driver's loop, and cost the same at 1M kept recordings as at 1k. Restarted by Ray
    if it dies, it reloads the kept recordings from the ledger."""
    import ray

    @ray.remote(num_cpus=0, max_restarts=3, max_task_retries=3)
    class Register:
        def __init__(self, out_dir: str):
            self.register = RecordingRegister().load(out_dir)

        def keep_or_match(self, fields_json: str) -> str:
            return json.dumps(self.register.keep_or_match(json.loads(fields_json)))

    return Register.remote(cfg.output)


def asking(register):
    """A source worker's `claim`: the register actor's answer for a source row."""
    import ray

    def claim(src: dict):
        found = json.loads(ray.get(register.keep_or_match.remote(json.dumps({k: src.get(k) for k in CLAIM_FIELDS}))))
        return tuple(found) if found else None

    return claim


PROCESSORS = {"source": "pipeline.run.source_worker:SourceProcessor", "encode": "pipeline.run.encode_worker:EncodeProcessor"}
"""What each kind of worker runs (module:class, with setup() and run_task(message)); benchmarks/scale.py
puts trivial workers here to measure the driver alone."""


def actor_classes(cfg: PipelineConfig, cluster: dict[str, float], register=None):
    """Makers of source and encode workers: an actor class per kind (so a process says what it runs), placed
    by the resources its stages declare. Ray never restarts them: the scheduler replaces a dead one."""
    import ray

    class Worker:
        def __init__(self, cfg: PipelineConfig, processor: str, register=None):
            import importlib

            module, name = processor.split(":")
            self.processor = getattr(importlib.import_module(module), name)(cfg)
            if register is not None:
                self.processor.claim = asking(register)
            self.processor.setup()

        def run_task(self, message: str) -> str:
            return self.processor.run_task(message)

    SourceWorker = ray.remote(max_restarts=0)(type("SourceWorker", (Worker,), {}))
    EncodeWorker = ray.remote(max_restarts=0)(type("EncodeWorker", (Worker,), {}))
    need = worker_resources()
    # node labels of ray_cluster.yaml: CPU stages on CPU workers, encoders on GPU workers, where they exist
    on = lambda label: {"resources": {label: 0.001}} if label in cluster else {}
    source = lambda: SourceWorker.options(num_cpus=cfg.worker_cpus or need.cpus, num_gpus=need.gpus,
                                          memory=int(need.memory_gb * 2**30),
                                          **on("cpu_node")).remote(cfg, PROCESSORS["source"], register)
    encode = lambda: EncodeWorker.options(num_cpus=EncodeStage.resources.cpus,
                                          num_gpus=cfg.encode_gpus if cluster.get("GPU") else 0,
                                          **on("gpu_node")).remote(cfg, PROCESSORS["encode"])
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


ENCODE_BACKLOG = 2  # staged tasks waiting per encode worker before source workers get no new task


def run_sources(cfg: PipelineConfig, tasks: list[SourceTask], rows: RowParts, ledger: LedgerWriter, progress,
                encode_only: list[TaskDone] = (), register=None) -> None:
    """`tasks`: sources to cut; `encode_only`: staged tasks of an earlier run's clips that only need latents
    (build_shards --from-clips); `register`: the near-duplicate register actor (None keeps near duplicates).
    `progress` sees each source's line once it is in a part."""
    import ray

    cluster = ray.cluster_resources()
    n_src, n_enc = worker_counts(cfg, cluster.get("CPU", 1), cluster.get("GPU", 0))
    new_worker = dict(zip(("source", "encode"), actor_classes(cfg, cluster, register)))
    idle = {"source": [new_worker["source"]() for _ in range(min(n_src, len(tasks)))],
            "encode": [new_worker["encode"]() for _ in range(n_enc)]}
    queue = {"source": deque(tasks), "encode": deque(encode_only)}
    pending, tries = {}, {}
    while queue["source"] or queue["encode"] or pending:
        for kind in ("source", "encode"):
            # backpressure: no new source task while the encoders have ENCODE_BACKLOG staged tasks each waiting
            # (staged work waits on storage, not in memory, and its scratch stays bounded)
            held = len(queue["encode"]) + sum(k == "encode" for k, _, _ in pending.values())
            room = lambda: kind == "encode" or not n_enc or held < (ENCODE_BACKLOG + 1) * n_enc
            while idle[kind] and queue[kind] and room():
                actor, message = idle[kind].pop(), queue[kind].popleft()
                pending[actor.run_task.remote(message.to_json())] = (kind, actor, message)
                held += kind == "source"
        rows.flush_if_old()
        (ref,), _ = ray.wait(list(pending), num_returns=1, timeout=None)
        kind, actor, message = pending.pop(ref)
        try:
            done = TaskDone.from_json(ray.get(ref))
            idle[kind].append(actor)
        except ray.exceptions.RayError as e:
            # the worker died (killed, out of memory) or raised: a fresh worker takes its place, and the
            # task it held is tried once more, under the same names, before its sources are recorded as failed
            ray.kill(actor, no_restart=True)
            idle[kind].append(new_worker[kind]())
            tries[(kind, message.name)] = tries.get((kind, message.name), 0) + 1
            if tries[(kind, message.name)] < 2:
                print(f"a {kind} worker died on task {message.name}; retrying it on a new worker", flush=True)
                queue[kind].appendleft(message)
                continue
            for result in given_up(cfg, kind, message, str(e)):
                rows.add(result)
                progress(Finished.of(result["source"], None))
            continue
        if done.staged:
            queue["encode"].append(done)
            continue
        ledger.add(done.sources, done.order)
        for line in done.sources:
            progress(line)


def given_up(cfg: PipelineConfig, kind: str, message, error: str) -> list[dict]:
    """The rows of a task whose worker died twice: every source failed (a rerun tries it again)."""
    from storage.layout import staged_rows, staged_samples
    from storage.store import Store

    if kind == "source":
        return [failed_result(*item, error) for item in message.sources]
    store = Store(cfg.output)
    results = json.loads(store.read_bytes(staged_rows(message.name)))
    for r in results:
        if r["source"]["clips_accepted"]:
            reject_encoding(r, "encode_worker_died", error)
    store.remove(staged_samples(message.name))
    store.remove(staged_rows(message.name))
    return results


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
        missing = [p for p in required_files(cfg.models_dir, cfg.video_vae, cfg.toy_autoencoders) if not os.path.exists(p)]
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
