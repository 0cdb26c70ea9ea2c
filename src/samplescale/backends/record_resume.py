"""Resume a run onto its record file: the calls already recorded are served from it, the
rest go to the model and are appended, so an interrupted run loses no model call.

:class:`ResumingBackend` wraps a backend over a record file of
:mod:`samplescale.backends.record` (same format). A missing or empty file is started with
its header, as :class:`~samplescale.backends.record.RecordingBackend` starts one. An
existing one must have been recorded from the same backend and model (its header's name
and identity); its calls are then served exactly as
:class:`~samplescale.backends.record.ReplayBackend` serves them (same prompt, parameters
and caller's generator state give the recorded ``Generation``, repeated identical calls in
recorded order, and the caller's generator is left as the recorded call left it) until
the first call that the file does not hold: that call and every later one go to the
wrapped backend and are appended. A deterministic caller (seeded calls, a seeded
generator) rerun with the same inputs therefore asks the model only the calls the
interrupted run had not finished. A last line cut short by the interruption (no newline)
is dropped: that call is made again.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from samplescale.backends.base import Backend, StreamEvent, replay
from samplescale.backends.record import NotRecorded, RecordingBackend, ReplayBackend, read_header
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.types import Generation, Prompt

__all__ = ["ResumingBackend"]

LABEL = "resume"  # how error messages name the record file's use


def _drop_partial_line(path: Path) -> None:
    """Truncate ``path`` after its last newline (a line cut short by an interruption)."""
    with path.open("rb+") as fh:
        data = fh.read()
        keep = data.rfind(b"\n") + 1
        if keep < len(data):
            fh.truncate(keep)


def _check_header(path: Path, name: str, identity: Any) -> None:
    """Refuse a record file whose header names another backend or model identity."""
    head = read_header(path, LABEL)
    identity = json.loads(json.dumps(identity))  # as the header reads back
    diffs = []
    if head.name != name:
        diffs.append(f"backend {head.name!r} -> {name!r}")
    if head.identity != identity:
        diffs.append(f"model {json.dumps(head.identity)[:200]} -> {json.dumps(identity)[:200]}")
    if diffs:
        raise ConfigError(
            f"{LABEL} {path}: the file holds the calls of another model ({'; '.join(diffs)}); "
            "resume onto it only with the backend and model that recorded it"
        )


class ResumingBackend:
    """``backend`` resumed onto the record file ``path`` (see the module docstring).

    Parameters
    ----------
    backend : Backend
        The wrapped backend, asked every call the file does not hold.
    path : str or Path
        The record file: created with its header when missing or empty, else resumed.
    identity : JSON value, optional
        The model's identity (as an eval's run.json records it); must equal the header's.

    Attributes
    ----------
    served : int
        Calls served from the file so far.
    capabilities : Capabilities
        The wrapped backend's, with ``logits`` False (next-token logits are not recorded).

    Raises
    ------
    ConfigError
        If the file cannot be read or written, is not a record file, has a malformed line
        (its number named), or its header names another backend or model identity (the
        file and what differs named).
    """

    def __init__(self, backend: Backend, path: str | Path, identity: Any = None) -> None:
        self.path = Path(path)
        self.name = backend.name
        try:
            if self.path.exists():
                _drop_partial_line(self.path)
            resume = self.path.exists() and self.path.stat().st_size > 0
        except OSError as exc:
            raise ConfigError(f"{LABEL} {path}: cannot read a record file ({exc})") from exc
        self._replay: ReplayBackend | None = None
        if resume:
            _check_header(self.path, backend.name, identity)
            self._replay = ReplayBackend(self.path, LABEL)
        self._recorder = RecordingBackend(
            backend, self.path, identity, append=resume, label=LABEL
        )
        self.capabilities = self._recorder.capabilities
        self.served = 0
        self._lock = threading.Lock()

    def _served(
        self, prompt: Prompt, params: SamplingParams, rng: np.random.Generator | None
    ) -> Generation | None:
        """The recorded reply of this call, or None from the first unrecorded call on."""
        with self._lock:
            if self._replay is None:
                return None
            try:
                gen = self._replay.generate(prompt, params, rng)
            except NotRecorded:
                self._replay = None  # every later call is live
                return None
            self.served += 1
            return gen

    def generate(
        self, prompt: Prompt, params: SamplingParams, rng: np.random.Generator | None = None
    ) -> Generation:
        """The recorded ``Generation`` of this call (``rng`` left as the recorded call left
        it), else the wrapped backend's, appended to the file."""
        gen = self._served(prompt, params, rng)
        return gen if gen is not None else self._recorder.generate(prompt, params, rng)

    def stream(
        self, prompt: Prompt, params: SamplingParams, rng: np.random.Generator | None = None
    ) -> Iterator[StreamEvent]:
        """The recorded call as a stream (each sample's text as one delta, then the
        ``Generation``), else the wrapped backend's stream, appended when it ends."""
        gen = self._served(prompt, params, rng)
        return replay(gen) if gen is not None else self._recorder.stream(prompt, params, rng)

    def close(self) -> None:
        """Close the file and the wrapped backend (where it has ``close``)."""
        self._recorder.close()
