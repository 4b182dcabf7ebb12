"""``ledger proof`` and ``ledger verify-proof`` through subprocesses: a proof made from the live
chain verifies offline, with every service unreachable, and fails when any byte of it changes."""

from __future__ import annotations

import json
import random
import re
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.block_topics import (
    FORENSIC_LEDGER,
    SealedChain,
    build_chain,
    create_topic,
    delete_topics,
    unique_topic_name,
    write_values,
)
from support.cli import assert_one_line_error, run_ledger, unreachable_services_env
from support.ledger_fixture import TestLedger

from ledger import codec, signing
from ledger.kafka.principals import ADMIN
from ledger.local.stack import witness_public_keys
from ledger.settings import Settings
from ledger.signing import load_private_key
from ledger.witnessing import cosignature_statement

pytestmark = pytest.mark.services

positions_per_field_count = 4
parallel_checks_count = 4


@dataclass(frozen=True)
class ProvedTx:
    tx_id: str
    height: int
    proof_path: Path
    sealer_key: str


def _submit_json(ledger: TestLedger, *args: str) -> dict[str, object]:
    result = run_ledger("submit", *args, "--json", env=ledger.passphrase_env)
    assert result.returncode == 0, result.stderr
    document: dict[str, object] = json.loads(result.stdout)
    assert document["status"] == "sealed", document
    return document


@pytest.fixture(scope="module")
def proved_tx(test_ledger: TestLedger, tmp_path_factory: pytest.TempPathFactory) -> ProvedTx:
    """An attestation sealed, one more transaction sealed after it, and its proof file."""
    key = str(test_ledger.key_file("alice"))
    attested = _submit_json(
        test_ledger, "attest", "--key", key, "--digest", random.randbytes(32).hex()
    )
    later = _submit_json(
        test_ledger,
        "transfer",
        "--key",
        key,
        "--from",
        "alice",
        "--to",
        "bob",
        "--asset",
        "USD",
        "--amount",
        "1",
    )
    assert int(str(later["height"])) > int(str(attested["height"]))
    proof_path = tmp_path_factory.mktemp("proof") / "proof.json"
    # --final: anchored in a final block, carrying the witnesses' cosignatures.
    result = run_ledger("proof", str(attested["tx_id"]), "--final", "--out", str(proof_path))
    assert result.returncode == 0, result.stderr
    assert f"block {attested['height']}" in result.stdout
    return ProvedTx(
        str(attested["tx_id"]),
        int(str(attested["height"])),
        proof_path,
        test_ledger.sealer_public_key.hex(),
    )


def test_a_proof_from_ledger_proof_verifies(proved_tx: ProvedTx) -> None:
    """verify-proof accepts the file and names the transaction, its block and the anchor."""
    result = run_ledger(
        "verify-proof", str(proved_tx.proof_path), "--sealer-key", proved_tx.sealer_key, "--json"
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["ok"] is True and summary["tx_id"] == proved_tx.tx_id
    assert summary["kind"] == "Attest" and summary["height"] == proved_tx.height
    assert summary["anchor_height"] > proved_tx.height


def test_the_printed_proof_is_the_same_document(proved_tx: ProvedTx) -> None:
    """Without --out the proof goes to stdout; same transaction, same block."""
    result = run_ledger("proof", proved_tx.tx_id)
    assert result.returncode == 0, result.stderr
    printed, written = json.loads(result.stdout), json.loads(proved_tx.proof_path.read_text())
    assert printed["envelope"] == written["envelope"] and printed["block"] == written["block"]


def test_verify_proof_needs_no_service(proved_tx: ProvedTx) -> None:
    """With Kafka and PostgreSQL pointing where nothing listens, the proof still verifies."""
    result = run_ledger(
        "verify-proof",
        str(proved_tx.proof_path),
        "--sealer-key",
        proved_tx.sealer_key,
        env=unreachable_services_env(),
        timeout_s=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"proof holds: tx {proved_tx.tx_id}")


def test_another_sealer_key_fails(proved_tx: ProvedTx) -> None:
    """The proof holds only for the ledger's sealer: any other key is a one-line exit 1."""
    other = signing.Signer.generate().public_key.hex()
    result = run_ledger("verify-proof", str(proved_tx.proof_path), "--sealer-key", other)
    assert "sealer" in assert_one_line_error(result, 1)


def _hex_positions(text: str) -> list[int]:
    """Indexes of every character inside a hex string value of the JSON text."""
    return [
        index
        for match in re.finditer(r'"([0-9a-f]{16,})"', text)
        for index in range(match.start(1), match.end(1))
    ]


def test_changing_any_byte_of_a_hex_field_fails(proved_tx: ProvedTx, tmp_path: Path) -> None:
    """Positions in every hex field (witnesses' cosignatures too), one changed at a time: each
    fails, exit 1."""
    text = proved_tx.proof_path.read_text()
    by_field: dict[str, list[int]] = {}
    for index in _hex_positions(text):
        by_field.setdefault(re.findall(r'"(\w+)":', text[:index])[-1], []).append(index)
    assert {"envelope", "block_seal", "seal", "block_inclusion", "witness_key"} <= set(by_field)
    rng = random.Random(9162)
    chosen = sorted(
        index
        for positions in by_field.values()
        for index in rng.sample(positions, min(len(positions), positions_per_field_count))
    )

    def check(index: int) -> tuple[int, int, str]:
        replacement = "0" if text[index] != "0" else "1"
        changed = tmp_path / f"changed-{index}.json"
        changed.write_text(text[:index] + replacement + text[index + 1 :])
        result = run_ledger("verify-proof", str(changed), "--sealer-key", proved_tx.sealer_key)
        return index, result.returncode, result.stderr

    with ThreadPoolExecutor(parallel_checks_count) as pool:
        results = list(pool.map(check, chosen))
    held = [index for index, code, _ in results if code != 1]
    assert held == [], f"changes at {held} did not make the proof fail with exit 1"
    for _, _, stderr in results:
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("ledger: proof does not hold: "), stderr


def test_a_file_that_is_not_a_proof_fails_in_one_line(tmp_path: Path) -> None:
    """Not JSON, or JSON of another shape: exit 1, one line saying what is wrong."""
    not_json = tmp_path / "not.json"
    not_json.write_text("{ this is not json")
    sealer = "00" * 32
    assert "not JSON" in assert_one_line_error(
        run_ledger("verify-proof", str(not_json), "--sealer-key", sealer), 1
    )
    wrong_shape = tmp_path / "wrong.json"
    wrong_shape.write_text(json.dumps({"version": 1}))
    assert "missing keys" in assert_one_line_error(
        run_ledger("verify-proof", str(wrong_shape), "--sealer-key", sealer, "--json"), 1
    )


@pytest.fixture(scope="module")
async def forensic_topic(settings: Settings) -> AsyncIterator[tuple[str, SealedChain]]:
    """A good three-block chain on a fresh topic, for the proof edge cases."""
    name = unique_topic_name("proofs")
    chain = build_chain([2, 1, 3])
    await create_topic(settings.kafka(ADMIN), name, 1)
    await write_values(
        settings.kafka(ADMIN), name, 0, [codec.encode_block(b) for b in chain.blocks]
    )
    yield name, chain
    await delete_topics(settings.kafka(ADMIN), [name])


def _proof_on(topic: str, tx_id: bytes, *extra: str) -> list[str]:
    return [
        "proof",
        tx_id.hex(),
        "--ledger",
        FORENSIC_LEDGER,
        "--topic",
        topic,
        "--partition",
        "0",
        *extra,
    ]


def test_a_transaction_in_the_newest_block_has_no_proof_yet(
    forensic_topic: tuple[str, SealedChain],
) -> None:
    """The anchor must be later than the block: the newest block's transactions say so, exit 1."""
    topic, chain = forensic_topic
    result = run_ledger(*_proof_on(topic, chain.tx_id(2, 1)))
    assert "newest block" in assert_one_line_error(result, 1)


def test_an_earlier_transaction_of_that_chain_is_proved(
    forensic_topic: tuple[str, SealedChain], tmp_path: Path
) -> None:
    """The same chain proves block 0's transaction, anchored at block 2, under its sealer."""
    topic, chain = forensic_topic
    proof_path = tmp_path / "proof.json"
    assert (
        run_ledger(*_proof_on(topic, chain.tx_id(0, 1), "--out", str(proof_path))).returncode == 0
    )
    sealer = chain.sealer.public_key.hex()
    result = run_ledger("verify-proof", str(proof_path), "--sealer-key", sealer, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["anchor_height"] == 2


def test_an_unknown_transaction_is_not_found(forensic_topic: tuple[str, SealedChain]) -> None:
    """A tx_id in no block: exit 1, one line naming the blocks searched."""
    topic, _ = forensic_topic
    result = run_ledger(*_proof_on(topic, bytes(16)))
    assert "blocks 0..2 searched" in assert_one_line_error(result, 1)


# ---- finality: --witness-keys and --threshold ----------------------------------------------


@pytest.fixture(scope="module")
def witness_file(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The local stack's witness public keys, one per line, as a user would save them."""
    path = tmp_path_factory.mktemp("witnesses") / "witnesses.txt"
    keys = [key.hex() for key in witness_public_keys(settings)]
    path.write_text("# the local witnesses\n" + "\n".join(keys) + "\n")
    return path


def _verify_final(proof_path: Path, sealer_key: str, witnesses: Path, threshold: int) -> Any:
    return run_ledger(
        "verify-proof",
        str(proof_path),
        "--sealer-key",
        sealer_key,
        "--witness-keys",
        str(witnesses),
        "--threshold",
        str(threshold),
    )


def test_a_final_proof_holds_with_its_threshold(proved_tx: ProvedTx, witness_file: Path) -> None:
    """The proof carries at least 2 cosignatures of its anchor: --threshold 2 holds, exit 0."""
    cosignatures = json.loads(proved_tx.proof_path.read_text())["anchor_cosignatures"]
    assert len(cosignatures) >= 2
    result = _verify_final(proved_tx.proof_path, proved_tx.sealer_key, witness_file, 2)
    assert result.returncode == 0, result.stderr
    assert "final: co-signed by" in result.stdout


def test_one_cosignature_too_few_is_not_final(
    proved_tx: ProvedTx, witness_file: Path, tmp_path: Path
) -> None:
    """K-1 valid cosignatures (the others removed) fail --threshold K, exit 1."""
    proof = json.loads(proved_tx.proof_path.read_text())
    threshold = len(proof["anchor_cosignatures"])
    proof["anchor_cosignatures"] = proof["anchor_cosignatures"][: threshold - 1]
    fewer = tmp_path / "fewer.json"
    fewer.write_text(json.dumps(proof))
    result = _verify_final(fewer, proved_tx.sealer_key, witness_file, threshold)
    assert "not final" in assert_one_line_error(result, 1)


def test_cosignatures_by_unlisted_keys_do_not_count(proved_tx: ProvedTx, tmp_path: Path) -> None:
    """Valid cosignatures by witnesses the user did not list count for nothing, exit 1."""
    strangers = tmp_path / "strangers.txt"
    strangers.write_text(signing.Signer.generate().public_key.hex() + "\n")
    result = _verify_final(proved_tx.proof_path, proved_tx.sealer_key, strangers, 1)
    assert "not final" in assert_one_line_error(result, 1)


def test_a_cosignature_of_another_height_fails(
    proved_tx: ProvedTx, witness_file: Path, settings: Settings, tmp_path: Path
) -> None:
    """A registered witness's genuine signature, but over another height than the anchor's, in
    place of its cosignature of the anchor: the proof fails, exit 1."""
    proof = json.loads(proved_tx.proof_path.read_text())
    witness = load_private_key(settings.witness_key_file(1), settings.witness_passphrase)
    anchor = proof["anchor"]
    statement = cosignature_statement(
        anchor["ledger"],
        anchor["height"] - 1,
        bytes.fromhex(anchor["prev_hash"]),
        bytes.fromhex(anchor["blocks_root"]),
    )
    others = [
        c for c in proof["anchor_cosignatures"] if c["witness_key"] != witness.public_key.hex()
    ]
    forged = {
        "witness_key": witness.public_key.hex(),
        "signature": witness.sign_message(statement).hex(),
    }
    proof["anchor_cosignatures"] = sorted([*others, forged], key=lambda c: c["witness_key"])
    moved = tmp_path / "moved.json"
    moved.write_text(json.dumps(proof))
    result = _verify_final(moved, proved_tx.sealer_key, witness_file, 1)
    assert "does not verify over the anchor" in assert_one_line_error(result, 1)
