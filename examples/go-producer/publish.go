package main

// Publishing one envelope to ledger.submissions with franz-go.

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// credentials name the Kafka principal this program is (README, "Authenticated
// Kafka": a payment system is the publisher, which may write ledger.submissions
// only). An empty username connects without authentication.
type credentials struct {
	username string
	password string
}

const (
	// submissionsTopic is where every signed envelope goes (docs/schemas.md).
	submissionsTopic = "ledger.submissions"
	clientID         = "ledger-go-producer"
	// publishTimeout bounds the whole publish, connecting included, so an
	// unreachable broker is an error line, not a hang.
	publishTimeout = 30 * time.Second
	// dialTimeout bounds one connection attempt within publishTimeout.
	dialTimeout = 5 * time.Second
)

// publish sends value keyed by txID and waits until every in-sync replica has
// it. The partition is Kafka's default partitioner's (murmur2 of the key, sign
// bit cleared, modulo the partition count), as the Java client and
// ledger/client/partitioner.py choose it.
func publish(brokers string, kafka credentials, txID []byte, value []byte) error {
	settings := []kgo.Opt{
		kgo.SeedBrokers(splitBrokers(brokers)...),
		kgo.ClientID(clientID),
		kgo.DialTimeout(dialTimeout),
		kgo.RecordDeliveryTimeout(publishTimeout),
		// acks=all with franz-go's default idempotent writes, as the ledger's own
		// producers (ledger/kafka/clients.py idempotent_producer).
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// nil: the Kafka-compatible murmur2 hasher, over all of the topic's partitions.
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerLinger(0),
		kgo.DefaultProduceTopic(submissionsTopic),
	}
	if kafka.username != "" {
		auth := scram.Auth{User: kafka.username, Pass: kafka.password}
		settings = append(settings, kgo.SASL(auth.AsSha512Mechanism()))
	}
	client, err := kgo.NewClient(settings...)
	if err != nil {
		return fmt.Errorf("cannot set up the Kafka client: %w", err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	record := &kgo.Record{Topic: submissionsTopic, Key: txID, Value: value}
	if err := client.ProduceSync(ctx, record).FirstErr(); err != nil {
		return fmt.Errorf("cannot publish to %s at %s: %w", submissionsTopic, brokers, err)
	}
	return nil
}

func splitBrokers(brokers string) []string {
	var addresses []string
	for _, address := range strings.Split(brokers, ",") {
		if address = strings.TrimSpace(address); address != "" {
			addresses = append(addresses, address)
		}
	}
	return addresses
}
