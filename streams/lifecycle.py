"""How a long-running processor ends: any failure ends the whole process.

Sequence and project keep state in memory that must never run ahead of what they committed; the
safe recovery from anything unexpected is a restart, which rebuilds that state from the chain and
PostgreSQL. So instead of logging and limping on, a failure is logged and the process exits.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable

from ledger.errors import LedgerError

EXIT_FATAL = 70


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
