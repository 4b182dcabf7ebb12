"""Project: placeholder until the projector lands (see streams.postgres)."""

from typing import Any

from ledger.settings import Settings


def register(app: Any, settings: Settings) -> None:
    pass


async def run_forever(settings: Settings) -> None:
    pass
