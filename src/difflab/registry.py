"""Named entries of one kind (tasks, hooks, ...): register by name, list, look up with a one-line
error that lists the valid names."""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> entry table; `kind` names the entries in errors ("unknown task 'x'; ...")."""

    def __init__(self, kind: str, error: type[Exception] = ValueError):
        self.kind, self.error = kind, error
        self._entries: dict[str, T] = {}

    def register(self, name: str):
        """Decorator: add the entry under `name` (a class also gets `.name = name`)."""

        def add(entry: T) -> T:
            if isinstance(entry, type):
                entry.name = name
            self._entries[name] = entry
            return entry

        return add

    def names(self) -> list[str]:
        return list(self._entries)

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise self.error(f"unknown {self.kind} {name!r}; choose one of "
                             f"{', '.join(self._entries)}")
        return self._entries[name]


__all__ = ["Registry"]
