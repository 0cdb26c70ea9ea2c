"""Stop-string detection on incrementally decoded text.

A stop string may span several tokens (``" beta" + " gamma"`` contains ``"beta gamma"``) or
sit inside one token (``"DEF"`` contains ``"DE"``), so detection searches the decoded text,
never individual tokens, and only the tail that new tokens could have completed.
"""

from __future__ import annotations

from collections.abc import Sequence


def find_stop(text: str, stops: Sequence[str], new_from: int = 0) -> int | None:
    """Return the index in ``text`` where the earliest stop string begins, or None.

    Parameters
    ----------
    text : str
        All text decoded so far for one sequence.
    stops : sequence of str
        Non-empty stop strings.
    new_from : int
        Length of the text before the latest token was appended; only matches that end
        after this position are new (earlier text was already searched).

    Returns
    -------
    int or None
        Cut position: the completion is ``text[:index]`` (stop string excluded).
    """
    best: int | None = None
    for s in stops:
        i = text.find(s, max(0, new_from - len(s) + 1))
        if i != -1 and (best is None or i < best):
            best = i
    return best
