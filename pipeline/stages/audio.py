"""Stage 4 (cheap, so it runs before face and lip sync): loudness, share of speech and speech-to-noise ratio
of each clip."""
from __future__ import annotations

from pipeline.checks.loudness import mean_volume_db
from pipeline.checks.speech_snr import speech_snr_db
from pipeline.checks.vad import overlap_ratio
from pipeline.stages.base import Record, Resources, Stage, reject
from pipeline.stages.worker_state import clip_pcm


class AudioStage(Stage):
    name = "audio"
    section = "audio"
    resources = Resources(cpus=0.25, memory_gb=0.2)

    def process(self, records: list[Record]) -> None:
        for c in records:
            pcm = clip_pcm(c, self.run.sample_rate)
            c["loudness_db"] = round(mean_volume_db(pcm), 2)
            c["speech_ratio"] = round(overlap_ratio(c.scratch.source.scratch.speech, c["start_s"], c["end_s"]), 4)
            c["speech_snr_db"] = round(speech_snr_db(pcm, self.run.sample_rate), 2)
            if c["loudness_db"] < self.cfg.min_loudness_db:
                reject(c, self.name, "loudness", f"mean volume {c['loudness_db']:.1f} dB < {self.cfg.min_loudness_db} dB")
            elif c["speech_ratio"] < self.cfg.min_speech_ratio:
                reject(c, self.name, "speech_ratio",
                       f"speech in {c['speech_ratio']:.0%} of the clip < {self.cfg.min_speech_ratio:.0%}")
            elif c["speech_snr_db"] < self.cfg.min_speech_snr_db:
                reject(c, self.name, "speech_snr", f"speech {c['speech_snr_db']:.1f} dB over the noise (WADA) "
                       f"< {self.cfg.min_speech_snr_db} dB (a noisy room, a music bed)")
