// Command go-producer signs one Transfer and publishes it to the ledger, using
// nothing of the Python code: the .avsc files, the signing rule and the Kafka
// key of docs/schemas.md are the whole contract.
//
//	LEDGER_KEY_PASSPHRASE=demo go-producer --key .data/demo/main/alice.key \
//	    --ledger main --from alice --to bob --asset USD --amount 1
//
// It prints the tx_id in hex (one line) and exits 0, or prints one error line
// on stderr and exits 1 (2 for a usage error). The passphrase comes from an
// environment variable, never from the command line, where ps would show it.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

const (
	programName = "go-producer"
	// validity is the window [created_at_ms, expires_at_ms] of the body, as
	// the Python client's default (signing.build_tx_body).
	validity = 60 * time.Second
	// producerMetadataKey, producerMetadataValue: the metadata that makes this
	// body a version 2 one, and shows in analytics.transactions.metadata.
	producerMetadataKey   = "producer"
	producerMetadataValue = "go"

	exitFailure = 1
	exitUsage   = 2
)

type options struct {
	brokers       string
	registry      string
	kafka         credentials
	keyFile       string
	passphraseEnv string
	schemaDir     string
	ledger        string
	from          string
	to            string
	asset         string
	amount        int64
	envelopeOut   string
}

// usageError is a problem with the command line (exit 2).
type usageError struct{ message string }

func (e usageError) Error() string { return e.message }

func main() {
	txID, err := run(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		// One line whatever the error says, so a caller can show it as is.
		line := strings.Join(strings.Fields(err.Error()), " ")
		fmt.Fprintf(os.Stderr, "%s: %s\n", programName, line)
		var usage usageError
		if errors.As(err, &usage) {
			os.Exit(exitUsage)
		}
		os.Exit(exitFailure)
	}
	fmt.Println(hex.EncodeToString(txID))
}

// run is the whole program: the tx_id it submitted, or why it did not.
//  1. Parse the flags and read the passphrase from its environment variable.
//  2. Decrypt the key and load the schemas (nothing is sent if either fails).
//  3. Encode the body, sign those bytes, wrap them in an envelope.
//  4. Publish it keyed by its tx_id, or write it to --envelope-out.
func run(arguments []string) ([]byte, error) {
	chosen, err := parseOptions(arguments)
	if err != nil {
		return nil, err
	}
	passphrase, ok := os.LookupEnv(chosen.passphraseEnv)
	if !ok || passphrase == "" {
		return nil, usageError{fmt.Sprintf("environment variable %s (--passphrase-env) is not set", chosen.passphraseEnv)}
	}
	key, err := loadPrivateKey(chosen.keyFile, []byte(passphrase))
	if err != nil {
		return nil, err
	}
	loaded, err := loadSchemas(chosen.schemaDir)
	if err != nil {
		return nil, err
	}
	body, err := newTransferBody(chosen, time.Now())
	if err != nil {
		return nil, err
	}
	bodyBytes, err := loaded.encodeBody(body)
	if err != nil {
		return nil, err
	}
	value, err := loaded.signedEnvelope(bodyBytes, key)
	if err != nil {
		return nil, err
	}
	if chosen.envelopeOut != "" {
		if err := os.WriteFile(chosen.envelopeOut, value, 0o644); err != nil {
			return nil, fmt.Errorf("cannot write the envelope: %w", err)
		}
		return body.TxID[:], nil
	}
	if chosen.registry != "" {
		schemaID, err := envelopeSchemaID(chosen.registry)
		if err != nil {
			return nil, err
		}
		value = framed(schemaID, value)
	}
	if err := publish(chosen.brokers, chosen.kafka, body.TxID[:], value); err != nil {
		return nil, err
	}
	return body.TxID[:], nil
}

func parseOptions(arguments []string) (options, error) {
	var chosen options
	flags := flag.NewFlagSet(programName, flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	flags.StringVar(&chosen.brokers, "brokers", "127.0.0.1:19092", "Kafka bootstrap servers, comma-separated")
	flags.StringVar(&chosen.registry, "registry", registryDefault(), "Schema Registry (Confluent-compatible API) whose envelope id frames the message; empty publishes plain Avro (deprecated)")
	flags.StringVar(&chosen.kafka.username, "username", os.Getenv("LEDGER_KAFKA_USERNAME"), "SASL/SCRAM-SHA-512 user; empty connects without authentication")
	passwordFile := flags.String("password-file", os.Getenv("LEDGER_KAFKA_PASSWORD_FILE"), "file holding the SASL user's password (never on the command line)")
	flags.StringVar(&chosen.keyFile, "key", "", "encrypted PKCS#8 key file of the payer's key (required)")
	flags.StringVar(&chosen.passphraseEnv, "passphrase-env", "LEDGER_KEY_PASSPHRASE", "environment variable holding the key file's passphrase")
	flags.StringVar(&chosen.schemaDir, "schemas", "schemas", "directory of the ledger.v1.*.avsc files")
	flags.StringVar(&chosen.ledger, "ledger", "main", "ledger (shard) name")
	flags.StringVar(&chosen.from, "from", "", "account debited (required)")
	flags.StringVar(&chosen.to, "to", "", "account credited (required)")
	flags.StringVar(&chosen.asset, "asset", "", "asset of both postings (required)")
	amount := flags.String("amount", "", "amount in minor units, positive (required)")
	flags.StringVar(&chosen.envelopeOut, "envelope-out", "", "write the envelope's bytes to this file instead of publishing")
	if err := flags.Parse(arguments); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			flags.SetOutput(os.Stdout)
			fmt.Fprintf(os.Stdout, "usage: %s --key FILE --from ACCOUNT --to ACCOUNT --asset ASSET --amount N [options]\n", programName)
			flags.PrintDefaults()
			return chosen, err
		}
		return chosen, usageError{err.Error()}
	}
	if flags.NArg() != 0 {
		return chosen, usageError{fmt.Sprintf("unexpected argument %q", flags.Arg(0))}
	}
	required := []struct{ name, value string }{
		{"--key", chosen.keyFile}, {"--ledger", chosen.ledger}, {"--from", chosen.from},
		{"--to", chosen.to}, {"--asset", chosen.asset}, {"--amount", *amount},
	}
	for _, option := range required {
		if option.value == "" {
			return chosen, usageError{option.name + " is required"}
		}
	}
	if (chosen.kafka.username == "") != (*passwordFile == "") {
		return chosen, usageError{"--username and --password-file go together"}
	}
	if *passwordFile != "" {
		secret, err := os.ReadFile(*passwordFile)
		if err != nil {
			return chosen, fmt.Errorf("cannot read the Kafka password: %w", err)
		}
		chosen.kafka.password = strings.TrimSpace(string(secret))
	}
	parsed, err := strconv.ParseInt(*amount, 10, 64)
	if err != nil || parsed <= 0 {
		return chosen, usageError{fmt.Sprintf("--amount %q is not a positive whole number of minor units", *amount)}
	}
	chosen.amount = parsed
	return chosen, nil
}

// newTransferBody is a version 2 TxBody: a fresh tx_id, valid from now for
// validity, two postings and the producer metadata.
func newTransferBody(chosen options, now time.Time) (txBody, error) {
	body := txBody{
		Ledger:      chosen.ledger,
		CreatedAtMs: now.UnixMilli(),
		ExpiresAtMs: now.Add(validity).UnixMilli(),
		Op: map[string]any{transferUnionBranch: transfer{Postings: []posting{
			{Account: chosen.from, Asset: chosen.asset, Amount: -chosen.amount},
			{Account: chosen.to, Asset: chosen.asset, Amount: chosen.amount},
		}}},
		Metadata: map[string]string{producerMetadataKey: producerMetadataValue},
	}
	if _, err := rand.Read(body.TxID[:]); err != nil {
		return txBody{}, fmt.Errorf("no random tx_id: %w", err)
	}
	return body, nil
}

// registryDefault is LEDGER_SCHEMA_REGISTRY_URL, or the local stack's registry.
func registryDefault() string {
	if configured, found := os.LookupEnv("LEDGER_SCHEMA_REGISTRY_URL"); found {
		return configured
	}
	return "http://127.0.0.1:18081/apis/ccompat/v7"
}
