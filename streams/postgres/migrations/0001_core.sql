-- 0001_core: the tables the projector writes, derived from the ledger.blocks topic alone.
--
-- Conventions: hashes and ids are bytea (checked lengths), money is bigint minor units, times are
-- timestamptz (UTC instants). Every row is keyed by its ledger (shard) first. `seq` is the
-- ledger-wide sequence number of a transaction; `height` the block that sealed it.
-- Status columns hold lowercase names ('active', 'open', ...).
-- ledger.schema_migrations is created by streams/postgres/migrate.py before this file runs.

CREATE SCHEMA IF NOT EXISTS ledger;

CREATE TABLE ledger.blocks (
    ledger             text        NOT NULL,
    height             bigint      NOT NULL CHECK (height >= 0),
    hash               bytea       NOT NULL CHECK (octet_length(hash) = 32),
    prev_hash          bytea       NOT NULL CHECK (octet_length(prev_hash) = 32),
    tx_root            bytea       NOT NULL CHECK (octet_length(tx_root) = 32),
    blocks_root        bytea       NOT NULL CHECK (octet_length(blocks_root) = 32),
    tx_count           int         NOT NULL CHECK (tx_count >= 0),
    first_seq          bigint      NOT NULL CHECK (first_seq >= 0),
    sealed_at          timestamptz NOT NULL,
    sealer_key         bytea       NOT NULL CHECK (octet_length(sealer_key) = 32),
    source_partition   int         NOT NULL CHECK (source_partition >= 0),
    source_offset_end  bigint      NOT NULL,
    size_bytes         int         NOT NULL CHECK (size_bytes >= 0),
    PRIMARY KEY (ledger, height)
);
-- "Which block is this hash?" (proof and chain checks start from a hash).
CREATE INDEX blocks_hash ON ledger.blocks (hash);

CREATE TABLE ledger.transactions (
    ledger          text        NOT NULL,
    seq             bigint      NOT NULL CHECK (seq >= 0),
    tx_id           bytea       NOT NULL CHECK (octet_length(tx_id) = 16),
    height          bigint      NOT NULL CHECK (height >= 0),
    index_in_block  int         NOT NULL CHECK (index_in_block >= 0),
    kind            text        NOT NULL,
    key_id          text        NOT NULL,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    sealed_at       timestamptz NOT NULL,
    external_ref    text,
    memo            text,
    envelope        bytea       NOT NULL,
    PRIMARY KEY (ledger, seq),
    -- tx_id first, so a lookup by tx_id alone (no ledger given) uses this index too.
    CONSTRAINT transactions_tx_id_key UNIQUE (tx_id, ledger)
);
-- Reconciliation matches a payment system's own reference; external_ref first for the same reason.
CREATE INDEX transactions_external_ref ON ledger.transactions (external_ref, ledger)
    WHERE external_ref IS NOT NULL;
CREATE INDEX transactions_height ON ledger.transactions (ledger, height);

CREATE TABLE ledger.postings (
    ledger         text        NOT NULL,
    seq            bigint      NOT NULL CHECK (seq >= 0),
    posting_index  smallint    NOT NULL CHECK (posting_index >= 0),
    account        text        NOT NULL,
    asset          text        NOT NULL,
    amount         bigint      NOT NULL,
    height         bigint      NOT NULL CHECK (height >= 0),
    sealed_at      timestamptz NOT NULL,
    PRIMARY KEY (ledger, seq, posting_index)
);
-- Statements and balance_at: one account's postings in order; amount and height ride along so
-- balance_at can answer from the index alone.
CREATE INDEX postings_statement ON ledger.postings (ledger, account, seq)
    INCLUDE (amount, height);
-- Daily volume: the expression is v_daily_volume's `day`, so a filter on day uses this index.
CREATE INDEX postings_daily_volume
    ON ledger.postings (ledger, asset, ((sealed_at AT TIME ZONE 'UTC')::date))
    INCLUDE (seq, amount);

CREATE TABLE ledger.balances (
    ledger          text   NOT NULL,
    account         text   NOT NULL,
    asset           text   NOT NULL,
    balance         bigint NOT NULL,
    held            bigint NOT NULL CHECK (held >= 0),
    available       bigint GENERATED ALWAYS AS (balance - held) STORED,
    updated_height  bigint NOT NULL CHECK (updated_height >= 0),
    updated_seq     bigint NOT NULL CHECK (updated_seq >= 0),
    PRIMARY KEY (ledger, account)
);

CREATE TABLE ledger.accounts (
    ledger          text    NOT NULL,
    account         text    NOT NULL,
    asset           text    NOT NULL,
    status          text    NOT NULL CHECK (status IN ('active', 'frozen', 'closed')),
    max_balance     bigint,
    allow_negative  boolean NOT NULL,
    opened_height   bigint  NOT NULL CHECK (opened_height >= 0),
    opened_seq      bigint  NOT NULL CHECK (opened_seq >= 0),
    PRIMARY KEY (ledger, account)
);

CREATE TABLE ledger.assets (
    ledger          text   NOT NULL,
    asset           text   NOT NULL,
    scale           int    NOT NULL CHECK (scale BETWEEN 0 AND 18),
    issuer_account  text   NOT NULL,
    defined_height  bigint NOT NULL CHECK (defined_height >= 0),
    defined_seq     bigint NOT NULL CHECK (defined_seq >= 0),
    PRIMARY KEY (ledger, asset)
);

CREATE TABLE ledger.keys (
    ledger             text   NOT NULL,
    key_id             text   NOT NULL CHECK (key_id ~ '^[0-9a-f]{32}$'),
    public_key         bytea  NOT NULL CHECK (octet_length(public_key) = 32),
    roles              text[] NOT NULL,
    accounts           text[] NOT NULL,
    registered_height  bigint NOT NULL CHECK (registered_height >= 0),
    registered_seq     bigint NOT NULL CHECK (registered_seq >= 0),
    revoked_height     bigint CHECK (revoked_height >= registered_height),
    PRIMARY KEY (ledger, key_id)
);

CREATE TABLE ledger.holds (
    ledger           text        NOT NULL,
    hold_id          bytea       NOT NULL CHECK (octet_length(hold_id) = 16),
    payer            text        NOT NULL,
    payee            text        NOT NULL,
    asset            text        NOT NULL,
    amount           bigint      NOT NULL CHECK (amount > 0),
    captured_amount  bigint      CHECK (captured_amount BETWEEN 0 AND amount),
    status           text        NOT NULL CHECK (status IN ('open', 'captured', 'voided', 'expired')),
    expires_at       timestamptz NOT NULL,
    created_seq      bigint      NOT NULL CHECK (created_seq >= 0),
    resolved_seq     bigint      CHECK (resolved_seq >= created_seq),
    resolved_height  bigint      CHECK (resolved_height >= 0),
    PRIMARY KEY (ledger, hold_id),
    -- An open hold is unresolved; a resolved one says when.
    CHECK ((status = 'open') = (resolved_height IS NULL))
);
-- "Which holds are still open, and when do they lapse?"
CREATE INDEX holds_open ON ledger.holds (ledger, expires_at) WHERE status = 'open';

CREATE TABLE ledger.attestations (
    ledger     text        NOT NULL,
    digest     bytea       NOT NULL CHECK (octet_length(digest) = 32),
    algorithm  text        NOT NULL,
    seq        bigint      NOT NULL CHECK (seq >= 0),
    tx_id      bytea       NOT NULL CHECK (octet_length(tx_id) = 16),
    key_id     text        NOT NULL,
    height     bigint      NOT NULL CHECK (height >= 0),
    sealed_at  timestamptz NOT NULL,
    PRIMARY KEY (ledger, seq)
);
-- Proof of existence starts from the document's digest.
CREATE INDEX attestations_digest ON ledger.attestations (digest);

CREATE TABLE ledger.rejections (
    id                bigserial   PRIMARY KEY,
    tx_id             bytea       CHECK (octet_length(tx_id) = 16),
    ledger            text,
    code              text        NOT NULL,
    detail            text        NOT NULL,
    stage             text        NOT NULL CHECK (stage IN ('verify', 'sequence')),
    key_id            text,
    source_topic      text        NOT NULL,
    source_partition  int         NOT NULL CHECK (source_partition >= 0),
    source_offset     bigint      NOT NULL CHECK (source_offset >= 0),
    rejected_at       timestamptz NOT NULL,
    height            bigint      CHECK (height >= 0),
    external_ref      text,
    -- A redelivered rejection message is the same row: INSERT ... ON CONFLICT DO NOTHING.
    CONSTRAINT rejections_source_key UNIQUE (source_topic, source_partition, source_offset)
);
CREATE INDEX rejections_code ON ledger.rejections (code, rejected_at);
CREATE INDEX rejections_tx_id ON ledger.rejections (tx_id);
CREATE INDEX rejections_external_ref ON ledger.rejections (external_ref)
    WHERE external_ref IS NOT NULL;

-- The projector writes its rows and its position in one transaction (exactly-once by tracking).
CREATE TABLE ledger.tracking (
    processor   text        NOT NULL,
    stream      text        NOT NULL,
    position    bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (processor, stream)
);
