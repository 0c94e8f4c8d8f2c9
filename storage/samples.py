"""WebDataset sample tars: each sample a key and its members (extension -> bytes)."""
from __future__ import annotations

import io
import os
import tarfile

import numpy as np

from storage.store import Store


def read_samples(store: Store, rel: str) -> dict[str, dict[str, bytes]]:
    """WebDataset tar -> {key: {extension: bytes}}."""
    out: dict[str, dict[str, bytes]] = {}
    with store.open_stream(rel) as f, tarfile.open(fileobj=f, mode="r|") as tar:
        for member in tar:
            if member.isfile():
                key, ext = os.path.basename(member.name).split(".", 1)
                out.setdefault(key, {})[ext] = tar.extractfile(member).read()
    return out


def wav_pcm(data: bytes) -> np.ndarray:
    """A sample's 16-bit wav member as float32 samples in [-1, 1]."""
    from scipy.io import wavfile

    return wavfile.read(io.BytesIO(data))[1].astype(np.float32) / 32768.0


def write_samples(path: str, samples: list[tuple[str, dict[str, bytes]]]) -> None:
    """Write (key, {ext: bytes}) samples as a tar under a temporary name, then rename."""
    tmp = path + ".tmp"
    with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
        for key, members in samples:
            for ext, data in members.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size, info.mode, info.mtime = len(data), 0o444, 0
                tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, path)


def concatenate(out_path: str, tar_paths: list[str]) -> None:
    """One local tar holding the members of `tar_paths`, in order."""
    with tarfile.open(out_path, "w", format=tarfile.USTAR_FORMAT) as out:
        for path in tar_paths:
            with tarfile.open(path, "r|") as part:
                for member in part:
                    out.addfile(member, part.extractfile(member))
