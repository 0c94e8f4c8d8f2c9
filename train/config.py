"""Typed configuration of a training run: nested dataclasses with a docstring per field, loaded from YAML
and overridden from the command line (`--optim.lr 1e-4 --data.dirs a,b`)."""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field

import yaml


@dataclass
class ModelConfig:
    preset: str = "debug"
    """Joint model size: 'debug' (CPU, seconds), 'toy' (twice debug's width, for the toy experiments), 'mid'
    (93M, for memory measurements on a CPU) or 'paper' (Wan2.2-TI2V-5B streams, about 11B)."""
    layers: int = 0
    """Override the preset's number of joint blocks (0 keeps it): the full-size block at reduced depth."""
    video_dit: str = ""
    """Wan2.2-TI2V-5B DiT: a .safetensors file, an index .json or a folder of shards, loaded strictly into
    the video stream (empty: random init, for debug runs)."""
    audio_init: str = ""
    """Stage 2: a stage-1 checkpoint (its run folder or exported safetensors) whose audio stream, reference
    embedding and audio reference projections are loaded."""
    activation_checkpointing: bool = False
    """Recompute each joint block in the backward pass (memory for compute)."""
    compile: bool = False
    """`torch.compile` each joint block (after checkpointing is applied): fuses the element-wise work around
    the matmuls. One graph per bucket shape; the first steps of each shape pay the compile."""
    cross_modal: bool = True
    """Joint attention across audio and video (False: an ablation in which the streams never see each other)."""


@dataclass
class DataConfig:
    dirs: list[str] = field(default_factory=list)
    """Shard folders: a pipeline output's shards/ (every bucket in it) or one bucket (shards/704x704x121)."""
    val_dirs: list[str] = field(default_factory=list)
    """Held-out shard folders for validation (empty: no validation loss)."""
    tokens_per_batch: int = 4096
    """Token budget per micro-batch: batch size = budget // tokens of the bucket (at least 1)."""
    max_batch: int = 16
    """Most samples in one micro-batch."""
    workers: int = 1
    """DataLoader worker processes per rank (0 reads in the training process)."""
    audio_stats: str = ""
    """Per-channel audio latent mean/std JSON (`python -m train.audio_stats`). Empty: stage 1's statistics
    when `model.audio_init` is set, else estimated at the start over `audio_stats_shards` shards; either
    way kept in the run folder and carried by its exports. Set with `audio_init`, it must agree with them."""
    audio_stats_shards: int = 64
    """Shards read (drawn from the seed, shared among the ranks) to estimate the audio statistics at start;
    a fixed number, so start-up does not grow with the data set (0: every shard)."""
    sync_status: list[str] = field(default_factory=lambda: ["in_sync", "unverified"])
    """Lip-sync statuses (the manifests' `sync_status`) a clip may have to be trained on; `[in_sync]` leaves
    out the clips the offline check could not verify. Samples without a status (audio-only) always pass."""
    languages: list[str] = field(default_factory=list)
    """Whisper languages (the manifests' `language`) a clip may have to be trained on; empty: any. With the
    pipeline's shard index, shards holding no such clip are never opened."""


@dataclass
class TaskConfig:
    stage: int = 2
    """1: audio pre-training (text-to-speech, with and without a reference voice); 2: joint audio-video."""
    t2av: float = 0.25
    """Stage 2 share of text -> audio + video."""
    tv2a: float = 0.25
    """Share of video -> audio (video given clean; audio cannot influence video)."""
    ti2av: float = 0.25
    """Share of first image + text -> audio + video (first latent frame given clean, timestep 0)."""
    tr2av: float = 0.25
    """Share of reference voice + text -> audio + video (falls back to T2AV without a reference)."""
    stage1_ref: float = 0.5
    """Stage 1 share of steps with a reference voice (where the sample has one)."""
    drop_text: float = 0.1
    """Probability of dropping the text per sample (classifier-free guidance)."""
    drop_ref: float = 0.1
    """Probability of dropping the reference voice of a sample that uses one."""
    drop_image: float = 0.1
    """Probability of noising the given first frame of a TI2AV sample (trains the image-free branch)."""
    audio_weight: float = 1.0
    """Weight of the audio loss."""
    video_weight: float = 1.0
    """Weight of the video loss."""
    logit_std: float = 1.0
    """Std of the logit-normal training timestep."""
    shared_timesteps: bool = True
    """One noise level for both modalities of a sample."""
    audio_posterior: bool = True
    """Train on a posterior sample of the audio latent (mean + std * noise, as MMAudio) where the shards
    store its log-variance; off trains on the mean (debug VAEs' random log-variances are noise)."""


@dataclass
class OptimConfig:
    lr: float = 1e-5
    """Peak learning rate (paper: 1e-5)."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    """AdamW betas (paper: 0.9, 0.999)."""
    eps: float = 1e-8
    """AdamW epsilon."""
    weight_decay: float = 0.0
    """AdamW decoupled weight decay."""
    warmup_steps: int = 1000
    """Linear warm-up steps."""
    schedule: str = "constant"
    """After warm-up: 'constant' or 'cosine' (to `min_lr_ratio` at the last step)."""
    min_lr_ratio: float = 0.1
    """Final learning rate of the cosine schedule, relative to `lr`."""
    grad_clip: float = 1.0
    """Gradient-norm clipping (0: off)."""
    ema_decay: float = 0.9999
    """EMA decay per step (0: no EMA)."""
    trainable: list[str] = field(default_factory=list)
    """Regexes of parameter names that train (empty: all). Stage 1 recipes list the audio stream's input
    projection, attention projections and FFN (the paper's set) plus its output projection and the
    reference-voice path, which start at zero and would otherwise keep the audio output at zero."""


@dataclass
class ParallelConfig:
    zero_stage: int = 2
    """DeepSpeed ZeRO stage: 2 (optimizer state and gradients sharded) or 3 (parameters too)."""
    offload_optimizer: bool = False
    """Keep the optimizer state in CPU memory (DeepSpeed's CPU Adam)."""
    bf16: bool = True
    """bf16 weights and activations on a GPU (a CPU run is float32)."""
    micro_batches: int = 1
    """Gradient accumulation steps per optimizer step."""
    reduce_bucket_size: int = 500_000_000
    """Elements per gradient reduce (and ZeRO-2 all-gather) bucket: larger overlaps better, costs memory."""
    zero3_prefetch_bucket_size: int = 50_000_000
    """ZeRO-3: elements of parameters fetched ahead of the block that needs them."""
    zero3_persistence_threshold: int = 100_000
    """ZeRO-3: parameters smaller than this stay whole on every rank (0: every parameter is partitioned)."""


@dataclass
class TrainConfig:
    steps: int = 100_000
    """Optimizer steps of the run."""
    seed: int = 0
    """Seed of weights, data order, timesteps, noise and tasks."""
    run_dir: str = "runs/unitalking"
    """Checkpoints, TensorBoard logs, samples and the resolved config go here."""
    save_every: int = 1000
    """Checkpoint every N steps (and at the end)."""
    save_every_minutes: float = 0.0
    """Also checkpoint when this many minutes passed since the last one (0: off); rank 0's clock decides
    for all, so every rank saves at the same step."""
    export_every: int = 0
    """Export the weights (`export_kinds`) to run_dir/export/ every N steps (0: only at the end)."""
    export_kinds: list[str] = field(default_factory=lambda: ["ema"])
    """What an export writes: 'ema' (EMA of trainable weights, frozen ones as they are) and/or 'weights'
    (float32 master weights)."""
    export_dtype: str = "bf16"
    """Export precision: 'bf16' or 'fp32'."""
    export_shard_gb: float = 5.0
    """Largest safetensors file of an export."""
    keep_checkpoints: int = 3
    """Most recent checkpoints kept."""
    log_every: int = 1
    """Scalars every N steps."""
    val_every: int = 1000
    """Validation loss every N steps (and at step 0)."""
    val_batches: int = 4
    """Held-out batches per validation."""
    val_timesteps: list[float] = field(default_factory=lambda: [0.1, 0.3, 0.5, 0.7, 0.9])
    """Noise levels the validation loss is measured at (the same noise each time)."""
    sample_every: int = 5000
    """Generate a sample mp4 with sound every N steps (0: never)."""
    sample_steps: int = 50
    """Solver steps of those samples."""
    score_samples: bool = True
    """Score each sample as `python -m eval` does (lip sync, WER against the held-out clip's transcript,
    loudness) and log the scores under sample/ (Whisper from models_dir; without it, samples go unscored)."""
    models_dir: str = "models"
    """Folder with the VAEs and the vocoder that turn sampled latents into video and sound."""
    debug_models: bool = False
    """Decode samples with the pipeline's seeded debug weights (matches shards built with --debug-models)."""
    toy_autoencoders: str = ""
    """Folder of fitted toy autoencoders that decode samples (matches shards built with --toy-autoencoders)."""
    resume: str = "auto"
    """'auto': continue from run_dir's latest checkpoint if there is one; 'never'; or a tag (step00001000)."""


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def _convert(value, kind):
    """A YAML value or command-line string into the field's type."""
    origin = typing.get_origin(kind)
    if origin is list:
        (item,) = typing.get_args(kind)
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        return [_convert(v, item) for v in value]
    if kind is bool and isinstance(value, str):
        if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"expected a boolean, got {value!r}")
        return value.lower() in ("true", "1", "yes")
    return kind(value)


def _set(section, key: str, value, where: str) -> None:
    hints = typing.get_type_hints(type(section))
    if key not in hints:
        known = ", ".join(f.name for f in dataclasses.fields(section))
        raise ValueError(f"{where}: unknown option {key!r} (known: {known})")
    setattr(section, key, _convert(value, hints[key]))


def load_config(path: str | None, overrides: list[str] | None = None) -> Config:
    """A recipe from YAML, then `--section.key value` pairs on top of it."""
    cfg = Config()
    if path:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f) or {}
        for name, values in raw.items():
            if not hasattr(cfg, name):
                raise ValueError(f"{path}: unknown section {name!r}")
            for key, value in (values or {}).items():
                _set(getattr(cfg, name), key, value, f"{path}: {name}")
    args = list(overrides or [])
    while args:
        flag = args.pop(0)
        if not flag.startswith("--") or "." not in flag:
            raise ValueError(f"expected --section.key VALUE, got {flag!r}")
        name, key = flag[2:].split(".", 1)
        if "=" in key:
            key, value = key.split("=", 1)
        elif args:
            value = args.pop(0)
        else:
            raise ValueError(f"{flag} needs a value")
        if not hasattr(cfg, name):
            raise ValueError(f"unknown section {name!r} in {flag}")
        _set(getattr(cfg, name), key.replace("-", "_"), value, flag)
    validate(cfg)
    return cfg


def validate(cfg: Config) -> None:
    if cfg.task.stage not in (1, 2):
        raise ValueError("task.stage must be 1 or 2")
    if cfg.parallel.zero_stage not in (0, 1, 2, 3):
        raise ValueError("parallel.zero_stage must be 0-3")
    if not cfg.train.export_kinds or not set(cfg.train.export_kinds) <= {"ema", "weights"}:
        raise ValueError("train.export_kinds: choose from ema, weights")
    if cfg.train.export_dtype not in ("bf16", "fp32"):
        raise ValueError("train.export_dtype must be 'bf16' or 'fp32'")
    if cfg.optim.schedule not in ("constant", "cosine"):
        raise ValueError("optim.schedule must be 'constant' or 'cosine'")
    if not cfg.data.dirs:
        raise ValueError("data.dirs is empty: give the shard folders (--data.dirs OUT/shards)")
    shares = (cfg.task.t2av, cfg.task.tv2a, cfg.task.ti2av, cfg.task.tr2av)
    if cfg.task.stage == 2 and (min(shares) < 0 or sum(shares) <= 0):
        raise ValueError("task shares must be non-negative with a positive sum")


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)
