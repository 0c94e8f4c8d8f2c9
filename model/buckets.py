"""Picture sizes (buckets) a latent can have: each side a whole number of transformer tokens."""
from __future__ import annotations

# pixels per transformer token side: the VAE's spatial stride times the transformer's 2x2 patch
BUCKET_MULTIPLE = {"2.2": 16 * 2, "2.1": 8 * 2}


def parse_buckets(text: str, video_vae: str = "2.2", multiple: int | None = None) -> list[tuple[int, int]]:
    """'704x704,832x480' -> [(704, 704), (832, 480)] as (width, height). Sides must be multiples of the VAE
    stride times the patch (32 for Wan2.2; `multiple` overrides it, for the toy autoencoders), else the
    latent has an odd side the transformer cannot patch."""
    out, multiple = [], multiple or BUCKET_MULTIPLE[video_vae]
    for part in text.split(","):
        try:
            w, h = (int(v) for v in part.lower().split("x"))
        except ValueError:
            raise ValueError(f"bucket {part!r}: expected WIDTHxHEIGHT, for example 704x704") from None
        if w <= 0 or h <= 0 or w % multiple or h % multiple:
            fix = "x".join(str(max(multiple, round(v / multiple) * multiple)) for v in (w, h))
            raise ValueError(f"bucket {part}: with this video VAE, width and height must be positive "
                             f"multiples of {multiple} (VAE stride x transformer patch 2); nearest: {fix}")
        out.append((w, h))
    return out
