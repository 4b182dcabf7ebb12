"""Every limit of the system, in one place. Names end with their unit; each says why."""

# A Kafka message must hold one block. The broker and topics are configured with
# message_bytes_max; a block never exceeds block_bytes_max plus its header and framing.
envelope_bytes_max = 4_096
"""Largest submission accepted: a 16-posting transfer with memo fits in about 1.5 KiB."""

memo_chars_max = 256
"""Free text is for humans; anything bigger belongs in an attestation's document."""

external_ref_chars_max = 128
"""Long enough for any payment system's reference (UUIDs, ISO 20022 end-to-end ids)."""

identifier_chars_max = 64
"""Account, asset and ledger names: short, so that rows and indexes stay small."""

postings_min_count = 2
postings_max_count = 16
"""A transfer moves money between at least two accounts; 16 legs cover netting and DvP."""

roles_max_count = 4
owned_accounts_max_count = 256
"""A key owning more accounts than this should be an admin key instead."""

cosigners_max_count = 7
"""Signers of one envelope besides the submitting one: 8 signatures in all cover any dual or
treasury control, and each costs the verify stage and every witness a signature check."""

metadata_entries_max_count = 16
metadata_key_chars_max = 64
metadata_value_chars_max = 256
"""Metadata on a transaction or an account: labels and references for people and joins, not a
document store (an Attest digest carries documents). 16 full entries are about 5 KiB, more than
an envelope holds, so the envelope limit binds first."""

confidential_recipients_max_count = 8
"""Keys a confidential part is encrypted to: the parties of a payment and an auditor or two.
Each costs about 82 bytes of the envelope and one X25519 exchange when it is made."""

audit_path_max_count = 16
"""Hashes in a Merkle audit path a transaction carries (Reverse): a block of block_tx_max_count
transactions needs 11."""

policy_keys_max_count = 16
"""Keys an account policy names (its n of k-of-n)."""

policy_counterparties_max_count = 64
"""Accounts an account policy allows money to go to; more is a list for a directory, not a
policy."""

asset_scale_max = 18
"""10**18 still fits int64, so one whole unit of any asset is representable."""

validity_window_ms_max = 10 * 60 * 1000
"""Replay protection remembers tx_ids for this long; longer windows cost memory."""

clock_skew_ms_max = 5_000
"""A transaction created this far in the sequencer's future is still accepted as valid."""

block_tx_max_count = 2_000
"""Largest block by count: at 10,000 tx/s and 200 ms waits, blocks stay below this."""

block_bytes_max = 4 * 1024 * 1024
"""Largest block by size, before the block's own framing."""

block_wait_ms = 150
"""A block is sealed at most this long after its first transaction: half of the 300 ms p99
confirmation budget at moderate rates (BENCHMARKS.md); at 12,000 tx/s a block still fills to
about 1,800 transactions, under block_tx_max_count."""

verified_batch_tx_max_count = 500
"""Envelopes in one ledger.verified message. A block holds whole messages, so blocks fill to
at least block_tx_max_count - verified_batch_tx_max_count when the load is high; one message per
shard per verify poll keeps the sequencer's per-message cost off the per-transaction path."""

verified_batch_bytes_max = verified_batch_tx_max_count * envelope_bytes_max
"""Largest ledger.verified message before framing: every envelope at its size limit."""

message_bytes_max = 8 * 1024 * 1024
"""Kafka's message.max.bytes and max.request.size: a full block plus framing fits."""

snapshot_chunk_bytes_max = 4 * 1024 * 1024
"""Largest message of a chunked state snapshot on ``ledger.snapshots`` (``ledger.snapshots``
module): half the message limit, so a chunk and its JSON header always fit with room to spare,
and a reader's fetch (``max_partition_fetch_bytes`` = message_bytes_max) always holds a whole
one. A full replay window at 10,000 tx/s and 60 s validity (600k tx_ids) takes 3 of them."""

snapshot_chunk_max_count = 4_096
"""A snapshot of more chunks than this (16 GiB) is refused on both sides: a reader never trusts a
count it read from the topic to size its work, and no state of one shard comes near it."""

int64_max = 2**63 - 1
int64_min = -(2**63)

assert postings_min_count >= 2
assert postings_max_count * envelope_bytes_max < block_bytes_max
assert block_bytes_max + block_tx_max_count * 64 + 4096 < message_bytes_max
assert verified_batch_tx_max_count * 2 <= block_tx_max_count
assert verified_batch_bytes_max * 2 <= block_bytes_max
assert clock_skew_ms_max < validity_window_ms_max
assert 10**asset_scale_max <= int64_max
assert snapshot_chunk_bytes_max <= message_bytes_max // 2
assert block_tx_max_count <= 2**audit_path_max_count
# Every recipient entry together leaves three quarters of an envelope to the transaction.
assert confidential_recipients_max_count * 82 < envelope_bytes_max // 4

finality_threshold_max = 64
"""Witnesses a finality policy may require (SetFinality.threshold)."""
