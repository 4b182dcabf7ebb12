package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestFramedIsTheConfluentWireFormat(t *testing.T) {
	got := framed(258, []byte{0xAA, 0xBB})
	want := []byte{0x00, 0x00, 0x00, 0x01, 0x02, 0xAA, 0xBB}
	if !bytes.Equal(got, want) {
		t.Fatalf("framed = % x, want % x", got, want)
	}
}

func TestEnvelopeSchemaIDAsksForTheNewestVersion(t *testing.T) {
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/apis/ccompat/v7/subjects/ledger.v1.Envelope/versions/latest" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(`{"subject":"ledger.v1.Envelope","version":1,"id":6,"schema":"{}"}`))
	}))
	defer server.Close()
	id, err := envelopeSchemaID(server.URL + "/apis/ccompat/v7/")
	if err != nil || id != 6 {
		t.Fatalf("id %d, error %v; want 6", id, err)
	}
	if _, err := envelopeSchemaID(server.URL + "/elsewhere"); err == nil {
		t.Fatal("a registry without the subject gave an id")
	}
}
