"""Token log-probabilities of drawn samples, in OpenAI's chat and legacy formats.

These are the log-probabilities the backend reported while drawing (``Sample.logprobs``:
raw model natural-log probabilities, one per generated token). Log-probabilities with top
alternatives or of the prompt are computed by the model afterwards
(:mod:`samplescale.server.echo`).

Token strings follow OpenAI's convention: a token whose bytes are valid UTF-8 is its text;
a token that ends or starts inside a multi-byte character (byte-level BPE splits emoji and
many CJK characters) is ``"bytes:\\xNN..."``, its bytes escaped, so that distinct tokens
never collapse into the same replacement character. The chat format's ``bytes`` field
carries the raw bytes either way. ``text_offset`` counts characters of the text: a token
that starts inside a character has the offset of that character.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from samplescale.types import Sample

Piece = Callable[[int], bytes]


def token_string(raw: bytes) -> str:
    """A token's string: its text when ``raw`` is valid UTF-8, else ``"bytes:"`` followed
    by each byte as ``\\xNN`` (OpenAI's convention for partial characters)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "bytes:" + "".join(f"\\x{b:02x}" for b in raw)


def text_offsets(pieces: Sequence[bytes]) -> list[int]:
    """The character offset at which each of ``pieces`` (consecutive byte strings) starts
    in their concatenation decoded as UTF-8; a piece that starts inside a character gets
    that character's offset."""
    offsets, joined = [], b""
    for raw in pieces:
        offsets.append(len(joined.decode("utf-8", errors="ignore")))
        joined += raw
    return offsets


@dataclass(frozen=True)
class Row:
    """One listed token: its string, its bytes (None where unknown), its log-probability."""

    token: str
    raw: bytes | None
    logprob: float


def text_token_ids(s: Sample, piece: Piece) -> tuple[list[int], int | None]:
    """The sample's token ids that make its text, and its end-of-sequence token (or None).

    A sample that stopped may have generated tokens past its text: the tokens of a stop
    string (not returned, as OpenAI and vLLM do not) and a final end-of-sequence token (an
    id whose text is empty). Tokens are kept while the text they start in is inside
    ``s.text``; the end-of-sequence token is returned apart when the sample ended on it
    right after its text.
    """
    ids = list(s.token_ids)
    if s.finish_reason != "stop":
        return ids, None
    limit, at, kept = len(s.text.encode("utf-8")), 0, []
    for tok in ids:
        if at >= limit:
            break
        kept.append(tok)
        at += len(piece(tok))
    end = ids[-1] if len(kept) == len(ids) - 1 and piece(ids[-1]) == b"" else None
    return kept, end


def _tokens(
    s: Sample, piece: Piece | None, token_ids: bool, end_name: Callable[[int], str] | None = None
) -> list[tuple[str, bytes | None]]:
    """Each token's string and bytes: from its id (``piece``; ``"token_id:<id>"`` when
    asked or without ``piece``), else as the backend reported it (bytes unknown).

    Only the tokens of the text are listed (:func:`text_token_ids`: not those of a stop
    string). A final end-of-sequence token is left out (chat, as OpenAI does), or listed
    under its name ``end_name(id)`` (legacy completions, as vLLM does, so that a harness
    that drops the last entry as the generated one finds it there).
    """
    if not s.token_ids:  # token strings only: those of the text (not of a stop string)
        texts, at = [], 0
        for t in s.token_texts:
            if s.finish_reason == "stop" and at >= len(s.text):
                break
            texts.append(t)
            at += len(t)
        return [(t, None) for t in texts]
    ids, end = (list(s.token_ids), None) if piece is None else text_token_ids(s, piece)
    out: list[tuple[str, bytes | None]] = []
    for tok in ids:
        raw = piece(tok) if piece is not None else None
        out.append((f"token_id:{tok}" if token_ids or raw is None else token_string(raw), raw))
    if end_name is not None and end is not None:
        out.append((f"token_id:{end}" if token_ids else end_name(end), b""))
    return out


def rows(
    s: Sample, piece: Piece | None, token_ids: bool, end_name: Callable[[int], str] | None = None
) -> list[Row]:
    """A :class:`Row` per listed token (see :func:`_tokens`); empty when the sample has no
    log-probabilities or no token identities."""
    tokens = _tokens(s, piece, token_ids, end_name)
    listed = len(s.token_ids) if s.token_ids else len(s.token_texts)
    if not s.logprobs or len(s.logprobs) != listed:
        return []
    return [Row(text, raw, lp) for (text, raw), lp in zip(tokens, s.logprobs)]


def chat_entry(row: Row, token_ids: bool, top: list[Row] | None = None) -> dict[str, Any]:
    """One ``logprobs.content`` entry of a chat choice (``top``: its alternatives)."""
    return {
        "token": row.token,
        "logprob": row.logprob,
        "bytes": None if row.raw is None or token_ids else list(row.raw),
        "top_logprobs": [
            {"token": t.token, "logprob": t.logprob,
             "bytes": None if t.raw is None or token_ids else list(t.raw)}
            for t in top or ()
        ],
    }


def chat_logprobs(s: Sample, piece: Piece | None, token_ids: bool) -> dict[str, Any] | None:
    """A chat choice's ``logprobs`` object (``Sample.logprobs``: raw model natural-log
    probabilities; ``top_logprobs`` empty); None when the sample has none or no token
    identities."""
    listed = rows(s, piece, token_ids)
    if not listed:
        return None
    return {"content": [chat_entry(r, token_ids) for r in listed]}


def completion_logprobs(
    s: Sample, piece: Piece | None, token_ids: bool, end_name: Callable[[int], str] | None = None
) -> dict[str, Any] | None:
    """A text completion choice's ``logprobs`` object (legacy format, no top tokens).

    ``text_offset[i]`` is the character offset of token ``i`` in the choice's text (see
    :func:`text_offsets`; from the token strings where the bytes are unknown).
    """
    listed = rows(s, piece, token_ids, end_name)
    if not listed:
        return None
    return {
        "tokens": [r.token for r in listed],
        "token_logprobs": [r.logprob for r in listed],
        "top_logprobs": None,
        "text_offset": text_offsets(
            [r.raw if r.raw is not None else r.token.encode("utf-8") for r in listed]
        ),
    }
