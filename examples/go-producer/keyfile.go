package main

// Reading the project's key files with the standard library only.
//
// A key file is what Python cryptography writes for an Ed25519 key with
// BestAvailableEncryption: a PEM "ENCRYPTED PRIVATE KEY" block holding a PKCS#8
// EncryptedPrivateKeyInfo (RFC 5958), encrypted with PBES2 (RFC 8018):
// PBKDF2-HMAC-SHA256 derives a 32-byte key from the passphrase, AES-256-CBC with
// PKCS#7 padding encrypts the inner PKCS#8 PrivateKeyInfo. Go's crypto/x509
// parses the inner key but not the encryption around it, so that part is here.
// Anything else (another KDF, PRF or cipher) is refused by name, never guessed.

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
)

const (
	// keyFileBytesMax bounds what is read: an encrypted Ed25519 key is about
	// 300 bytes of PEM, so anything much larger is not a key file.
	keyFileBytesMax = 64 * 1024
	// pbkdf2IterationCountMax bounds the work a damaged or hostile file can ask
	// for (cryptography writes a few thousand; this is seconds of HMAC-SHA256).
	pbkdf2IterationCountMax = 10_000_000
	// aes256KeyBytes is the key size AES-256-CBC needs from PBKDF2.
	aes256KeyBytes = 32
)

var (
	oidPBES2          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2         = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidHMACWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidAES256CBC      = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
)

// errWrongPassphrase is what a failed decryption means in practice; a damaged
// file cannot be told apart from a wrong passphrase, so the message says both.
var errWrongPassphrase = errors.New("wrong passphrase, or the key file is damaged")

type encryptedPrivateKeyInfo struct {
	Algorithm     pkix.AlgorithmIdentifier
	EncryptedData []byte
}

type pbes2Parameters struct {
	KeyDerivationFunc pkix.AlgorithmIdentifier
	EncryptionScheme  pkix.AlgorithmIdentifier
}

type pbkdf2Parameters struct {
	Salt           []byte
	IterationCount int
	KeyLength      int                      `asn1:"optional"`
	PRF            pkix.AlgorithmIdentifier `asn1:"optional"` // absent means HMAC-SHA1
}

// loadPrivateKey reads the Ed25519 key in the encrypted key file at path.
func loadPrivateKey(path string, passphrase []byte) (ed25519.PrivateKey, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read key file: %w", err)
	}
	defer file.Close()
	contents, err := io.ReadAll(io.LimitReader(file, keyFileBytesMax+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read key file: %w", err)
	}
	if len(contents) > keyFileBytesMax {
		return nil, fmt.Errorf("%s: larger than %d bytes, not a key file", path, keyFileBytesMax)
	}
	key, err := decryptPrivateKey(contents, passphrase)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return key, nil
}

// decryptPrivateKey turns the PEM text of an encrypted key file into its key.
func decryptPrivateKey(pemText []byte, passphrase []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(pemText)
	if block == nil || block.Type != "ENCRYPTED PRIVATE KEY" {
		return nil, errors.New("not an encrypted PKCS#8 PEM key file (no ENCRYPTED PRIVATE KEY block)")
	}
	var info encryptedPrivateKeyInfo
	if err := unmarshalWhole(block.Bytes, &info); err != nil {
		return nil, fmt.Errorf("not a PKCS#8 EncryptedPrivateKeyInfo: %w", err)
	}
	if !info.Algorithm.Algorithm.Equal(oidPBES2) {
		return nil, fmt.Errorf("encryption %v is not PBES2", info.Algorithm.Algorithm)
	}
	var scheme pbes2Parameters
	if err := unmarshalWhole(info.Algorithm.Parameters.FullBytes, &scheme); err != nil {
		return nil, fmt.Errorf("bad PBES2 parameters: %w", err)
	}
	derivedKey, err := deriveKey(scheme.KeyDerivationFunc, passphrase)
	if err != nil {
		return nil, err
	}
	plaintext, err := decryptAES256CBC(scheme.EncryptionScheme, derivedKey, info.EncryptedData)
	if err != nil {
		return nil, err
	}
	parsed, err := x509.ParsePKCS8PrivateKey(plaintext)
	if err != nil {
		return nil, errWrongPassphrase
	}
	key, ok := parsed.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("the key is a %T, not Ed25519", parsed)
	}
	return key, nil
}

func deriveKey(function pkix.AlgorithmIdentifier, passphrase []byte) ([]byte, error) {
	if !function.Algorithm.Equal(oidPBKDF2) {
		return nil, fmt.Errorf("key derivation %v is not PBKDF2", function.Algorithm)
	}
	var parameters pbkdf2Parameters
	if err := unmarshalWhole(function.Parameters.FullBytes, &parameters); err != nil {
		return nil, fmt.Errorf("bad PBKDF2 parameters: %w", err)
	}
	if !parameters.PRF.Algorithm.Equal(oidHMACWithSHA256) || !nullOrAbsent(parameters.PRF.Parameters) {
		return nil, fmt.Errorf("PBKDF2 PRF %v is not HMAC-SHA256", parameters.PRF.Algorithm)
	}
	if parameters.IterationCount < 1 || parameters.IterationCount > pbkdf2IterationCountMax {
		return nil, fmt.Errorf("PBKDF2 iteration count %d is not 1 to %d",
			parameters.IterationCount, pbkdf2IterationCountMax)
	}
	if parameters.KeyLength != 0 && parameters.KeyLength != aes256KeyBytes {
		return nil, fmt.Errorf("PBKDF2 key length %d is not %d", parameters.KeyLength, aes256KeyBytes)
	}
	return pbkdf2.Key(sha256.New, string(passphrase), parameters.Salt,
		parameters.IterationCount, aes256KeyBytes)
}

func decryptAES256CBC(scheme pkix.AlgorithmIdentifier, key []byte, ciphertext []byte) ([]byte, error) {
	if !scheme.Algorithm.Equal(oidAES256CBC) {
		return nil, fmt.Errorf("cipher %v is not AES-256-CBC", scheme.Algorithm)
	}
	var iv []byte
	if err := unmarshalWhole(scheme.Parameters.FullBytes, &iv); err != nil || len(iv) != aes.BlockSize {
		return nil, errors.New("bad AES-256-CBC parameters: the IV is not 16 bytes")
	}
	if len(ciphertext) == 0 || len(ciphertext)%aes.BlockSize != 0 {
		return nil, errors.New("the encrypted key is not a whole number of AES blocks")
	}
	blockCipher, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	plaintext := make([]byte, len(ciphertext))
	cipher.NewCBCDecrypter(blockCipher, iv).CryptBlocks(plaintext, ciphertext)
	return removePadding(plaintext)
}

// removePadding strips PKCS#7 padding; bad padding almost always means a wrong
// passphrase (the rare wrong key whose padding happens to look right fails in
// the PKCS#8 parser instead).
func removePadding(plaintext []byte) ([]byte, error) {
	padding := int(plaintext[len(plaintext)-1])
	if padding < 1 || padding > aes.BlockSize {
		return nil, errWrongPassphrase
	}
	body, tail := plaintext[:len(plaintext)-padding], plaintext[len(plaintext)-padding:]
	if !bytes.Equal(tail, bytes.Repeat([]byte{byte(padding)}, padding)) {
		return nil, errWrongPassphrase
	}
	return body, nil
}

// nullOrAbsent: the only parameters an HMAC algorithm identifier may carry.
func nullOrAbsent(parameters asn1.RawValue) bool {
	return len(parameters.FullBytes) == 0 || bytes.Equal(parameters.FullBytes, asn1.NullBytes)
}

// unmarshalWhole is asn1.Unmarshal that also refuses bytes after the value.
func unmarshalWhole(der []byte, value any) error {
	rest, err := asn1.Unmarshal(der, value)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("%d bytes after the value", len(rest))
	}
	return nil
}
