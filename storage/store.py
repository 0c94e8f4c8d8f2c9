"""A folder on local disk or on object storage (`s3://bucket/prefix`, `gs://...`) through pyarrow's file
systems. Paths inside are '/'-separated and relative to the folder. Whole-object writes are atomic on both:
a temporary name and a rename locally, a single PUT on object storage."""
from __future__ import annotations

import os
import shutil
import tempfile

import pyarrow.fs as pafs

STREAM_BUFFER = 8 << 20  # bytes a request when an object is read front to back


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def download_file(uri: str, local_path: str) -> str:
    """Copy one file, given by its URI, to a local path."""
    parent, name = uri.rsplit("/", 1)
    return Store(parent).download(name, local_path)


class Store:
    def __init__(self, uri: str):
        self.uri = uri
        if is_remote(uri):
            self.fs, self.root = pafs.FileSystem.from_uri(uri)
        else:
            self.fs, self.root = pafs.LocalFileSystem(), os.path.abspath(uri.removeprefix("file://"))
        self.remote = is_remote(uri)

    def path(self, rel: str = "") -> str:
        return f"{self.root.rstrip('/')}/{rel}" if rel else self.root

    def uri_of(self, rel: str) -> str:
        return f"{self.uri.rstrip('/')}/{rel}" if self.remote else self.path(rel)

    def exists(self, rel: str) -> bool:
        return self.fs.get_file_info(self.path(rel)).type != pafs.FileType.NotFound

    def files(self, rel: str = "", suffixes: tuple[str, ...] = ("",)) -> list[pafs.FileInfo]:
        """Files under `rel` (recursive) whose names end with one of `suffixes`, sorted by path."""
        if not self.exists(rel):
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(self.path(rel), recursive=True))
        return sorted((i for i in infos if i.type == pafs.FileType.File and i.path.lower().endswith(suffixes)),
                      key=lambda i: i.path)

    def inputs(self, suffixes: tuple[str, ...]) -> list[tuple[str, int, str]]:
        """(relative path, size, problem) of every file whose name ends with one of `suffixes`, sorted. Local
        folders are walked by the OS, so a name that is not UTF-8 or a link to nothing is listed with its
        problem ('name_not_utf8', 'dangling_link') instead of stopping the listing."""
        if self.remote:
            return [(self.relative(i.path), i.size, "") for i in self.files("", suffixes)]
        found = []
        for folder, _, names in os.walk(self.root):
            for name in names:
                full = os.path.join(folder, name)
                rel, problem = os.path.relpath(full, self.root), ""
                if not name.lower().endswith(suffixes):
                    continue
                try:
                    rel.encode("utf-8")
                except UnicodeEncodeError:  # undecodable bytes, kept by Python as surrogates
                    rel, problem = os.fsencode(rel).decode("utf-8", "backslashreplace"), "name_not_utf8"
                if not problem and not os.path.exists(full):
                    problem = "dangling_link"
                found.append((rel.replace(os.sep, "/"), 0 if problem else os.path.getsize(full), problem))
        return sorted(found)

    def relative(self, info_path: str) -> str:
        return info_path[len(self.root.rstrip("/")) + 1:]

    def makedirs(self, rel: str) -> None:
        if not self.remote:
            os.makedirs(self.path(rel), exist_ok=True)

    def open(self, rel: str):
        """A seekable binary reader, for readers that jump about (Parquet's footer, then its columns)."""
        return self.fs.open_input_file(self.path(rel))

    def open_stream(self, rel: str):
        """A reader from front to back that fetches object storage STREAM_BUFFER bytes a request: tarfile
        reading a seekable S3 file asks for every 512-byte block and member on its own (17,160 ranged GETs
        for a 250 MB tar). Tar readers take it in stream mode ("r|")."""
        return self.fs.open_input_stream(self.path(rel), buffer_size=STREAM_BUFFER if self.remote else None)

    def read_bytes(self, rel: str) -> bytes:
        with self.open_stream(rel) as f:
            return f.read()

    def upload(self, local_path: str, rel: str) -> None:
        """Copy a finished local file to `rel`, whole or not at all."""
        if self.remote:
            with open(local_path, "rb") as src, self.fs.open_output_stream(self.path(rel)) as dst:
                shutil.copyfileobj(src, dst, 8 << 20)
        else:
            os.makedirs(os.path.dirname(self.path(rel)), exist_ok=True)
            tmp = self.path(rel) + ".tmp"
            shutil.copyfile(local_path, tmp)
            os.replace(tmp, self.path(rel))

    def write_bytes(self, rel: str, data: bytes) -> None:
        with tempfile.NamedTemporaryFile(delete=False) as f:
            f.write(data)
        try:
            self.upload(f.name, rel)
        finally:
            os.remove(f.name)

    def download(self, rel: str, local_path: str) -> str:
        with self.open_stream(rel) as src, open(local_path, "wb") as dst:
            shutil.copyfileobj(src, dst, 8 << 20)
        return local_path

    def remove(self, rel: str) -> None:
        if self.exists(rel):
            self.fs.delete_file(self.path(rel))

    def remove_dir(self, rel: str) -> None:
        if self.exists(rel):
            self.fs.delete_dir(self.path(rel))
