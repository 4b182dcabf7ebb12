package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"testing"
)

// testdata/throwaway.key: Python cryptography's BestAvailableEncryption of the
// Ed25519 key whose seed is the bytes 0, 1, ..., 31.
const (
	throwawayKeyFile    = "testdata/throwaway.key"
	throwawayPassphrase = "test passphrase"
	throwawayPublicKey  = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
)

// A key file written by cryptography decrypts to the key it was made from.
func TestKeyFileFromCryptographyDecrypts(t *testing.T) {
	key, err := loadPrivateKey(throwawayKeyFile, []byte(throwawayPassphrase))
	if err != nil {
		t.Fatal(err)
	}
	seed := make([]byte, 32)
	for index := range seed {
		seed[index] = byte(index)
	}
	if !bytes.Equal(key.Seed(), seed) {
		t.Fatalf("seed %x", key.Seed())
	}
	if got := hex.EncodeToString(key.Public().(ed25519.PublicKey)); got != throwawayPublicKey {
		t.Fatalf("public key %s", got)
	}
}

// A wrong passphrase is errWrongPassphrase, and its text holds no passphrase.
func TestWrongPassphraseIsRefused(t *testing.T) {
	for _, passphrase := range []string{"", "test passphrasf", "demo", throwawayPassphrase + " "} {
		_, err := loadPrivateKey(throwawayKeyFile, []byte(passphrase))
		if !errors.Is(err, errWrongPassphrase) {
			t.Fatalf("passphrase %q: %v", passphrase, err)
		}
		if passphrase != "" && bytes.Contains([]byte(err.Error()), []byte(passphrase)) {
			t.Fatalf("the error names the passphrase: %v", err)
		}
	}
}

// Any single flipped bit of the algorithms, salt or iteration count (the DER
// before the IV), or the DER cut short, fails. The IV and the encrypted key are
// AES-CBC's, which is not authenticated: a flipped bit there can decrypt to a
// key (another one, which the ledger refuses as unknown), so it is not tried.
func TestDamagedKeyFilesFail(t *testing.T) {
	text, err := os.ReadFile(throwawayKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(text)
	var info encryptedPrivateKeyInfo
	var scheme pbes2Parameters
	var iv []byte
	if unmarshalWhole(block.Bytes, &info) != nil ||
		unmarshalWhole(info.Algorithm.Parameters.FullBytes, &scheme) != nil ||
		unmarshalWhole(scheme.EncryptionScheme.Parameters.FullBytes, &iv) != nil {
		t.Fatal("the fixture does not parse")
	}
	parameterBytes := bytes.Index(block.Bytes, iv)
	for index := range parameterBytes {
		for bit := range 8 {
			damaged := bytes.Clone(block.Bytes)
			damaged[index] ^= 1 << bit
			encoded := pem.EncodeToMemory(&pem.Block{Type: block.Type, Bytes: damaged})
			if key, err := decryptPrivateKey(encoded, []byte(throwawayPassphrase)); err == nil {
				t.Fatalf("byte %d bit %d flipped: decrypted to key %x", index, bit, key.Public())
			}
		}
	}
	for size := range block.Bytes {
		encoded := pem.EncodeToMemory(&pem.Block{Type: block.Type, Bytes: block.Bytes[:size]})
		if _, err := decryptPrivateKey(encoded, []byte(throwawayPassphrase)); err == nil {
			t.Fatalf("cut to %d bytes: decrypted", size)
		}
	}
}

// A plain (unencrypted) PKCS#8 file is refused: the project's key files are always encrypted.
func TestUnencryptedKeyFileIsRefused(t *testing.T) {
	encoded := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{0x30, 0x00}})
	if _, err := decryptPrivateKey(encoded, []byte(throwawayPassphrase)); err == nil {
		t.Fatal("an unencrypted key file was accepted")
	}
}
