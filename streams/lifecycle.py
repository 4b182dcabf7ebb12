"""How a long-running processor ends: any failure ends the whole process.

Sequence and project keep state in memory that must never run ahead of what they committed; the
safe recovery from anything unexpected is a restart, which rebuilds that state from the chain and
PostgreSQL. So instead of logging and limping on, a failure is logged and the process exits.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import Awaitable, Callable

from ledger.errors import LedgerError

EXIT_FATAL = 70

gc_young_objects_max_count = 50_000
"""Tracked objects allocated (net of those freed) before CPython's cyclic GC collects its youngest
generation; its default is 700. A batch allocates and frees tens of thousands of tuples that
reference counting reclaims anyway; at the default, collections and the full collections their
promotions lead to took 9 of 49 µs of this process per transaction (50 blocks of 2,000 transfers
replayed and written), at 50,000 about 1. Cyclic garbage, of which asyncio makes a little, waits
longer: a few MB at most."""


def collect_less() -> None:
    """Raise the youngest GC generation's threshold to ``gc_young_objects_max_count`` (see
    there); pair it with ``gc.freeze()`` once the long-lived state is built."""
    gc.set_threshold(gc_young_objects_max_count, *gc.get_threshold()[1:])


async def run_or_exit(name: str, work: Callable[[], Awaitable[None]], log: logging.Logger) -> None:
    """Await ``work()``; on any error log one line (a traceback for bugs) and exit the process."""
    try:
        await work()
    except asyncio.CancelledError:
        raise
    except LedgerError as exc:
        log.error("%s stopped: %s", name, exc)
        os._exit(EXIT_FATAL)
    except Exception:
        log.exception("%s crashed", name)
        os._exit(EXIT_FATAL)
