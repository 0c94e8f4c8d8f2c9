"""Typed configuration of the clip pipeline: one section per stage (pipeline/config_sections.py), each
stage receiving its own section and the run's; `--help` groups the flags by section and keeps their flat
names. Run-level code (the driver, the workers) reads any setting by its flat name (`cfg.fps`)."""
from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass, field

from model.buckets import parse_buckets
from pipeline.config_sections import (SECTIONS, AudioConfig, EncodeConfig, FaceConfig, RunConfig, SegmentConfig,
                                      SyncConfig, TextConfig, TranscribeConfig, VisualConfig)


def section_of(name: str) -> str:
    """The section that holds the flat setting `name`."""
    for sec, cls in SECTIONS.items():
        if name in cls.__dataclass_fields__:
            return sec
    raise AttributeError(f"no pipeline setting named {name!r}")


@dataclass
class PipelineConfig:
    run: RunConfig = field(default_factory=RunConfig)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    face: FaceConfig = field(default_factory=FaceConfig)
    visual: VisualConfig = field(default_factory=VisualConfig)
    text: TextConfig = field(default_factory=TextConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    transcribe: TranscribeConfig = field(default_factory=TranscribeConfig)
    encode: EncodeConfig = field(default_factory=EncodeConfig)

    @classmethod
    def of(cls, **flat) -> "PipelineConfig":
        """A config from flat settings (`PipelineConfig.of(input=..., fps=25)`), each put in its section."""
        by_section: dict[str, dict] = {}
        for name, value in flat.items():
            by_section.setdefault(section_of(name), {})[name] = value
        return cls(**{sec: SECTIONS[sec](**kw) for sec, kw in by_section.items()})

    def __getattr__(self, name: str):
        """The flat view: `cfg.fps` reads `cfg.run.fps` (only called for names that are not sections)."""
        if name.startswith("__"):
            raise AttributeError(name)
        sections = self.__dict__
        for sec in SECTIONS:
            if sec in sections and hasattr(sections[sec], name):
                return getattr(sections[sec], name)
        raise AttributeError(f"no pipeline setting named {name!r}")

    def __setattr__(self, name: str, value) -> None:
        """`cfg.input = ...` sets `cfg.run.input`: one place holds each setting."""
        if name in SECTIONS:
            object.__setattr__(self, name, value)
        else:
            setattr(getattr(self, section_of(name)), name, value)

    def flat(self) -> dict:
        """Every setting by its flat name."""
        return {k: v for sec in SECTIONS for k, v in dataclasses.asdict(getattr(self, sec)).items()}

    def validate(self) -> None:
        """Every argument checked before any work; a ValueError names the flag and what it takes."""
        if (self.clip_frames - 1) % 4 != 0 or self.clip_frames < 5:
            raise ValueError(f"--clip-frames must be 1 + 4k, got {self.clip_frames}")
        if not 3.0 <= self.ref_voice_s <= 5.0:
            raise ValueError("--ref-voice-s must lie in [3, 5] seconds")
        at_least = {"fps": 1e-6, "sample_rate": 8000, "analysis_size": 64, "max_side": 64, "detect_every": 1,
                    "sync_vshift": 1, "whisper_batch_size": 0, "encode_batch": 1, "encode_gpus": 1e-6,
                    "shard_target_mb": 1e-9, "max_audio_s": 1.0, "edge_margin_s": 0.0, "max_sync_offset": 0,
                    "min_face_width": 0, "min_face_height": 0, "workers": 0, "worker_cpus": 0.0,
                    "encode_workers": 0, "limit": 0, "crf": 0, "min_face_motion": 0.0, "min_face_sharpness": 0.0,
                    "min_bits_per_pixel": 0.0, "max_brisque": 0.0,
                    "max_offset_correction": 0, "offline_sync_tolerance": 0}
        for name, low in at_least.items():
            if getattr(self, name) < low:
                raise ValueError(f"--{name.replace('_', '-')} must be at least {low:g}, got {getattr(self, name)}")
        for name in ("face_score", "min_track_coverage", "max_other_face_coverage", "track_iou", "min_speech_ratio",
                     "min_asd_speaking", "min_language_prob", "vad_onset", "vad_offset", "min_text_line_width",
                     "max_text_frame_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"--{name.replace('_', '-')} is a share in [0, 1], got {getattr(self, name)}")
        if self.offline_sync_tolerance > self.sync_vshift:
            raise ValueError(f"--offline-sync-tolerance {self.offline_sync_tolerance} exceeds the search range "
                             f"--sync-vshift {self.sync_vshift}")
        if self.max_offset_correction > self.sync_vshift:
            raise ValueError(f"--max-offset-correction {self.max_offset_correction} exceeds the search range "
                             f"--sync-vshift {self.sync_vshift}")
        if self.max_sync_offset > self.sync_vshift:
            raise ValueError(f"--max-sync-offset {self.max_sync_offset} exceeds the search range --sync-vshift "
                             f"{self.sync_vshift}")
        self.validate_paths()
        from model.toy_autoencoders import toy_multiple

        parse_buckets(self.buckets, self.video_vae, toy_multiple(self.toy_autoencoders))

    def validate_paths(self) -> None:
        """A local --input is a folder; a local --output lies outside it (its shards would become inputs)."""
        remote = lambda p: "://" in p
        if not remote(self.input):
            if not os.path.isdir(self.input):
                raise ValueError(f"--input {self.input!r} is not a folder" +
                                 (" (it is a file: put it in a folder)" if os.path.isfile(self.input) else ""))
            if not remote(self.output):
                inp, out = os.path.realpath(self.input), os.path.realpath(self.output)
                if os.path.commonpath([inp, out]) == inp:
                    raise ValueError(f"--output {self.output!r} lies inside --input {self.input!r}: a rerun would "
                                     "read its own shards as sources")

def build_parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for sec, cls in SECTIONS.items():
        group = p.add_argument_group(f"{sec} ({cls.__name__})", (cls.__doc__ or "").strip())
        for f in dataclasses.fields(cls):
            flag = "--" + f.name.replace("_", "-")
            kw = {"help": f.metadata["doc"], "dest": f.name}
            if f.metadata.get("required"):
                kw["required"] = True
            else:
                kw["default"] = f.default
            if "choices" in f.metadata:
                kw["choices"] = f.metadata["choices"]
            if f.type == "bool":
                kw.update(action="store_true", default=False)
            else:
                kw["type"] = {"float": float, "int": int, "str": str}[f.type]
            group.add_argument(flag, **kw)
    return p


def parse_config(argv: list[str] | None, description: str) -> PipelineConfig:
    """Flags -> a checked config; a bad value exits with argparse's usage line and one line saying why."""
    parser = build_parser(description)
    cfg = PipelineConfig.of(**vars(parser.parse_args(argv)))
    try:
        cfg.validate()
    except ValueError as e:
        parser.error(str(e))
    return cfg
