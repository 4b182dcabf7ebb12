"""Sending a cross-shard transfer and learning how it ended (``ledger.crossshard``).

``transfer_across`` publishes the payer's signed Hold and follows the chains until the
coordinator has either credited the destination (``completed``) or refunded the payer
(``refunded``); the hold itself may be refused like any transaction (``refused``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from ledger.client.publisher import OutcomeWatcher, Publisher, Refused, Sealed
from ledger.crossshard import Step, step_tx_id
from ledger.errors import InfraError
from ledger.kafka.clients import kafka_errors
from ledger.kafka_access import KafkaAccess

completion_wait_s_default = 60.0


async def transfer_across(
    kafka: KafkaAccess | str,
    hold_envelope: bytes,
    hold_id: bytes,
    *,
    sealed_wait_s: float = 30.0,
    completion_wait_s: float = completion_wait_s_default,
) -> dict[str, Any]:
    """Publish a cross-shard Hold and wait for its end; a JSON-ready status."""
    watcher = OutcomeWatcher(kafka)
    publisher = Publisher(kafka, client_id="ledger-crossshard-client")
    with kafka_errors(f"connecting to Kafka at {kafka}"):
        await watcher.start()
        await publisher.start()
    try:
        held = watcher.expect(hold_id)
        credit = watcher.expect(step_tx_id(hold_id, Step.CREDIT))
        refund = watcher.expect(step_tx_id(hold_id, Step.REFUND))
        await publisher.submit_many([hold_envelope], [hold_id])
        try:
            outcome = await asyncio.wait_for(held, sealed_wait_s)
        except TimeoutError as exc:
            raise InfraError(f"the hold was not sealed within {sealed_wait_s:.0f} s") from exc
        if isinstance(outcome, Refused):
            return {"status": "refused", "code": outcome.code, "detail": outcome.detail}
        # The first sealed of credit and refund ends it (a refused credit is why a refund comes).
        pending = {credit, refund}
        deadline = asyncio.get_running_loop().time() + completion_wait_s
        while pending:
            remaining = deadline - asyncio.get_running_loop().time()
            done, pending = await asyncio.wait(
                pending, timeout=max(0.0, remaining), return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                break
            for future in done:
                end = future.result()
                if isinstance(end, Sealed):
                    return {
                        "status": "completed" if future is credit else "refunded",
                        "hold": {"ledger": outcome.ledger, "height": outcome.height},
                        "end": {
                            "ledger": end.ledger,
                            "height": end.height,
                            "tx_id": end.tx_id.hex(),
                        },
                    }
        raise InfraError(
            f"held at height {outcome.height} of {outcome.ledger}, but neither credited nor "
            f"refunded within {completion_wait_s:.0f} s: is the cross-shard coordinator running?"
        )
    finally:
        await publisher.stop()
        await watcher.stop()
