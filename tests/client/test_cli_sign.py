"""Envelope files without services: ``submit --envelope-out`` prepares, ``ledger sign`` shows and
cosigns, and every mistake (a bad file, a changed body, an expired envelope, a key twice, a wrong
passphrase, policy options that do not fit) is one line and a non-zero exit, files untouched.

Kafka and PostgreSQL are pointed at closed ports throughout: nothing here may need them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from support.cli import assert_one_line_error, run_ledger, unreachable_services_env

from ledger import codec, signing
from ledger.model import Posting, Transfer
from ledger.signing import Signer, save_private_key

PASSPHRASE = "first passphrase"
SECOND_PASSPHRASE = "second passphrase"
ENV = {**unreachable_services_env(), "LEDGER_KEY_PASSPHRASE": PASSPHRASE}
PAYMENT = ["--from", "treasury", "--to", "bob", "--asset", "USD", "--amount", "250000"]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Key files ``first`` and ``second`` (PASSPHRASE) and ``third`` (SECOND_PASSPHRASE)."""
    directory = tmp_path_factory.mktemp("keys")
    files = {}
    for name, passphrase in (
        ("first", PASSPHRASE),
        ("second", PASSPHRASE),
        ("third", SECOND_PASSPHRASE),
    ):
        files[name] = directory / f"{name}.key"
        save_private_key(files[name], Signer.generate(), passphrase.encode())
    return files


def ledger_json(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = run_ledger(*args, "--json", env={**ENV, **(env or {})})
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def prepare(keys: dict[str, Path], path: Path, *key_names: str) -> dict[str, Any]:
    key_options = [option for name in key_names for option in ("--key", str(keys[name]))]
    return ledger_json(
        "submit", "transfer", *key_options, *PAYMENT, "--validity-s", "600",
        "--envelope-out", str(path),
    )  # fmt: skip


def key_id(keys: dict[str, Path], name: str) -> str:
    passphrase = SECOND_PASSPHRASE if name == "third" else PASSPHRASE
    return signing.load_private_key(keys[name], passphrase.encode()).key_id


def test_prepare_then_sign_collects_both_signatures(keys: dict[str, Path], tmp_path: Path) -> None:
    """The prepared file is an Envelope signed by the first key; ``ledger sign`` shows the
    transfer (tx_id, postings, validity, signers) and adds the second key's signature."""
    path = tmp_path / "payment.envelope"
    prepared = prepare(keys, path, "first")
    assert prepared["status"] == "prepared" and prepared["signers"] == [key_id(keys, "first")]
    assert codec.decode_envelope(path.read_bytes()).cosigners == ()

    result = run_ledger("sign", str(path), "--key", str(keys["second"]), env=ENV)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"tx {prepared['tx_id']} on ledger main: Transfer"
    assert lines[1].split() == ["treasury", "USD", "-250000"]
    assert lines[2].split() == ["bob", "USD", "+250000"]
    assert lines[3].startswith("valid from ") and " s left)" in lines[3]
    assert lines[4].endswith(key_id(keys, "first"))
    assert lines[5].startswith(f"signed by key {key_id(keys, 'second')}: 2 signatures")

    envelope, body = codec.decode_submission(path.read_bytes())
    signing.verify_envelope(envelope)
    assert body.tx_id.hex() == prepared["tx_id"] and len(envelope.cosigners) == 1


def test_sign_out_leaves_the_input_as_it_was(keys: dict[str, Path], tmp_path: Path) -> None:
    """--out writes the cosigned envelope elsewhere; --json reports what was signed."""
    path, out = tmp_path / "in.envelope", tmp_path / "out.envelope"
    prepare(keys, path, "first")
    before = path.read_bytes()
    signed = ledger_json("sign", str(path), "--key", str(keys["second"]), "--out", str(out))
    assert path.read_bytes() == before
    assert signed["kind"] == "Transfer" and signed["file"] == str(out)
    assert signed["operation"]["postings"][0] == {
        "account": "treasury",
        "asset": "USD",
        "amount": -250000,
    }
    assert signed["signers"] == [key_id(keys, "first"), key_id(keys, "second")]
    assert codec.decode_envelope(out.read_bytes()).cosigners[0].public_key != b""


def test_several_keys_with_a_passphrase_each(keys: dict[str, Path], tmp_path: Path) -> None:
    """--key three times, --passphrase-env once per key: one envelope, three signatures."""
    path = tmp_path / "three.envelope"
    prepared = ledger_json(
        "submit", "transfer",
        "--key", str(keys["first"]), "--key", str(keys["second"]), "--key", str(keys["third"]),
        "--passphrase-env", "LEDGER_KEY_PASSPHRASE", "--passphrase-env", "LEDGER_KEY_PASSPHRASE",
        "--passphrase-env", "THIRD_PASSPHRASE",
        *PAYMENT, "--envelope-out", str(path),
        env={"THIRD_PASSPHRASE": SECOND_PASSPHRASE},
    )  # fmt: skip
    assert prepared["signers"] == [key_id(keys, name) for name in ("first", "second", "third")]
    signing.verify_envelope(codec.decode_envelope(path.read_bytes()))


def test_key_info_names_the_key(keys: dict[str, Path]) -> None:
    """``ledger key-info`` prints the id a policy names and the public key."""
    info = ledger_json("key-info", str(keys["first"]))
    signer = signing.load_private_key(keys["first"], PASSPHRASE.encode())
    assert info == {
        "key_id": signer.key_id,
        "public_key": signer.public_key.hex(),
        "file": str(keys["first"]),
    }


def _expired_envelope(keys: dict[str, Path], path: Path) -> None:
    signer = signing.load_private_key(keys["first"], PASSPHRASE.encode())
    long_ago_ms = int(time.time() * 1000) - 120_000
    op = Transfer((Posting("treasury", "USD", -5), Posting("bob", "USD", 5)))
    body = signing.build_tx_body("main", op, validity_ms=60_000, now_ms=long_ago_ms)
    path.write_bytes(signer.sign(body))


@pytest.mark.parametrize(
    ("case", "exit_code", "fragment"),
    [
        ("missing file", 4, "cannot read"),
        ("not an envelope", 4, "is not a signed envelope"),
        ("too large", 4, "larger than"),
        ("changed body", 1, "changed after it was signed"),
        ("expired", 1, "expired at"),
        ("already signed by the submitting key", 4, "already signed"),
        ("wrong passphrase", 4, "wrong passphrase"),
    ],
)
def test_sign_errors(
    case: str, exit_code: int, fragment: str, keys: dict[str, Path], tmp_path: Path
) -> None:
    """Each mistake of ``ledger sign`` is one line and its exit code; the file is unchanged."""
    path = tmp_path / "payment.envelope"
    key, env = keys["second"], ENV
    if case == "missing file":
        path = tmp_path / "nowhere.envelope"
    elif case == "not an envelope":
        path.write_text("shopping list\n")
    elif case == "too large":
        path.write_bytes(bytes(5000))
    elif case == "expired":
        _expired_envelope(keys, path)
    else:
        prepare(keys, path, "first")
    if case == "changed body":
        raw = bytearray(path.read_bytes())
        raw[raw.index(b"treasury")] ^= 1  # the debited account now reads "ureasury"
        path.write_bytes(bytes(raw))
    elif case == "already signed by the submitting key":
        key = keys["first"]
    elif case == "wrong passphrase":
        env = {**ENV, "LEDGER_KEY_PASSPHRASE": "wrong"}
    before = path.read_bytes() if path.exists() else None
    line = assert_one_line_error(
        run_ledger("sign", str(path), "--key", str(key), env=env), exit_code
    )
    assert fragment in line, line
    assert (path.read_bytes() if path.exists() else None) == before


@pytest.mark.parametrize(("case", "fragment"), [("expired", "expired at"), ("bad", "not a signed")])
def test_submit_envelope_refuses_a_bad_file_before_kafka(
    case: str, fragment: str, keys: dict[str, Path], tmp_path: Path
) -> None:
    """``submit envelope`` checks the file first (Kafka here is unreachable: exit 3 otherwise)."""
    path = tmp_path / "payment.envelope"
    if case == "expired":
        _expired_envelope(keys, path)
    else:
        path.write_bytes(b"\x02\x00")
    result = run_ledger("submit", "envelope", str(path), env=ENV)
    assert fragment in assert_one_line_error(result, 1 if case == "expired" else 4)


@pytest.mark.parametrize(
    ("arguments", "exit_code", "fragment"),
    [
        (["--key", "{first}", "--key", "{first}"], 4, "given twice"),
        (["--key", "{first}", "--key", "{second}", *["--passphrase-env", "X"] * 3], 2, "once per"),
        (["--key", "{first}", "--to-ledger", "east"], 2, "--envelope-out"),
    ],
)
def test_prepare_errors(
    arguments: list[str], exit_code: int, fragment: str, keys: dict[str, Path], tmp_path: Path
) -> None:
    """A key given twice, passphrase variables that do not match the keys, a cross-shard
    transfer (published and followed at once): one line, and no file written."""
    path = tmp_path / "payment.envelope"
    filled = [
        argument.format(**{name: str(file) for name, file in keys.items()})
        for argument in arguments
    ]
    result = run_ledger(
        "submit", "transfer", *filled, *PAYMENT, "--envelope-out", str(path), env=ENV
    )
    assert fragment in assert_one_line_error(result, exit_code)
    assert not path.exists()


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        (["--remove", "--threshold", "1"], "--remove takes no other"),
        (["--threshold", "1"], "--policy-key"),
        (["--policy-key", "ab" * 16], "--threshold"),
        (["--policy-key", "ab" * 16, "--threshold", "1", "--high-amount", "5"], "go together"),
        (["--policy-key", "not hex", "--threshold", "1"], "must be hex"),
    ],
)
def test_set_policy_usage_errors(
    arguments: list[str], fragment: str, keys: dict[str, Path], tmp_path: Path
) -> None:
    """Policy options that do not make a policy (or a removal) are usage errors, exit 2."""
    result = run_ledger(
        "submit", "set-policy", "--key", str(keys["first"]), "--account", "treasury",
        *arguments, "--envelope-out", str(tmp_path / "policy.envelope"), env=ENV,
    )  # fmt: skip
    assert fragment in assert_one_line_error(result, 2)
