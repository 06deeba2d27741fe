-- SCD2 history beside the contract tables (docs/warehouse.md). Applied by
-- `totesys-cdc init` after 001; idempotent. Columns are nullable here: an inferred
-- member (a key referenced before its row arrived) has only its key.

CREATE TABLE IF NOT EXISTS dim_staff_history (
    version_id   bigserial PRIMARY KEY,
    staff_id int NOT NULL,
    first_name       varchar,
    last_name        varchar,
    department_name  varchar,
    location         varchar,
    email_address    varchar,
    valid_from   timestamptz NOT NULL,
    valid_to     timestamptz,
    is_current   boolean NOT NULL,
    inferred     boolean NOT NULL DEFAULT false,
    source_commit_lsn  pg_lsn NOT NULL,
    source_ordinal     bigint NOT NULL,
    closed_commit_lsn  pg_lsn,
    CHECK (valid_to IS NULL OR valid_to >= valid_from),
    CHECK (is_current = (valid_to IS NULL))
);
CREATE UNIQUE INDEX IF NOT EXISTS dim_staff_history_one_current
    ON dim_staff_history (staff_id) WHERE is_current;
CREATE INDEX IF NOT EXISTS dim_staff_history_key ON dim_staff_history (staff_id, valid_from);
CREATE INDEX IF NOT EXISTS dim_staff_history_lsn ON dim_staff_history (source_commit_lsn);
CREATE INDEX IF NOT EXISTS dim_staff_history_closed_lsn ON dim_staff_history (closed_commit_lsn);

CREATE TABLE IF NOT EXISTS dim_location_history (
    version_id   bigserial PRIMARY KEY,
    location_id int NOT NULL,
    address_line_1  varchar,
    address_line_2  varchar,
    district        varchar,
    city            varchar,
    postal_code     varchar,
    country         varchar,
    phone           varchar,
    valid_from   timestamptz NOT NULL,
    valid_to     timestamptz,
    is_current   boolean NOT NULL,
    inferred     boolean NOT NULL DEFAULT false,
    source_commit_lsn  pg_lsn NOT NULL,
    source_ordinal     bigint NOT NULL,
    closed_commit_lsn  pg_lsn,
    CHECK (valid_to IS NULL OR valid_to >= valid_from),
    CHECK (is_current = (valid_to IS NULL))
);
CREATE UNIQUE INDEX IF NOT EXISTS dim_location_history_one_current
    ON dim_location_history (location_id) WHERE is_current;
CREATE INDEX IF NOT EXISTS dim_location_history_key ON dim_location_history (location_id, valid_from);
CREATE INDEX IF NOT EXISTS dim_location_history_lsn ON dim_location_history (source_commit_lsn);
CREATE INDEX IF NOT EXISTS dim_location_history_closed_lsn ON dim_location_history (closed_commit_lsn);

CREATE TABLE IF NOT EXISTS dim_currency_history (
    version_id   bigserial PRIMARY KEY,
    currency_id int NOT NULL,
    currency_code  varchar,
    currency_name  varchar,
    valid_from   timestamptz NOT NULL,
    valid_to     timestamptz,
    is_current   boolean NOT NULL,
    inferred     boolean NOT NULL DEFAULT false,
    source_commit_lsn  pg_lsn NOT NULL,
    source_ordinal     bigint NOT NULL,
    closed_commit_lsn  pg_lsn,
    CHECK (valid_to IS NULL OR valid_to >= valid_from),
    CHECK (is_current = (valid_to IS NULL))
);
CREATE UNIQUE INDEX IF NOT EXISTS dim_currency_history_one_current
    ON dim_currency_history (currency_id) WHERE is_current;
CREATE INDEX IF NOT EXISTS dim_currency_history_key ON dim_currency_history (currency_id, valid_from);
CREATE INDEX IF NOT EXISTS dim_currency_history_lsn ON dim_currency_history (source_commit_lsn);
CREATE INDEX IF NOT EXISTS dim_currency_history_closed_lsn ON dim_currency_history (closed_commit_lsn);

CREATE TABLE IF NOT EXISTS dim_design_history (
    version_id   bigserial PRIMARY KEY,
    design_id int NOT NULL,
    design_name    varchar,
    file_location  varchar,
    file_name      varchar,
    valid_from   timestamptz NOT NULL,
    valid_to     timestamptz,
    is_current   boolean NOT NULL,
    inferred     boolean NOT NULL DEFAULT false,
    source_commit_lsn  pg_lsn NOT NULL,
    source_ordinal     bigint NOT NULL,
    closed_commit_lsn  pg_lsn,
    CHECK (valid_to IS NULL OR valid_to >= valid_from),
    CHECK (is_current = (valid_to IS NULL))
);
CREATE UNIQUE INDEX IF NOT EXISTS dim_design_history_one_current
    ON dim_design_history (design_id) WHERE is_current;
CREATE INDEX IF NOT EXISTS dim_design_history_key ON dim_design_history (design_id, valid_from);
CREATE INDEX IF NOT EXISTS dim_design_history_lsn ON dim_design_history (source_commit_lsn);
CREATE INDEX IF NOT EXISTS dim_design_history_closed_lsn ON dim_design_history (closed_commit_lsn);

CREATE TABLE IF NOT EXISTS dim_counterparty_history (
    version_id   bigserial PRIMARY KEY,
    counterparty_id int NOT NULL,
    counterparty_legal_name            varchar,
    counterparty_legal_address_line_1  varchar,
    counterparty_legal_address_line_2  varchar,
    counterparty_legal_district        varchar,
    counterparty_legal_city            varchar,
    counterparty_legal_postal_code     varchar,
    counterparty_legal_country         varchar,
    counterparty_legal_phone_number    varchar,
    valid_from   timestamptz NOT NULL,
    valid_to     timestamptz,
    is_current   boolean NOT NULL,
    inferred     boolean NOT NULL DEFAULT false,
    source_commit_lsn  pg_lsn NOT NULL,
    source_ordinal     bigint NOT NULL,
    closed_commit_lsn  pg_lsn,
    CHECK (valid_to IS NULL OR valid_to >= valid_from),
    CHECK (is_current = (valid_to IS NULL))
);
CREATE UNIQUE INDEX IF NOT EXISTS dim_counterparty_history_one_current
    ON dim_counterparty_history (counterparty_id) WHERE is_current;
CREATE INDEX IF NOT EXISTS dim_counterparty_history_key ON dim_counterparty_history (counterparty_id, valid_from);
CREATE INDEX IF NOT EXISTS dim_counterparty_history_lsn ON dim_counterparty_history (source_commit_lsn);
CREATE INDEX IF NOT EXISTS dim_counterparty_history_closed_lsn ON dim_counterparty_history (closed_commit_lsn);

CREATE TABLE IF NOT EXISTS dim_payment_type_history (
    version_id   bigserial PRIMARY KEY,
    payment_type_id int NOT NULL,
    payment_type_name  varchar,
    valid_from   timestamptz NOT NULL,
    valid_to     timestamptz,
    is_current   boolean NOT NULL,
    inferred     boolean NOT NULL DEFAULT false,
    source_commit_lsn  pg_lsn NOT NULL,
    source_ordinal     bigint NOT NULL,
    closed_commit_lsn  pg_lsn,
    CHECK (valid_to IS NULL OR valid_to >= valid_from),
    CHECK (is_current = (valid_to IS NULL))
);
CREATE UNIQUE INDEX IF NOT EXISTS dim_payment_type_history_one_current
    ON dim_payment_type_history (payment_type_id) WHERE is_current;
CREATE INDEX IF NOT EXISTS dim_payment_type_history_key ON dim_payment_type_history (payment_type_id, valid_from);
CREATE INDEX IF NOT EXISTS dim_payment_type_history_lsn ON dim_payment_type_history (source_commit_lsn);
CREATE INDEX IF NOT EXISTS dim_payment_type_history_closed_lsn ON dim_payment_type_history (closed_commit_lsn);

CREATE TABLE IF NOT EXISTS dim_transaction_history (
    version_id   bigserial PRIMARY KEY,
    transaction_id int NOT NULL,
    transaction_type   varchar,
    sales_order_id     int,
    purchase_order_id  int,
    valid_from   timestamptz NOT NULL,
    valid_to     timestamptz,
    is_current   boolean NOT NULL,
    inferred     boolean NOT NULL DEFAULT false,
    source_commit_lsn  pg_lsn NOT NULL,
    source_ordinal     bigint NOT NULL,
    closed_commit_lsn  pg_lsn,
    CHECK (valid_to IS NULL OR valid_to >= valid_from),
    CHECK (is_current = (valid_to IS NULL))
);
CREATE UNIQUE INDEX IF NOT EXISTS dim_transaction_history_one_current
    ON dim_transaction_history (transaction_id) WHERE is_current;
CREATE INDEX IF NOT EXISTS dim_transaction_history_key ON dim_transaction_history (transaction_id, valid_from);
CREATE INDEX IF NOT EXISTS dim_transaction_history_lsn ON dim_transaction_history (source_commit_lsn);
CREATE INDEX IF NOT EXISTS dim_transaction_history_closed_lsn ON dim_transaction_history (closed_commit_lsn);

CREATE TABLE IF NOT EXISTS fact_sales_order_version (
    sales_record_id  int PRIMARY KEY REFERENCES fact_sales_order (sales_record_id),
    sales_order_id  int NOT NULL,
    valid_from   timestamptz NOT NULL,
    valid_to     timestamptz,
    is_current   boolean NOT NULL,
    source_commit_lsn  pg_lsn NOT NULL,
    source_ordinal     bigint NOT NULL,
    closed_commit_lsn  pg_lsn,
    CHECK (is_current = (valid_to IS NULL))
);
CREATE UNIQUE INDEX IF NOT EXISTS fact_sales_order_version_one_current
    ON fact_sales_order_version (sales_order_id) WHERE is_current;
CREATE INDEX IF NOT EXISTS fact_sales_order_version_lsn ON fact_sales_order_version (source_commit_lsn);
CREATE INDEX IF NOT EXISTS fact_sales_order_version_closed_lsn ON fact_sales_order_version (closed_commit_lsn);

CREATE OR REPLACE VIEW fact_sales_order_current AS
    SELECT f.* FROM fact_sales_order f JOIN fact_sales_order_version v USING (sales_record_id) WHERE v.is_current;

CREATE OR REPLACE VIEW fact_sales_order_all_versions AS
    SELECT f.*, v.valid_from, v.valid_to, v.is_current
    FROM fact_sales_order f JOIN fact_sales_order_version v USING (sales_record_id);

CREATE TABLE IF NOT EXISTS fact_purchase_order_version (
    purchase_record_id  int PRIMARY KEY REFERENCES fact_purchase_order (purchase_record_id),
    purchase_order_id  int NOT NULL,
    valid_from   timestamptz NOT NULL,
    valid_to     timestamptz,
    is_current   boolean NOT NULL,
    source_commit_lsn  pg_lsn NOT NULL,
    source_ordinal     bigint NOT NULL,
    closed_commit_lsn  pg_lsn,
    CHECK (is_current = (valid_to IS NULL))
);
CREATE UNIQUE INDEX IF NOT EXISTS fact_purchase_order_version_one_current
    ON fact_purchase_order_version (purchase_order_id) WHERE is_current;
CREATE INDEX IF NOT EXISTS fact_purchase_order_version_lsn ON fact_purchase_order_version (source_commit_lsn);
CREATE INDEX IF NOT EXISTS fact_purchase_order_version_closed_lsn ON fact_purchase_order_version (closed_commit_lsn);

CREATE OR REPLACE VIEW fact_purchase_order_current AS
    SELECT f.* FROM fact_purchase_order f JOIN fact_purchase_order_version v USING (purchase_record_id) WHERE v.is_current;

CREATE OR REPLACE VIEW fact_purchase_order_all_versions AS
    SELECT f.*, v.valid_from, v.valid_to, v.is_current
    FROM fact_purchase_order f JOIN fact_purchase_order_version v USING (purchase_record_id);

CREATE TABLE IF NOT EXISTS fact_payment_version (
    payment_record_id  int PRIMARY KEY REFERENCES fact_payment (payment_record_id),
    payment_id  int NOT NULL,
    valid_from   timestamptz NOT NULL,
    valid_to     timestamptz,
    is_current   boolean NOT NULL,
    source_commit_lsn  pg_lsn NOT NULL,
    source_ordinal     bigint NOT NULL,
    closed_commit_lsn  pg_lsn,
    CHECK (is_current = (valid_to IS NULL))
);
CREATE UNIQUE INDEX IF NOT EXISTS fact_payment_version_one_current
    ON fact_payment_version (payment_id) WHERE is_current;
CREATE INDEX IF NOT EXISTS fact_payment_version_lsn ON fact_payment_version (source_commit_lsn);
CREATE INDEX IF NOT EXISTS fact_payment_version_closed_lsn ON fact_payment_version (closed_commit_lsn);

CREATE OR REPLACE VIEW fact_payment_current AS
    SELECT f.* FROM fact_payment f JOIN fact_payment_version v USING (payment_record_id) WHERE v.is_current;

CREATE OR REPLACE VIEW fact_payment_all_versions AS
    SELECT f.*, v.valid_from, v.valid_to, v.is_current
    FROM fact_payment f JOIN fact_payment_version v USING (payment_record_id);

-- The modeler's bookkeeping: how far it has applied, and changes kept for repair.
CREATE SCHEMA IF NOT EXISTS totesys_cdc;

CREATE TABLE IF NOT EXISTS totesys_cdc.applied (
    id                 boolean PRIMARY KEY DEFAULT true CHECK (id),
    commit_lsn         pg_lsn NOT NULL,
    source_commit_ts   timestamptz,
    applied_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS totesys_cdc.repair (
    repair_id          bigserial PRIMARY KEY,
    source_table       text NOT NULL,
    source_commit_lsn  pg_lsn NOT NULL,
    source_ordinal     bigint NOT NULL,
    closed_commit_lsn  pg_lsn,
    reason             text NOT NULL,
    change             jsonb NOT NULL,
    recorded_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source_commit_lsn, source_ordinal, reason)
);

-- The current rows of the source tables dimensions are built from, so a dimension row
-- can be recomputed when a joined table changes (docs/warehouse.md, source mirrors).
CREATE TABLE IF NOT EXISTS totesys_cdc.source_rows (
    source_table  text NOT NULL,
    key           bigint NOT NULL,
    row           jsonb NOT NULL,
    PRIMARY KEY (source_table, key)
);

-- How far the processed zone (Parquet under processed/) has been written.
CREATE TABLE IF NOT EXISTS totesys_cdc.processed (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    commit_lsn  pg_lsn NOT NULL,
    written_at  timestamptz NOT NULL DEFAULT now()
);
