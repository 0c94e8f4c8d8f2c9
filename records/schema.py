"""The Parquet schemas of the manifests: the one place that says which columns exist and their types."""
from __future__ import annotations

import pyarrow as pa

STR, F64, I32, I64, BOOL = pa.string(), pa.float64(), pa.int32(), pa.int64(), pa.bool_()

DECISION = [
    ("status", STR),  # sources: done | rejected | failed; clips: accepted | rejected
    ("reject_stage", STR),
    ("reject_reason", STR),  # short code, e.g. sync_offset
    ("reject_detail", STR),  # the measurement behind it, for people
]

SOURCES = pa.schema([
    ("source_id", STR), ("source_path", STR), ("source_uri", STR), ("size_bytes", I64), *DECISION, ("error", STR),
    ("duplicate_of", STR),  # source_id of the kept file with the same bytes, or the same recording
    ("container", STR), ("duration_s", F64), ("has_video", BOOL), ("has_audio", BOOL),
    ("video_codec", STR), ("width", I32), ("height", I32), ("rotation", I32),
    ("display_width", I32), ("display_height", I32), ("fps", F64), ("variable_fps", BOOL), ("num_frames", I64),
    ("video_bits_per_pixel", F64),
    ("audio_codec", STR), ("audio_sample_rate", I32), ("audio_channels", I32),
    ("decode_passes", I32), ("decoded_frames", I64), ("decoded_seconds", F64),
    ("analysis_width", I32), ("analysis_height", I32), ("normalized_width", I32), ("normalized_height", I32),
    ("scene_cuts_s", pa.list_(F64)), ("speech_seconds", F64),
    # base64 of the first 60 s: a difference hash of the picture at 2 Hz, two voice bands' loudness at 25 Hz
    ("video_fingerprint", STR), ("audio_fingerprint", STR),
    ("clips_total", I32), ("clips_accepted", I32), ("clips_rejected", I32),
    ("seconds_probe", F64), ("seconds_decode", F64), ("seconds_segment", F64), ("seconds_total", F64),
    ("shard", STR), ("part", STR), ("pipeline_version", STR),
])

MEMBER = pa.struct([("name", STR), ("bytes", I64), ("sha256", STR)])

CLIPS = pa.schema([
    ("clip_id", STR), ("source_id", STR), ("source_path", STR), ("scene_index", I32),
    ("start_frame", I64), ("num_frames", I32), ("fps", F64), ("start_s", F64), ("end_s", F64), *DECISION,
    ("loudness_db", F64), ("speech_ratio", F64), ("speech_snr_db", F64),
    ("face_detector", STR), ("face_count", I32), ("face_track_coverage", F64), ("other_face_coverage", F64),
    ("face_width_px", F64), ("face_height_px", F64), ("face_score", F64), ("pose_yaw_deg", F64),
    ("face_box", pa.list_(F64)), ("crop_box", pa.list_(F64)),  # x0 y0 x1 y1, normalised to the frame
    ("still_frame_share", F64), ("face_motion", F64), ("mouth_motion", F64), ("face_sharpness", F64),
    ("brisque", F64),
    ("sync_scorer", STR), ("sync_offset_frames", I32), ("sync_fps", F64), ("sync_offset_s", F64),
    # in_sync, out_of_sync or unverified (offline evidence too weak either way); audio_shift_frames: how many
    # frames later than its video the clip's audio was cut (an offset the sync stage corrected; 0 if none)
    ("sync_status", STR), ("audio_shift_frames", I32), ("offline_sync_conf", F64),
    # one column per scorer and scale: SyncNet's Sync-C and Sync-D (syncnet_python's definitions), the
    # mouth-motion confidence (peak minus median correlation, 0-2), Light-ASD's speaking share and offset gain
    ("syncnet_conf", F64), ("syncnet_dist", F64), ("motion_conf", F64), ("asd_speaking", F64), ("asd_sync_gain", F64),
    ("text_frame_share", F64), ("text_line_width", F64), ("text_crop_cover", F64),
    ("language", STR), ("language_prob", F64), ("transcript", STR), ("segments_json", STR), ("words_json", STR), ("num_words", I32),
    ("words_per_s", F64), ("word_timing_source", STR), ("transcript_conf", F64), ("transcript_avg_logprob", F64),
    ("transcriber", STR),
    ("whisper_window_pieces", I32),  # how many clip runs (of this and other sources) shared its Whisper window
    ("seconds_audio", F64), ("seconds_face", F64), ("seconds_visual", F64), ("seconds_sync", F64),
    ("seconds_text", F64), ("seconds_transcribe", F64),
    ("shard", STR), ("members", pa.list_(MEMBER)), ("video_width", I32), ("video_height", I32),
    ("sample_rate", I32), ("audio_samples", I64),
    *[(name, STR) for name in ("caption", "prompt", "latent_bucket", "latent_shapes", "latent_dtype",
                               "reference_clip_id", "ref_image_clip_id", "ref_voice_clip_id",
                               "video_vae_version", "audio_vae_version", "text_encoder_version")],
    ("seconds_encode", F64), ("seconds_vae", F64),
])

# What a re-encode (build_shards --from-clips) may change in a clip row.
LATENT_COLUMNS = {"members", "shard", "prompt", "latent_bucket", "latent_shapes", "latent_dtype",
                  "video_vae_version", "audio_vae_version", "text_encoder_version", "seconds_encode", "seconds_vae"}

# Columns that legitimately differ between two runs over the same input (placement and timing).
RUN_DEPENDENT = {"shard", "part", "source_uri"} | {n for n in SOURCES.names + CLIPS.names if n.startswith("seconds_")}


def to_table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """Rows (dicts, extra keys ignored, missing keys null) as a table of exactly `schema`."""
    return pa.Table.from_pylist([{k: r.get(k) for k in schema.names} for r in rows], schema=schema)
