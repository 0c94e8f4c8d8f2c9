"""What the driver costs as a run grows, measured on the real driver (`build_shards.run`: listing,
scheduling, ledger, merged manifests and shard index) with trivial source workers that make realistic rows
and small samples without decoding anything (benchmarks/scale_workers.py), on local disk and on a moto S3
server on 127.0.0.1.

    python benchmarks/scale.py --work /tmp/scale --sources 1000,10000,100000 --s3 1000,10000
    python benchmarks/scale.py --work /tmp/scale --rerun-parts 100000

For each size, in a fresh process: the driver's CPU seconds (its own threads, not Ray's or the workers'),
its peak resident memory (VmHWM), and the bytes it read and wrote through system calls (rchar + wchar of
/proc/self/io: files, pipes and sockets, so Ray's messages count too), per source and per accepted sample;
then the same for a rerun over the finished output (nothing to do). Imports and Ray's start come before
the measured span; the fixed costs left (the first Ray calls, the run's last steps) show as the difference
between the sizes' per-sample figures. --rerun-parts writes N single-source
parts with the project's writers and times a rerun's start (the ledger read, the listing of parts) with and
without a ledger. Input files are sparse (their listed size, no bytes on disk) and of distinct sizes."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def proc_io() -> int:
    with open("/proc/self/io") as f:
        io = dict(line.split(": ") for line in f.read().splitlines())
    return int(io["rchar"]) + int(io["wchar"])


def peak_mib() -> float:
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("VmHWM")) / 1024


def cpu_s() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def make_inputs(where: str, n: int) -> None:
    """n sparse input files of distinct sizes (1 MiB + i bytes), 1000 to a folder."""
    from storage.store import Store, is_remote

    if is_remote(where):
        store = Store(where)
        for i in range(n):  # object storage has no sparse files: small objects, still of distinct sizes
            store.write_bytes(f"{i // 1000:04d}/{i:07d}.mp4", b"\0" * (1 + i % 997) + b"\1" * (i // 997))
        return
    for i in range(n):
        folder = os.path.join(where, f"{i // 1000:04d}")
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"{i:07d}.mp4"), "wb") as f:
            f.truncate(2 ** 20 + i)


def driver(inp: str, out: str) -> dict:
    """One build_shards run in this process with trivial workers; its costs."""
    import ray

    from pipeline import build_shards
    from pipeline.config import PipelineConfig
    from pipeline.run import scheduler

    scheduler.PROCESSORS["source"] = "benchmarks.scale_workers:TrivialSourceProcessor"
    import importlib

    for module in ("manifests.summary", "pipeline.run.row_parts", "storage.ledger", "tqdm"):
        importlib.import_module(module)  # what the run imports, imported before the measured span

    cfg = PipelineConfig.of(input=inp, output=out, models_dir=os.path.join(REPO, "models"), latents="off",
                            sync_scorer="motion_asd", ray_address="local")
    build_shards.connect_ray(cfg)  # Ray's start (its own files and processes) is a fixed cost, not measured
    io0, cpu0, t0 = proc_io(), cpu_s(), time.time()
    counts = build_shards.run(cfg)
    result = {"cpu_s": cpu_s() - cpu0, "wall_s": time.time() - t0, "io_bytes": proc_io() - io0,
              "peak_mib": peak_mib(), "sources": counts["sources"], "samples": counts["clips_accepted"]}
    if ray.is_initialized():
        ray.shutdown()
    return result


def in_fresh_process(*args: str, env: dict | None = None) -> dict:
    out = subprocess.run([sys.executable, os.path.abspath(__file__), *args], capture_output=True, text=True,
                         env=env, cwd=REPO)
    if out.returncode:
        raise SystemExit(f"{args} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def row(label: str, n: int, r: dict) -> str:
    per_source = lambda k: r[k] / max(1, n)
    return (f"| {label} | {n:,} | {r['cpu_s']:.1f} | {1000 * per_source('cpu_s'):.2f} | {r['peak_mib']:.0f} | "
            f"{r['io_bytes'] / 2**20:.1f} | {r['io_bytes'] / max(1, r['samples']):,.0f} | {r['wall_s']:.0f} |")


def rerun_start(out: str) -> dict:
    from storage.ledger import finished_table, next_run

    io0, cpu0 = proc_io(), cpu_s()
    lines = finished_table(out, ["status"], repair=True)
    finished = set(lines.column("source_id").to_pylist())
    next_run(out, lines)
    return {"cpu_s": cpu_s() - cpu0, "peak_mib": peak_mib(), "io_bytes": proc_io() - io0, "sources": len(finished)}


def write_parts(out: str, n: int) -> None:
    """n single-source parts (a source row and five clip rows each), as n tasks of one source would leave."""
    from benchmarks.scale_workers import TrivialSourceProcessor
    from storage.layout import UNSHARDED, part_stem, task_name
    from storage.parts import write_part
    from storage.store import Store

    store, maker = Store(out), TrivialSourceProcessor(None)
    for i in range(n):
        result, _ = maker.source(f"/in/{i:07d}.mp4", f"{i:07d}.mp4", 2 ** 20 + i)
        write_part(store, part_stem(UNSHARDED, task_name(1, i + 1)), [result["source"]], result["clips"], (1, i + 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/scale")
    ap.add_argument("--sources", default="1000,10000")
    ap.add_argument("--s3", default="", help="sizes to run with input and output on a moto S3 server")
    ap.add_argument("--rerun-parts", type=int, default=0)
    ap.add_argument("--driver", nargs=2, metavar=("INPUT", "OUTPUT"), help=argparse.SUPPRESS)
    ap.add_argument("--rerun", metavar="OUTPUT", help=argparse.SUPPRESS)
    ap.add_argument("--write-parts", nargs=2, metavar=("OUTPUT", "N"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.driver:
        print(json.dumps(driver(*a.driver)))
        return
    if a.rerun:
        print(json.dumps(rerun_start(a.rerun)))
        return
    if a.write_parts:
        write_parts(a.write_parts[0], int(a.write_parts[1]))
        print("{}")
        return
    print("| run | sources | driver CPU s | ms / source | peak MiB | MiB read+written | bytes / sample | wall s |")
    print("|---|---|---|---|---|---|---|---|")
    for n in [int(x) for x in a.sources.split(",") if x]:
        inp, out = os.path.join(a.work, f"in-{n}"), os.path.join(a.work, f"out-{n}")
        if not os.path.isdir(inp):
            make_inputs(inp, n)
        subprocess.run(["rm", "-rf", out], check=True)
        print(row("local, first run", n, in_fresh_process("--driver", inp, out)), flush=True)
        print(row("local, rerun", n, in_fresh_process("--driver", inp, out)), flush=True)
    if a.s3:
        import logging

        import pyarrow.fs as pafs
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        env = dict(os.environ, AWS_ENDPOINT_URL=f"http://{host}:{port}", AWS_ACCESS_KEY_ID="test",
                   AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
        os.environ.update(env)
        pafs.S3FileSystem(endpoint_override=env["AWS_ENDPOINT_URL"], allow_bucket_creation=True).create_dir("scale")
        for n in [int(x) for x in a.s3.split(",") if x]:
            inp, out = f"s3://scale/in-{n}", f"s3://scale/out-{n}"
            make_inputs(inp, n)
            print(row("S3, first run", n, in_fresh_process("--driver", inp, out, env=env)), flush=True)
            print(row("S3, rerun", n, in_fresh_process("--driver", inp, out, env=env)), flush=True)
        server.stop()
    if a.rerun_parts:
        out = os.path.join(a.work, f"parts-{a.rerun_parts}")
        if not os.path.isdir(out):
            in_fresh_process("--write-parts", out, str(a.rerun_parts))
        subprocess.run(["rm", "-rf", os.path.join(out, "ledger")], check=True)
        for label in ("no ledger (reads every part, then writes one)", "with the ledger"):
            r = in_fresh_process("--rerun", out)
            print(f"rerun start over {a.rerun_parts:,} parts, {label}: {r['cpu_s']:.1f} CPU-s, "
                  f"{r['peak_mib']:.0f} MiB peak, {r['io_bytes'] / 2**20:.1f} MiB read+written, {r['sources']:,} sources")


if __name__ == "__main__":
    main()
