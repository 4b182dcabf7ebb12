"""The sealer's private keys: the configured one and the successors it rotates to.

A ledger's blocks are sealed by one key at a time; ``RotateSealer`` hands sealing to a successor
from the next block on (docs/sealer-rotation.md). The sequencer must then hold the successor's
private key, so successors live beside the configured key file as ``sealer-<key_id>.key``,
encrypted with the same passphrase. ``ledger rotate-sealer`` writes them there.
"""

from __future__ import annotations

from pathlib import Path

from ledger.errors import KeyFileError
from ledger.signing import Signer, key_id, load_private_key, save_private_key


def successor_key_file(key_file: Path, public_key: bytes) -> Path:
    """Where the successor with ``public_key`` of the sealer key at ``key_file`` is kept."""
    return key_file.with_name(f"sealer-{key_id(public_key)}.key")


class SealerKeyring:
    """The configured sealer key and its successors, loaded on first use."""

    def __init__(self, key_file: Path, passphrase: bytes) -> None:
        self.key_file = key_file
        self._passphrase = passphrase
        self.configured = load_private_key(key_file, passphrase)
        """The key of ``key_file``: the ledger's first sealer, the one replays start trusting."""
        self._loaded = {self.configured.public_key: self.configured}

    def get(self, public_key: bytes) -> Signer | None:
        """The private key of ``public_key`` if this keyring holds it, else None."""
        signer = self._loaded.get(public_key)
        if signer is None:
            path = successor_key_file(self.key_file, public_key)
            if not path.exists():
                return None
            signer = load_private_key(path, self._passphrase)
            if signer.public_key != public_key:
                raise KeyFileError(f"{path} holds key {signer.key_id}, not {key_id(public_key)}")
            self._loaded[public_key] = signer
        return signer

    def add_successor(self) -> Signer:
        """A new key, saved as a successor (mode 0600): the next sealer once its rotation seals."""
        signer = Signer.generate()
        save_private_key(
            successor_key_file(self.key_file, signer.public_key), signer, self._passphrase
        )
        self._loaded[signer.public_key] = signer
        return signer
