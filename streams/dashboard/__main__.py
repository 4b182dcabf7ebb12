"""``python -m streams.dashboard``: serve the dashboard on 127.0.0.1:$LEDGER_DASHBOARD_PORT until killed.

Exit codes: 0 stopped by SIGTERM or SIGINT; 3 the port is taken (infrastructure, as in the CLI);
4 a bad setting.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys

from ledger.errors import ConfigError, InfraError
from ledger.settings import Settings
from streams.lifecycle import collect_less

EXIT_INFRA = 3
EXIT_BAD_INPUT = 4


async def serve_until_stopped(settings: Settings) -> None:
    from streams.dashboard.server import start

    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, stopped.set)
    try:
        runner, _ = await start(settings)
    except OSError as exc:
        raise InfraError(
            f"cannot listen on 127.0.0.1:{settings.dashboard_port} ({exc.strerror}); "
            "set LEDGER_DASHBOARD_PORT to a free port"
        ) from exc
    try:
        await stopped.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s",
    )
    # aiokafka logs every refused connection; the dashboard reports Kafka's state itself
    # (ledger_source_up and one log line per change), so only its critical errors are kept.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"dashboard: {exc}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    collect_less()  # every block allocates a few thousand objects that reference counting frees
    gc.freeze()
    try:
        asyncio.run(serve_until_stopped(settings))
    except InfraError as exc:
        print(f"dashboard: {exc}", file=sys.stderr)
        sys.exit(EXIT_INFRA)


if __name__ == "__main__":
    main()
