"""Waiting in tests: poll a probe until its value is ready, or fail saying what was awaited and
the last value seen. Every wait is on a condition, never a fixed sleep."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")

message_chars_max = 2_000


@overload
async def eventually(
    probe: Callable[[], Awaitable[T]],
    ready: Callable[[T], object] = ...,
    *,
    what: str,
    timeout_s: float = ...,
    interval_s: float = ...,
) -> T: ...


@overload
async def eventually(
    probe: Callable[[], T],
    ready: Callable[[T], object] = ...,
    *,
    what: str,
    timeout_s: float = ...,
    interval_s: float = ...,
) -> T: ...


async def eventually(
    probe: Callable[[], Any],
    ready: Callable[[Any], object] = bool,
    *,
    what: str,
    timeout_s: float = 30.0,
    interval_s: float = 0.25,
) -> Any:
    """``probe()`` (awaited when it returns an awaitable) as soon as ``ready`` holds for it;
    an AssertionError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if ready(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(_timed_out(timeout_s, what, value))
        await asyncio.sleep(interval_s)


def eventually_sync(
    probe: Callable[[], T],
    ready: Callable[[T], object] = bool,
    *,
    what: str,
    timeout_s: float = 30.0,
    interval_s: float = 0.25,
) -> T:
    """``eventually`` for synchronous tests."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if ready(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(_timed_out(timeout_s, what, value))
        time.sleep(interval_s)


def _timed_out(timeout_s: float, what: str, value: object) -> str:
    return f"not within {timeout_s} s: {what}; last seen: {value!r}"[:message_chars_max]
