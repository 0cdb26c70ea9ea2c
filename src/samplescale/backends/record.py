"""Record every backend call to a JSONL file, and replay a run from it with no model.

:class:`RecordingBackend` wraps a backend (like :class:`~samplescale.backends.budget.TokenBudgetBackend`)
and appends one line per ``generate`` / ``stream`` call: the prompt, the sampling
parameters (with their seed), the caller's random generator before and after the call,
and the reply (every sample's text, token ids, log-probabilities, finish reason, and the
usage). :class:`ReplayBackend` serves the same calls again from the file: the same
arguments give the recorded ``Generation`` and leave the caller's generator exactly as the
recorded call left it, so a strategy or an eval replayed from the file produces the same
Results (wall times aside: they measure the replay). A call that was not recorded raises
:class:`NotRecorded`.

File format (UTF-8 JSONL): line 1 is a header ``{"samplescale_record": 1, "backend": NAME,
"identity": MODEL, "capabilities": {...}}``; every other line is one call
``{"prompt": ..., "params": ..., "rng": BEFORE, "rng_after": AFTER, "generation": ...}``.
A call's key is its prompt, parameters and ``rng`` (None when the call had no generator).

Next-token logits (``logits_at``) are not recorded: a recording or replayed backend has
``capabilities.logits = False``, so the decoders and scorers that need them are refused.

To resume an interrupted run onto its record file (recorded calls served, the rest live and
appended), see :class:`~samplescale.backends.record_resume.ResumingBackend`.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict, deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from samplescale.backends.base import Backend, Capabilities, StreamEvent, closing, replay
from samplescale.config import SamplingParams
from samplescale.errors import BackendError, ConfigError
from samplescale.types import Generation, Prompt

__all__ = ["NotRecorded", "RecordingBackend", "ReplayBackend", "read_header"]

FORMAT = 1


class NotRecorded(BackendError):
    """A replayed call that the record file does not hold (or holds fewer times)."""


class Header(NamedTuple):
    """The first line of a record file: the recorded backend's name, its model identity
    (as an eval's run.json records it) and its capabilities (``logits`` False)."""

    name: str
    identity: Any
    capabilities: Capabilities


def _rng_state(rng: np.random.Generator | None) -> dict[str, Any] | None:
    """What a generator's future draws and spawns depend on: the bit generator's state
    and its seed sequence (entropy, spawn key, children spawned so far)."""
    if rng is None:
        return None
    bg = rng.bit_generator
    seq = getattr(bg, "seed_seq", None)
    spawn = None
    if isinstance(seq, np.random.SeedSequence):
        spawn = [seq.entropy, list(seq.spawn_key), seq.n_children_spawned]
    return {"state": bg.state, "seed_seq": spawn}


def _key(prompt: Prompt, params: SamplingParams, rng: dict[str, Any] | None) -> str:
    body = {"prompt": prompt.model_dump(mode="json"), "params": params.model_dump(mode="json")}
    return json.dumps({**body, "rng": rng}, sort_keys=True)


def read_header(path: Path, label: str = "--replay") -> Header:
    """The header of a record file (``label``: how error messages name its use, e.g. the
    CLI option).

    Raises
    ------
    ConfigError
        If the file cannot be read or does not start with a samplescale record header.
    """
    try:
        with Path(path).open(encoding="utf-8") as fh:
            head = json.loads(fh.readline() or "null")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{label} {path}: cannot read a record file ({exc})") from exc
    if not isinstance(head, dict) or head.get("samplescale_record") != FORMAT:
        raise ConfigError(f"{label} {path}: not a samplescale record file (no header line)")
    caps = Capabilities.model_validate(head["capabilities"])
    return Header(str(head["backend"]), head["identity"], caps)


class RecordingBackend:
    """``backend`` with every ``generate`` / ``stream`` call appended to ``path``.

    Parameters
    ----------
    backend : Backend
        The wrapped backend.
    path : str or Path
        The record file; created (with its header) or truncated.
    identity : JSON value, optional
        The model as an eval records it (kept in the header for replays).
    append : bool
        Append the calls to ``path``, which already starts with this backend's header (as
        :class:`~samplescale.backends.record_resume.ResumingBackend` checked), instead of
        truncating it and writing the header.
    label : str
        How error messages name the file's use (the CLI option).

    Raises
    ------
    ConfigError
        If the file cannot be written.
    """

    def __init__(
        self,
        backend: Backend,
        path: str | Path,
        identity: Any = None,
        *,
        append: bool = False,
        label: str = "--record",
    ) -> None:
        self.backend = backend
        self.name = backend.name
        self.capabilities = backend.capabilities.model_copy(update={"logits": False})
        self.path = Path(path)
        header = {
            "samplescale_record": FORMAT,
            "backend": backend.name,
            "identity": identity,
            "capabilities": self.capabilities.model_dump(),
        }
        try:
            self._fh = self.path.open("a" if append else "w", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{label} {path}: cannot write ({exc})") from exc
        self._lock = threading.Lock()
        if not append:
            self._write(header)

    def _write(self, obj: dict[str, Any]) -> None:
        with self._lock:
            self._fh.write(json.dumps(obj) + "\n")
            self._fh.flush()

    def _save(
        self, prompt: Prompt, params: SamplingParams, before: Any, rng: Any, gen: Generation
    ) -> None:
        self._write(
            {
                "prompt": prompt.model_dump(mode="json"),
                "params": params.model_dump(mode="json"),
                "rng": before,
                "rng_after": _rng_state(rng),
                "generation": gen.model_dump(),
            }
        )

    def generate(
        self, prompt: Prompt, params: SamplingParams, rng: np.random.Generator | None = None
    ) -> Generation:
        """The wrapped backend's ``generate``, recorded."""
        before = _rng_state(rng)
        gen = self.backend.generate(prompt, params, rng)
        self._save(prompt, params, before, rng, gen)
        return gen

    def stream(
        self, prompt: Prompt, params: SamplingParams, rng: np.random.Generator | None = None
    ) -> Iterator[StreamEvent]:
        """The wrapped backend's ``stream`` (its ``generate`` replayed as one delta per
        sample when it does not stream), recorded when its ``Generation`` arrives."""
        before = _rng_state(rng)
        inner = getattr(self.backend, "stream", None)
        events = (
            inner(prompt, params, rng)
            if inner
            else replay(self.backend.generate(prompt, params, rng))
        )
        return self._events(events, prompt, params, before, rng)

    def _events(
        self, events: Any, prompt: Prompt, params: SamplingParams, before: Any, rng: Any
    ) -> Iterator[StreamEvent]:
        with closing(events):
            for ev in events:
                if isinstance(ev, Generation):
                    self._save(prompt, params, before, rng, ev)
                yield ev

    def close(self) -> None:
        """Close the file and the wrapped backend (where it has ``close``)."""
        with self._lock:
            self._fh.close()
        close = getattr(self.backend, "close", None)
        if close is not None:
            close()


class ReplayBackend:
    """Serves the calls of a record file (see the module docstring), with no model.

    Parameters
    ----------
    path : str or Path
        A file written by :class:`RecordingBackend`.
    label : str
        How error messages name the file's use (the CLI option).

    Raises
    ------
    ConfigError
        If the file is not a record file or a line is malformed (its line number named).
    """

    def __init__(self, path: str | Path, label: str = "--replay") -> None:
        self.path = Path(path)
        head = read_header(self.path, label)
        self.name = head.name
        self.identity = head.identity
        self.capabilities = head.capabilities
        self._calls: dict[str, deque[tuple[Any, Generation]]] = defaultdict(deque)
        with self.path.open(encoding="utf-8") as fh:
            next(fh)
            for no, line in enumerate(fh, start=2):
                try:
                    rec = json.loads(line)
                    key = _key(
                        Prompt.model_validate(rec["prompt"]),
                        SamplingParams.model_validate(rec["params"]),
                        rec["rng"],
                    )
                    gen = Generation.model_validate(rec["generation"])
                except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                    raise ConfigError(
                        f"{label} {path}: line {no} is not a recorded call ({exc})"
                    ) from exc
                self._calls[key].append((rec["rng_after"], gen))
        self._lock = threading.Lock()

    def generate(
        self, prompt: Prompt, params: SamplingParams, rng: np.random.Generator | None = None
    ) -> Generation:
        """The recorded ``Generation`` of this call; ``rng`` is left as the recorded call
        left it.

        Raises
        ------
        NotRecorded
            If the file holds no (more) call with these arguments.
        """
        key = _key(prompt, params, _rng_state(rng))
        with self._lock:
            queue = self._calls.get(key)
            if not queue:
                raise NotRecorded(
                    f"replay {self.path}: this call was not recorded (prompt "
                    f"{json.dumps(prompt.model_dump(mode='json'))[:120]}..., n={params.n}, "
                    f"seed={params.seed}, rng {'given' if rng is not None else 'none'}); "
                    "replay only the run that was recorded, with the same settings"
                )
            after, gen = queue.popleft()
        if rng is not None and after is not None:
            spawned = after["seed_seq"][2] if after["seed_seq"] else None
            seq = rng.bit_generator.seed_seq
            if spawned is not None and isinstance(seq, np.random.SeedSequence):
                rng.spawn(spawned - seq.n_children_spawned)  # advance the spawn counter
            rng.bit_generator.state = after["state"]
        return gen

    def stream(
        self, prompt: Prompt, params: SamplingParams, rng: np.random.Generator | None = None
    ) -> Iterator[StreamEvent]:
        """The recorded call as a stream: each sample's text as one delta, then the
        ``Generation`` (raises :class:`NotRecorded` like :meth:`generate`)."""
        return replay(self.generate(prompt, params, rng))
