"""Scratch files and folders named after the host and process that own them, so that what a killed
process leaves behind (decoded frames, a half-written shard) is recognised and removed by the next
worker or driver that starts on the same machine. Live owners and other hosts' files are never touched,
which keeps a --scratch-dir shared between nodes safe."""
from __future__ import annotations

import os
import shutil
import socket
import tempfile

PREFIX = "unitalking-"


def host_tag() -> str:
    return f"{PREFIX}{socket.gethostname().replace('-', '_')}-"


def owner_tag() -> str:
    return f"{host_tag()}{os.getpid()}-"


def make_dir(kind: str, parent: str | None = None) -> str:
    """A new folder owned by this process; `kind` says what it holds (decode, shard, stage)."""
    return tempfile.mkdtemp(prefix=f"{owner_tag()}{kind}-", dir=parent or None)


def make_file(kind: str, suffix: str = "", parent: str | None = None) -> str:
    fd, path = tempfile.mkstemp(prefix=f"{owner_tag()}{kind}-", suffix=suffix, dir=parent or None)
    os.close(fd)
    return path


def process_alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (dead, not yet reaped) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def remove_orphans(parent: str | None = None) -> list[str]:
    """Remove this host's scratch entries under `parent` whose owning process is gone; their names."""
    parent = parent or tempfile.gettempdir()
    host = host_tag()
    removed = []
    try:
        names = os.listdir(parent)
    except FileNotFoundError:
        return removed
    for name in names:
        pid = name[len(host):].split("-", 1)[0]
        if not name.startswith(host) or not pid.isdigit() or process_alive(int(pid)):
            continue
        path = os.path.join(parent, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
        removed.append(name)
    return removed
