"""umT5 text encoder (as Wan2.x conditions on it) through transformers, from a local directory.

texts -> one (tokens, 4096) hidden-state tensor per text, unpadded, at most 512 tokens.
"""
from __future__ import annotations

import os

import torch

MAX_TOKENS = 512
DEFAULT_DIR = "umt5-xxl"


def speech_prompt(transcript: str, caption: str | None = None) -> str:
    """The prompt of a clip: an optional scene caption, then the spoken words between <S> and <E>."""
    speech = f"<S>{transcript.strip()}<E>"
    return f"{caption.strip()} {speech}" if caption else speech


class TextEncoder:
    def __init__(self, path: str, device: str = "cpu", dtype: torch.dtype = torch.float32):
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise FileNotFoundError(f"umT5 encoder not found at {path}/config.json (download it with: "
                                    f"python -m model.loading.fetch --models-dir {os.path.dirname(path) or '.'})")
        from transformers import AutoTokenizer, UMT5EncoderModel

        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = UMT5EncoderModel.from_pretrained(path, torch_dtype=dtype).to(device).eval()
        self.device = device
        self.version = f"umt5:{os.path.basename(os.path.normpath(path))}"

    @torch.no_grad()
    def encode(self, texts: list[str]) -> list[torch.Tensor]:
        tokens = self.tokenizer(texts, max_length=MAX_TOKENS, truncation=True, padding="longest",
                                add_special_tokens=True, return_tensors="pt").to(self.device)
        hidden = self.model(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask).last_hidden_state
        return [h[:n] for h, n in zip(hidden, tokens.attention_mask.sum(1).tolist())]


def save_debug_text_encoder(path: str, vocab_texts: list[str], seed: int = 0) -> str:
    """A tiny random umT5 and a small SentencePiece tokenizer, saved as a transformers directory."""
    import sentencepiece as spm
    from transformers import T5TokenizerFast, UMT5Config, UMT5EncoderModel

    os.makedirs(path, exist_ok=True)
    corpus = os.path.join(path, "spm_corpus.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        f.write("\n".join(vocab_texts * 4) + "\n")
    spm.SentencePieceTrainer.train(input=corpus, model_prefix=os.path.join(path, "spiece"), vocab_size=96,
                                   pad_id=0, eos_id=1, unk_id=2, bos_id=-1, model_type="unigram",
                                   character_coverage=1.0, hard_vocab_limit=False, minloglevel=2)
    os.remove(corpus)
    tokenizer = T5TokenizerFast(vocab_file=os.path.join(path, "spiece.model"), extra_ids=0)
    tokenizer.save_pretrained(path)
    torch.manual_seed(seed)
    config = UMT5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                        relative_attention_num_buckets=8)
    UMT5EncoderModel(config).save_pretrained(path)
    return path
