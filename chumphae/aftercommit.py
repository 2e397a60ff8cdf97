"""Wake-ups: hooks registered once each, and hooks run after the commit of a session marked by what it wrote.

The feed's writers mark a session that appended feed rows (its commit wakes the feed sockets); the
outbox marks one that wrote notices to push (its commit wakes the delivery worker). A rollback of the
whole transaction forgets the mark.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session as OrmSession

Hook = Callable[[], None]


class Hooks:
    """Callables registered at most once each, called in the order they came (a hook may unregister itself)."""

    def __init__(self) -> None:
        self._hooks: list[Hook] = []

    def add(self, hook: Hook) -> None:
        if hook not in self._hooks:
            self._hooks.append(hook)

    def remove(self, hook: Hook) -> None:
        if hook in self._hooks:
            self._hooks.remove(hook)

    def fire(self) -> None:
        for hook in list(self._hooks):
            hook()


class AfterCommit(Hooks):
    """Hooks called after every commit of a session that was `mark`ed (as `session.info[key]`)."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        event.listen(OrmSession, "after_commit", self._after_commit)
        event.listen(OrmSession, "after_rollback", self._after_rollback)

    def mark(self, session: OrmSession) -> None:
        session.info[self.key] = True

    def _after_commit(self, session: OrmSession) -> None:
        if session.info.pop(self.key, False):
            self.fire()

    def _after_rollback(self, session: OrmSession) -> None:
        if not session.in_transaction():
            session.info.pop(self.key, None)
