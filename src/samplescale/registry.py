"""Name registries whose lookup error lists the valid names.

Registered names are kebab-case (``self-consistency``); lookups also accept the snake_case
spelling (``self_consistency``) as an alias, and are case-insensitive.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from samplescale.errors import ConfigError, UnknownNameError

T = TypeVar("T")


def canonical(name: str) -> str:
    """Return the kebab-case canonical form of a registry name (``best_of_n`` -> ``best-of-n``)."""
    return name.strip().lower().replace("_", "-")


class Registry(Generic[T]):
    """A mapping from kebab-case names to objects, with helpful lookup errors.

    Parameters
    ----------
    kind : str
        What the registry holds ("strategy", "backend", "task"), used in error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the decorated object under ``name`` (kebab-case).

        Raises
        ------
        ConfigError
            If ``name`` is not kebab-case or is already registered.
        """
        if name != canonical(name):
            raise ConfigError(
                f"{self.kind} name {name!r} must be kebab-case, e.g. {canonical(name)!r}"
            )

        def deco(obj: T) -> T:
            if name in self._items:
                raise ConfigError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        """Look up ``name`` (kebab- or snake_case).

        Raises
        ------
        UnknownNameError
            If the name is not a registered str; the message lists the registered names.
        """
        if not isinstance(name, str):
            raise UnknownNameError(
                f"{self.kind} name must be a str, got {type(name).__name__} {name!r:.40}; "
                f"valid: {', '.join(sorted(self._items))}"
            )
        key = canonical(name)
        if key not in self._items:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; valid: {', '.join(sorted(self._items))}"
            )
        return self._items[key]

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and canonical(name) in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
