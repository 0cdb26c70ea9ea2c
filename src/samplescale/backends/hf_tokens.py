"""Token bytes and end-of-generation ids of a Hugging Face tokenizer.

samplescale decodes text incrementally from the bytes of each token
(:class:`~samplescale.backends.decoding.SequenceBuilder`), because UTF-8 characters may be
split across tokens. Hugging Face tokenizers store token strings, not bytes: byte-level BPE
(GPT-2, Llama 3, Qwen, SmolLM) maps each byte to a printable character, and SentencePiece
models write spaces as ``"▁"`` and unknown bytes as ``"<0xNN>"``. This module turns those
strings back into bytes, with llama.cpp's conventions (``llama_token_to_piece`` without
special tokens): special and control tokens render as no bytes.

No torch here: only the tokenizer object (``transformers.PreTrainedTokenizerBase``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["end_token_ids", "token_bytes"]

_BYTE_TOKEN = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def _byte_decoder() -> dict[str, int]:
    """The inverse of GPT-2's byte-to-character table (printable bytes map to themselves,
    the other 68 to the characters from U+0100 on)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars)}


def _decoder_types(tokenizer: Any) -> set[str]:
    """The ``type`` names in the fast tokenizer's decoder (empty for slow tokenizers)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return set()
    decoder = json.loads(backend.to_str()).get("decoder") or {}
    found: set[str] = set()

    def walk(d: dict[str, Any]) -> None:
        found.add(str(d.get("type")))
        for sub in d.get("decoders") or ():
            walk(sub)

    walk(decoder)
    return found


def token_bytes(tokenizer: Any, vocab_size: int) -> list[bytes]:
    """The bytes of every token id in ``[0, vocab_size)``.

    Parameters
    ----------
    tokenizer : transformers tokenizer
        A fast tokenizer (byte-level BPE or SentencePiece with byte fallback); for a slow
        one, each token's text is taken from ``convert_tokens_to_string`` (lossy where a
        token holds part of a UTF-8 character).
    vocab_size : int
        Width of the model's logits (may exceed the tokenizer's size: padding ids).

    Returns
    -------
    list of bytes, length ``vocab_size``
        ``b""`` for special tokens and ids the tokenizer does not have.
    """
    strings = tokenizer.convert_ids_to_tokens(list(range(min(vocab_size, len(tokenizer)))))
    special = set(tokenizer.all_special_ids) | {
        i for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items() if t.special
    }
    kinds = _decoder_types(tokenizer)
    table = _byte_decoder() if "ByteLevel" in kinds else None
    out: list[bytes] = []
    for i, s in enumerate(strings):
        if s is None or i in special:
            out.append(b"")
        elif table is not None and all(c in table for c in s):
            out.append(bytes(table[c] for c in s))
        elif m := _BYTE_TOKEN.fullmatch(s):
            out.append(bytes([int(m.group(1), 16)]))
        elif kinds:
            out.append(s.replace("▁", " ").encode("utf-8"))
        else:
            out.append(tokenizer.convert_tokens_to_string([s]).encode("utf-8"))
    return out + [b""] * (vocab_size - len(out))


# Special tokens that end generation by their text, as llama.cpp's vocabulary loader marks
# them (llama-vocab.cpp: end-of-turn tokens, and the fill-in-the-middle pad / repository
# tokens), so that both backends stop on the same tokens of the same model.
END_TEXTS = frozenset(
    {
        "<|endoftext|>",
        "<|im_end|>",
        "<|eot_id|>",
        "<|eom_id|>",
        "<|end|>",
        "<end_of_turn>",
        "<|end_of_text|>",
        "<end_of_utterance>",
        "<EOT>",
        "_<EOT>",
        "<|fim_pad|>",
        "<|repo_name|>",
        "<fim-pad>",
        "<reponame>",
    }
)


def end_token_ids(tokenizer: Any, generation_config: Any) -> frozenset[int]:
    """End-of-generation ids: the tokenizer's EOS, the generation config's ``eos_token_id``
    (an int or a list of them) and the special tokens named in :data:`END_TEXTS`."""
    ids: set[int] = {
        i
        for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items()
        if t.special and str(t) in END_TEXTS
    }
    for v in (
        getattr(tokenizer, "eos_token_id", None),
        getattr(generation_config, "eos_token_id", None),
    ):
        if isinstance(v, int):
            ids.add(v)
        elif isinstance(v, Iterable):
            ids.update(int(x) for x in v)
    return frozenset(ids)
