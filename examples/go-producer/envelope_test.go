package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"strings"
	"testing"
)

// projectSchemas is the repository's schemas/ directory, as the program reads it.
const projectSchemas = "../../schemas"

// docsWorkedBodyVersion1 is the worked TxBody of docs/schemas.md (version 1).
const docsWorkedBodyVersion1 = "000102030405060708090a0b0c0d0e0f" + "086d61696e" + "d00f" + "90b907" +
	"0a" + "04" + "0a616c69636506455552c701" + "06626f6206455552c801" + "00" + "02046869" + "00"

func workedBody() txBody {
	memo := "hi"
	body := txBody{
		Ledger: "main", CreatedAtMs: 1000, ExpiresAtMs: 61000, Memo: &memo,
		Op: map[string]any{transferUnionBranch: transfer{Postings: []posting{
			{Account: "alice", Asset: "EUR", Amount: -100},
			{Account: "bob", Asset: "EUR", Amount: 100},
		}}},
	}
	for index := range body.TxID {
		body.TxID[index] = byte(index)
	}
	return body
}

func mustLoadSchemas(t *testing.T) schemas {
	t.Helper()
	loaded, err := loadSchemas(projectSchemas)
	if err != nil {
		t.Fatal(err)
	}
	return loaded
}

// The docs' worked body, written with version 2, is its version 1 bytes and an empty map.
func TestWorkedExampleEncodesAsTheDocsSay(t *testing.T) {
	encoded, err := mustLoadSchemas(t).encodeBody(workedBody())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hex.EncodeToString(encoded), docsWorkedBodyVersion1+"00"; got != want {
		t.Fatalf("body\n got %s\nwant %s", got, want)
	}
}

// Metadata is one map block of one entry, then 0: the canonical form, no block byte size.
func TestMetadataIsOneCanonicalBlock(t *testing.T) {
	body := workedBody()
	body.Metadata = map[string]string{producerMetadataKey: producerMetadataValue}
	encoded, err := mustLoadSchemas(t).encodeBody(body)
	if err != nil {
		t.Fatal(err)
	}
	want := docsWorkedBodyVersion1 + "02" + "10" + hex.EncodeToString([]byte("producer")) + "04" +
		hex.EncodeToString([]byte("go")) + "00"
	if got := hex.EncodeToString(encoded); got != want {
		t.Fatalf("body\n got %s\nwant %s", got, want)
	}
}

// The envelope is body_version 2, the body bytes as they are, the key, and a signature
// that verifies over the prefix and those bytes only.
func TestEnvelopeLayoutAndSignature(t *testing.T) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	bodyBytes, err := hex.DecodeString(docsWorkedBodyVersion1 + "00")
	if err != nil {
		t.Fatal(err)
	}
	encoded, err := mustLoadSchemas(t).signedEnvelope(bodyBytes, key)
	if err != nil {
		t.Fatal(err)
	}
	publicKey := key.Public().(ed25519.PublicKey)
	head := []byte{0x04, byte(2 * len(bodyBytes))} // zigzag varints; the body is under 64 bytes
	if !bytes.HasPrefix(encoded, head) || len(encoded) != len(head)+len(bodyBytes)+32+64 {
		t.Fatalf("envelope %x", encoded)
	}
	rest := encoded[len(head):]
	if !bytes.Equal(rest[:len(bodyBytes)], bodyBytes) || !bytes.Equal(rest[len(bodyBytes):][:32], publicKey) {
		t.Fatalf("envelope %x", encoded)
	}
	signature := rest[len(bodyBytes)+32:]
	if !ed25519.Verify(publicKey, append([]byte("ledger.v1.tx\x00"), bodyBytes...), signature) {
		t.Fatal("the signature does not verify over the prefixed body")
	}
	if ed25519.Verify(publicKey, bodyBytes, signature) {
		t.Fatal("the signature verifies without the prefix")
	}
}

// Version 2 is the TxBody schema cut after metadata; a field appended later is not in it.
func TestBodyVersionIsTheSchemaCutAfterMetadata(t *testing.T) {
	text := []byte(`{"type": "record", "name": "T", "namespace": "n", "fields": [` +
		`{"name": "a", "type": "int"}, {"name": "metadata", "type": {"type": "map", "values": "string"}},` +
		`{"name": "later", "type": "int", "default": 0}]}`)
	cut, err := cutAfterField(text, lastFieldOfBodyVersion)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(cut), "later") || !strings.Contains(string(cut), `"namespace":"n"`) {
		t.Fatalf("cut schema %s", cut)
	}
	if _, err := cutAfterField([]byte(`{"type": "record", "name": "T", "fields": []}`), "metadata"); err == nil {
		t.Fatal("a schema without metadata was cut")
	}
}
