"""Which partition Kafka's default partitioner picks for a key, for many keys at a time.

The contract says a submission's Kafka key is its ``tx_id`` and the partition is the default
partitioner's: ``murmur2(key) & 0x7FFFFFFF`` modulo the partition count, as in the Java client and
aiokafka's ``DefaultPartitioner``. ``Publisher.submit_many`` builds its batches per partition
itself (``send_batch``), so it must compute that choice; aiokafka's pure-Python ``murmur2`` costs
about 3 µs a key, more than the batched send of the message (about 1 µs).

A ``tx_id`` is always 16 bytes (Avro ``fixed`` 16), so the hash of many of them can be computed in
parallel lanes of one big integer: key ``i`` sits in bits ``128 i .. 128 i + 127``, each 32-bit
step of murmur2 works on every lane at once, and a lane never spills into the next one because
every product of two 32-bit values fits in 64 bits and every shift is masked back to 32. That is
about 0.3 µs a key. Keys of any other length take aiokafka's own ``murmur2``.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from aiokafka.partitioner import murmur2

tx_id_size = 16
"""Bytes of a tx_id (schema TxBody: fixed 16): the lane width of the parallel hash."""

_lane_size = tx_id_size
_word_shifts = (0, 32, 64, 96)
"""Bit offsets of a 16-byte key's four little-endian 32-bit words within its lane."""
_multiplier = 0x5BD1E995
_seed_for_16 = 0x9747B28C ^ tx_id_size
"""murmur2's initial hash: its seed mixed with the key length (always 16 here)."""
_sign_bit_clear = 0x7FFFFFFF
"""Kafka drops the hash's sign bit before the modulo (``toPositive`` in the Java client)."""
_lane_low_word = (0xFFFFFFFF).to_bytes(4, "little") + bytes(_lane_size - 4)
_unpack_lane_words = struct.Struct(f"<I{_lane_size - 4}x").iter_unpack

assert len(_lane_low_word) == _lane_size


def murmur2_many(keys: Sequence[bytes]) -> list[int]:
    """Kafka's murmur2 of each key, equal to ``aiokafka.partitioner.murmur2(key)``."""
    if not keys:
        return []
    if set(map(len, keys)) != {tx_id_size}:
        return [murmur2(key) for key in keys]
    return _murmur2_of_16_byte_keys(keys)


def default_partitions(keys: Sequence[bytes], partitions: Sequence[int]) -> list[int]:
    """The partition the default partitioner picks for each key, among ``partitions`` (all of
    the topic's partitions, sorted by id, as aiokafka and the Java client pass them)."""
    count = len(partitions)
    if count == 0:
        raise ValueError("a topic has at least one partition")
    return [partitions[(value & _sign_bit_clear) % count] for value in murmur2_many(keys)]


def _murmur2_of_16_byte_keys(keys: Sequence[bytes]) -> list[int]:
    """murmur2 (Java client's ``Utils.murmur2``) of n 16-byte keys in n parallel 128-bit lanes.

    Every step is the scalar algorithm's, written for all lanes: ``& mask`` is the scalar
    ``& 0xFFFFFFFF`` of each lane, and a right shift is masked too, so that the low bits of the
    next lane, which the shift pulls in at the top, are dropped.
    """
    count = len(keys)
    mask = int.from_bytes(_lane_low_word * count, "little")
    lanes = int.from_bytes(b"".join(keys), "little")
    hashes = int.from_bytes(
        (_seed_for_16.to_bytes(4, "little") + bytes(_lane_size - 4)) * count, "little"
    )
    for shift in _word_shifts:
        word = (lanes >> shift) & mask
        word = (word * _multiplier) & mask
        word ^= (word >> 24) & mask
        word = (word * _multiplier) & mask
        hashes = ((hashes * _multiplier) & mask) ^ word
    hashes ^= (hashes >> 13) & mask
    hashes = (hashes * _multiplier) & mask
    hashes ^= (hashes >> 15) & mask
    return [value for (value,) in _unpack_lane_words(hashes.to_bytes(_lane_size * count, "little"))]
