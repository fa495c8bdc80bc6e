"""The one shape of every by-name factory: register, list, and an unknown name answered with the
nearest valid ones (as the backbone registry does).

Detection heads, segmentation models, losses, optimisers, schedules and the generative options
(GAN losses, noises, likelihoods, upsamplings, VAE architectures) each keep a :class:`Registry`;
``visionsuite list <kind>`` prints them.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from visionsuite.errors import ConfigError

T = TypeVar("T")


class UnknownNameError(ConfigError):
    """A name no entry of a registry has; the message suggests the closest and lists them all."""


def unknown_name_message(kind: str, name: str, names: list[str]) -> str:
    """``Unknown <kind> 'x'. Did you mean …? Valid: …`` (the hint only when one is close)."""
    close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return f"Unknown {kind} {name!r}.{hint} Valid: {', '.join(names)}"


class Registry(Generic[T]):
    """Entries by name, in the order they were registered."""

    def __init__(self, kind: str) -> None:
        #: what an entry is, for messages ("detection head", "optimizer").
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: file the object under ``name`` (twice is an error)."""

        def wrap(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return wrap

    def names(self) -> list[str]:
        return list(self._entries)

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownNameError(unknown_name_message(self.kind, name, self.names())) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
