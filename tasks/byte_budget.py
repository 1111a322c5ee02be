"""A budget of bytes a worker process may hold in memory at once, shared by concurrent requests.

A request reserves its bytes before it holds them and gives them back when done; when the budget has
no room, it waits, first come first served (a large reservation is never overtaken for ever by small
ones).  A reservation larger than the whole budget fails at once.  asyncio has counting semaphores but
none that take a weight, hence this small class.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import weakref
from collections.abc import AsyncIterator

from worker.errors import ErrorCode, PermanentError


class BudgetExceeded(PermanentError):
    """Raised when one reservation alone is larger than the whole budget."""

    code = ErrorCode.PAYLOAD_TOO_LARGE


class ByteBudget:
    """`total` bytes, reserved with ``async with budget.hold(size)``; see the module docstring."""

    def __init__(self, total: int, setting: str) -> None:
        self.total = total
        #: The setting that sizes the budget, named in errors.
        self.setting = setting
        self.held = 0
        self._waiters: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    @contextlib.asynccontextmanager
    async def hold(self, size: int) -> AsyncIterator[None]:
        """Hold `size` bytes for the body of the ``async with``, waiting for room if needed."""
        if size > self.total:
            raise BudgetExceeded(f"{size} bytes do not fit in {self.setting} ({self.total} bytes)")
        await self._acquire(size)
        try:
            yield
        finally:
            self._release(size)

    async def _acquire(self, size: int) -> None:
        if not self._waiters and self.held + size <= self.total:
            self.held += size
            return
        entry = (size, asyncio.get_running_loop().create_future())
        self._waiters.append(entry)
        try:
            await entry[1]
        except BaseException:
            if entry[1].done() and not entry[1].cancelled():
                self._release(size)  # granted, but the waiter was cancelled before it resumed
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(entry)
                self._wake()  # it may have been the one blocking the queue
            raise

    def _release(self, size: int) -> None:
        self.held -= size
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            size, future = self._waiters[0]
            if future.done():
                self._waiters.popleft()
                continue
            if self.held + size > self.total:
                return
            self.held += size
            self._waiters.popleft()
            future.set_result(None)


_PER_LOOP: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, ByteBudget]] = (
    weakref.WeakKeyDictionary()
)


def process_budget(setting: str, total: int) -> ByteBudget:
    """The budget named `setting` of the running event loop, created on first use.

    A worker process runs every request on its one loop (`worker.runtime`), so this is the process's
    budget; each test's own loop gets a fresh one.
    """
    budgets = _PER_LOOP.setdefault(asyncio.get_running_loop(), {})
    budget = budgets.get(setting)
    if budget is None:
        budget = budgets[setting] = ByteBudget(total, setting)
    return budget
