"""Wake-ups: hooks registered once each, and hooks run after the commit of a session marked by what it wrote.

The feed's writers mark a session that appended feed rows (its commit wakes the feed sockets, told whether
any row was an alert: `FlaggedAfterCommit`); the outbox marks one that wrote notices to push (its commit
wakes the delivery worker). A rollback of the whole transaction forgets the mark.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from sqlalchemy import event
from sqlalchemy.orm import Session as OrmSession

H = TypeVar("H")
Hook = Callable[[], None]
FlagHook = Callable[[bool], None]


class _Registry(Generic[H]):
    """Callables registered at most once each, kept in the order they came."""

    def __init__(self) -> None:
        self._hooks: list[H] = []

    def add(self, hook: H) -> None:
        if hook not in self._hooks:
            self._hooks.append(hook)

    def remove(self, hook: H) -> None:
        if hook in self._hooks:
            self._hooks.remove(hook)


class Hooks(_Registry[Hook]):
    """Hooks without arguments, called in the order they came (a hook may unregister itself)."""

    def fire(self) -> None:
        for hook in list(self._hooks):
            hook()


class _Marks:
    """A mark kept as `session.info[key]` until the transaction ends: `_fired(flag)` after its commit."""

    def __init__(self, key: str) -> None:
        self.key = key
        event.listen(OrmSession, "after_commit", self._after_commit)
        event.listen(OrmSession, "after_rollback", self._after_rollback)

    def _fired(self, flag: bool) -> None:
        raise NotImplementedError

    def _after_commit(self, session: OrmSession) -> None:
        flag = session.info.pop(self.key, None)
        if flag is not None:
            self._fired(flag)

    def _after_rollback(self, session: OrmSession) -> None:
        if not session.in_transaction():
            session.info.pop(self.key, None)


class AfterCommit(Hooks, _Marks):
    """Hooks called after every commit of a session that was `mark`ed."""

    def __init__(self, key: str) -> None:
        Hooks.__init__(self)
        _Marks.__init__(self, key)

    def mark(self, session: OrmSession) -> None:
        session.info[self.key] = True

    def _fired(self, flag: bool) -> None:
        self.fire()


class FlaggedAfterCommit(_Registry[FlagHook], _Marks):
    """Hooks called with a flag after every commit of a session that was `mark`ed: True if any mark of the
    transaction raised it (the feed: the commit wrote alert rows)."""

    def __init__(self, key: str) -> None:
        _Registry.__init__(self)
        _Marks.__init__(self, key)

    def mark(self, session: OrmSession, flag: bool = False) -> None:
        session.info[self.key] = flag or bool(session.info.get(self.key, False))

    def _fired(self, flag: bool) -> None:
        for hook in list(self._hooks):
            hook(flag)
