package main

// The Schema Registry's id of ledger.v1.Envelope, for the Confluent wire
// format: a zero byte, the id as 4 big-endian bytes, then the Avro bytes
// (docs/schemas.md, "Wire format"). The frame is outside the signature.

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

const (
	envelopeSubject = "ledger.v1.Envelope"
	registryTimeout = 10 * time.Second
)

// envelopeSchemaID asks the registry (its Confluent-compatible API, e.g.
// http://127.0.0.1:18081/apis/ccompat/v7) which id the newest version of the
// envelope's schema has; `ledger up` registered it.
func envelopeSchemaID(registry string) (uint32, error) {
	address := strings.TrimRight(registry, "/") + "/subjects/" + url.PathEscape(envelopeSubject) + "/versions/latest"
	client := http.Client{Timeout: registryTimeout}
	response, err := client.Get(address)
	if err != nil {
		return 0, fmt.Errorf("cannot reach the schema registry at %s: %w", registry, err)
	}
	defer response.Body.Close()
	if response.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("the schema registry at %s has no %s (HTTP %d): run ledger up", registry, envelopeSubject, response.StatusCode)
	}
	var latest struct {
		ID uint32 `json:"id"`
	}
	if err := json.NewDecoder(response.Body).Decode(&latest); err != nil || latest.ID == 0 {
		return 0, fmt.Errorf("the schema registry at %s answered no id for %s", registry, envelopeSubject)
	}
	return latest.ID, nil
}

// framed puts value in the Confluent wire format with schemaID.
func framed(schemaID uint32, value []byte) []byte {
	frame := make([]byte, 5, 5+len(value))
	binary.BigEndian.PutUint32(frame[1:], schemaID)
	return append(frame, value...)
}
