"""The driver's listing of an input folder: every media file with its size, the files that cannot be
processed (a name that is not UTF-8, a link to nothing, a byte-for-byte copy of another source) as finished
rows with a reason, so each input ends as exactly one row."""
from __future__ import annotations

VIDEO_EXTENSIONS = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".ts", ".flv", ".wmv"}
LISTING_PROBLEMS = {"name_not_utf8": "the file name is not valid UTF-8 (shown with \\x escapes); rename it",
                    "dangling_link": "a symbolic link to a file that does not exist",
                    "duplicate_of": "the same bytes as another source, which is kept"}


def list_sources(root: str, extensions: set[str] = VIDEO_EXTENSIONS) -> list[tuple[str, str, int, str]]:
    """(path or URI, path relative to root, size, problem) of every media file under a folder or prefix,
    sorted; `problem` is empty for a file that can be processed, else a LISTING_PROBLEMS code."""
    from storage.store import Store

    store = Store(root)
    return [(store.uri_of(rel), rel, size, problem) for rel, size, problem in store.inputs(tuple(extensions))]


def content_sha256(path: str) -> str:
    import hashlib

    from storage.store import download_file, is_remote

    digest = hashlib.sha256()
    if is_remote(path):  # object storage: hashing means reading it once more; it is rare (sizes must collide)
        import tempfile

        with tempfile.NamedTemporaryFile() as f:
            download_file(path, f.name)
            return content_sha256(f.name)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(8 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def digests_here(paths: list[str]) -> list[str]:
    return [content_sha256(p) for p in paths]


def digests_on_workers(paths: list[str], per_task: int = 16) -> list[str]:
    """content_sha256 of each path, computed by Ray tasks (a CPU each) on the cluster's workers, near the
    bytes: the driver handles only the names and the digests."""
    import ray

    hash_files = ray.remote(num_cpus=1, max_retries=2)(digests_here)
    refs = [hash_files.remote(paths[i:i + per_task]) for i in range(0, len(paths), per_task)]
    return [d for chunk in ray.get(refs) for d in chunk]


def size_collisions(sources: list[tuple[str, str, int, str]]) -> list[list[tuple[str, str]]]:
    """Groups of (path, rel), sorted by rel, of the files whose size another file shares."""
    by_size: dict[int, list[tuple[str, str]]] = {}
    for path, rel, size, problem in sources:
        if not problem:
            by_size.setdefault(size, []).append((path, rel))
    return [sorted(group, key=lambda s: s[1]) for group in by_size.values() if len(group) > 1]


def exact_duplicates(sources: list[tuple[str, str, int, str]], digests=digests_here) -> dict[str, str]:
    """rel path -> rel path of the copy kept (the first by path), for files with the same bytes. Only files
    whose size another file shares are read, by `digests` (paths -> sha256 hex digests)."""
    groups = size_collisions(sources)
    found = iter(digests([path for group in groups for path, _ in group]))
    kept: dict[str, str] = {}
    for same in groups:
        first: dict[str, str] = {}
        for path, rel in same:
            digest = next(found)
            if digest in first:
                kept[rel] = first[digest]
            else:
                first[digest] = rel
    return kept


def listing_rejects(sources: list[tuple[str, str, int, str]], duplicates: dict[str, str] | None = None) -> list[dict]:
    """A finished row for every listed file that cannot be processed, so it is counted like any bad input."""
    from pipeline.run.source_worker import new_source_record
    from pipeline.stages.base import reject, source_id

    rows = []
    for path, rel, size, problem in sources:
        src = new_source_record(path, rel, size)
        detail = LISTING_PROBLEMS[problem]
        if problem == "duplicate_of":
            original = duplicates[rel]  # same bytes, so the same size: its id follows from its path
            src["duplicate_of"] = source_id(f"{original}:{size}")
            detail = f"the same bytes as {original}, which is kept"
        reject(src, "list", problem, detail)
        src.update(clips_total=0, clips_accepted=0, clips_rejected=0)
        rows.append({"source": src, "clips": []})
    return rows
