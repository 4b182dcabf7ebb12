package main

// Building a signed Envelope from the project's .avsc files (docs/schemas.md).
//
//  1. Load ledger.v1.TxBody.avsc and cut it after its field "metadata": that is
//     TxBody version 2 (version 3 appended "confidential"; a later version only
//     appends fields, so the cut stays version 2). Load ledger.v1.Envelope.avsc
//     whole.
//  2. Encode the body with version 2, canonically: one block per array or map,
//     no block byte sizes (hamba/avro writes them unless told not to).
//  3. Sign b"ledger.v1.tx\x00" + those exact body bytes with Ed25519.
//  4. Encode the Envelope around the same bytes; nobody re-encodes the body.

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hamba/avro/v2"
)

const (
	// bodyVersion is the TxBody schema this program writes: version 2, the one
	// with metadata (version 1 is for bodies without it).
	bodyVersion = 2
	// lastFieldOfBodyVersion is where version 2 of the TxBody schema ends.
	lastFieldOfBodyVersion = "metadata"
	// signaturePrefix keeps a transaction signature from being valid as a
	// signature of anything else (docs/schemas.md, "Signatures").
	signaturePrefix = "ledger.v1.tx\x00"
	// transferUnionBranch is the op union's name for a Transfer (index 5).
	transferUnionBranch = "ledger.v1.Transfer"
	// arrayBlockItemsMax is larger than any array or map a valid body holds
	// (postings_max_count and metadata_entries_max_count are 16), so each is
	// written as the one block the ledger's canonical form requires.
	arrayBlockItemsMax = 1 << 20
	// schemaFileBytesMax bounds a schema file read (TxBody's is about 20 KiB).
	schemaFileBytesMax = 1 << 20

	txBodyFile   = "ledger.v1.TxBody.avsc"
	envelopeFile = "ledger.v1.Envelope.avsc"
)

// canonicalAvro writes what Java's GenericDatumWriter and fastavro write.
var canonicalAvro = avro.Config{
	TagKey:                 "avro",
	BlockLength:            arrayBlockItemsMax,
	DisableBlockSizeHeader: true,
	UnionResolutionError:   true,
}.Freeze()

type posting struct {
	Account string `avro:"account"`
	Asset   string `avro:"asset"`
	Amount  int64  `avro:"amount"`
}

type transfer struct {
	Postings []posting `avro:"postings"`
}

// txBody is a TxBody of version 2; Op is a one-entry map {union branch: value}.
type txBody struct {
	TxID        [16]byte          `avro:"tx_id"`
	Ledger      string            `avro:"ledger"`
	CreatedAtMs int64             `avro:"created_at_ms"`
	ExpiresAtMs int64             `avro:"expires_at_ms"`
	Op          map[string]any    `avro:"op"`
	Memo        *string           `avro:"memo"`
	ExternalRef *string           `avro:"external_ref"`
	Metadata    map[string]string `avro:"metadata"`
}

type envelope struct {
	BodyVersion int32    `avro:"body_version"`
	Body        []byte   `avro:"body"`
	PublicKey   [32]byte `avro:"public_key"`
	Signature   [64]byte `avro:"signature"`
}

// schemas are the two writer schemas, loaded from the project's files.
type schemas struct {
	body     avro.Schema
	envelope avro.Schema
}

// loadSchemas reads TxBody version 2 and the Envelope from directory.
func loadSchemas(directory string) (schemas, error) {
	cache := &avro.SchemaCache{}
	bodyText, err := readSchemaFile(filepath.Join(directory, txBodyFile))
	if err != nil {
		return schemas{}, err
	}
	versionText, err := cutAfterField(bodyText, lastFieldOfBodyVersion)
	if err != nil {
		return schemas{}, fmt.Errorf("%s: %w", txBodyFile, err)
	}
	body, err := avro.ParseBytesWithCache(versionText, "", cache)
	if err != nil {
		return schemas{}, fmt.Errorf("%s: %w", txBodyFile, err)
	}
	envelopeText, err := readSchemaFile(filepath.Join(directory, envelopeFile))
	if err != nil {
		return schemas{}, err
	}
	envelopeSchema, err := avro.ParseBytesWithCache(envelopeText, "", cache)
	if err != nil {
		return schemas{}, fmt.Errorf("%s: %w", envelopeFile, err)
	}
	return schemas{body: body, envelope: envelopeSchema}, nil
}

func readSchemaFile(path string) ([]byte, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read schema: %w", err)
	}
	if info.Size() > schemaFileBytesMax {
		return nil, fmt.Errorf("%s: larger than %d bytes, not a schema", path, schemaFileBytesMax)
	}
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read schema: %w", err)
	}
	return text, nil
}

// cutAfterField is the record schema in text without the fields after the one
// named last: the schema an older body version was written with.
func cutAfterField(text []byte, last string) ([]byte, error) {
	var record map[string]json.RawMessage
	if err := json.Unmarshal(text, &record); err != nil {
		return nil, fmt.Errorf("not a JSON schema: %w", err)
	}
	var fields []json.RawMessage
	if err := json.Unmarshal(record["fields"], &fields); err != nil {
		return nil, fmt.Errorf("not a record schema: %w", err)
	}
	for index, field := range fields {
		var named struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(field, &named); err != nil {
			return nil, fmt.Errorf("field %d: %w", index, err)
		}
		if named.Name == last {
			cut, err := json.Marshal(fields[:index+1])
			if err != nil {
				return nil, err
			}
			record["fields"] = cut
			return json.Marshal(record)
		}
	}
	return nil, fmt.Errorf("no field %q", last)
}

// encodeBody is the Avro bytes of body with TxBody version 2.
func (s schemas) encodeBody(body txBody) ([]byte, error) {
	encoded, err := canonicalAvro.Marshal(s.body, body)
	if err != nil {
		return nil, fmt.Errorf("cannot encode the TxBody: %w", err)
	}
	return encoded, nil
}

// signedEnvelope signs bodyBytes as they are and wraps them in an Envelope.
func (s schemas) signedEnvelope(bodyBytes []byte, key ed25519.PrivateKey) ([]byte, error) {
	message := append([]byte(signaturePrefix), bodyBytes...)
	value := envelope{BodyVersion: bodyVersion, Body: bodyBytes}
	copy(value.PublicKey[:], key.Public().(ed25519.PublicKey))
	copy(value.Signature[:], ed25519.Sign(key, message))
	encoded, err := canonicalAvro.Marshal(s.envelope, value)
	if err != nil {
		return nil, fmt.Errorf("cannot encode the Envelope: %w", err)
	}
	return encoded, nil
}
