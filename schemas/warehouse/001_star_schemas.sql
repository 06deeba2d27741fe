-- The three star schemas of the public contract (../shared/spec/warehouse.md), exactly:
-- table and column names, types and keys. Applied by `totesys-cdc init`; idempotent.

CREATE TABLE IF NOT EXISTS dim_date (
    date_id      date PRIMARY KEY,
    year         int NOT NULL,
    month        int NOT NULL,
    day          int NOT NULL,
    day_of_week  int NOT NULL,
    day_name     varchar NOT NULL,
    month_name   varchar NOT NULL,
    quarter      int NOT NULL
);

CREATE TABLE IF NOT EXISTS dim_staff (
    staff_id         int PRIMARY KEY,
    first_name       varchar NOT NULL,
    last_name        varchar NOT NULL,
    department_name  varchar NOT NULL,
    location         varchar,
    email_address    varchar NOT NULL
);

CREATE TABLE IF NOT EXISTS dim_location (
    location_id     int PRIMARY KEY,
    address_line_1  varchar NOT NULL,
    address_line_2  varchar,
    district        varchar,
    city            varchar NOT NULL,
    postal_code     varchar NOT NULL,
    country         varchar NOT NULL,
    phone           varchar NOT NULL
);

CREATE TABLE IF NOT EXISTS dim_currency (
    currency_id    int PRIMARY KEY,
    currency_code  varchar NOT NULL,
    currency_name  varchar NOT NULL
);

CREATE TABLE IF NOT EXISTS dim_design (
    design_id      int PRIMARY KEY,
    design_name    varchar NOT NULL,
    file_location  varchar NOT NULL,
    file_name      varchar NOT NULL
);

CREATE TABLE IF NOT EXISTS dim_counterparty (
    counterparty_id                    int PRIMARY KEY,
    counterparty_legal_name            varchar NOT NULL,
    counterparty_legal_address_line_1  varchar NOT NULL,
    counterparty_legal_address_line_2  varchar,
    counterparty_legal_district        varchar,
    counterparty_legal_city            varchar NOT NULL,
    counterparty_legal_postal_code     varchar NOT NULL,
    counterparty_legal_country         varchar NOT NULL,
    counterparty_legal_phone_number    varchar NOT NULL
);

CREATE TABLE IF NOT EXISTS dim_payment_type (
    payment_type_id    int PRIMARY KEY,
    payment_type_name  varchar NOT NULL
);

CREATE TABLE IF NOT EXISTS dim_transaction (
    transaction_id     int PRIMARY KEY,
    transaction_type   varchar NOT NULL,
    sales_order_id     int,
    purchase_order_id  int
);

-- Facts: one row per source change of an order, payment or purchase. Dimension keys are
-- natural keys without foreign keys to the current dimension tables (a dimension row
-- deleted in the source leaves the current table but not the facts' history); dates
-- reference dim_date, which never loses a row.
CREATE TABLE IF NOT EXISTS fact_sales_order (
    sales_record_id              serial PRIMARY KEY,
    sales_order_id               int NOT NULL,
    created_date                 date REFERENCES dim_date (date_id),
    created_time                 time,
    last_updated_date            date REFERENCES dim_date (date_id),
    last_updated_time            time,
    sales_staff_id               int,
    counterparty_id              int,
    units_sold                   int,
    unit_price                   numeric(10, 2),
    currency_id                  int,
    design_id                    int,
    agreed_payment_date          date REFERENCES dim_date (date_id),
    agreed_delivery_date         date REFERENCES dim_date (date_id),
    agreed_delivery_location_id  int
);

CREATE TABLE IF NOT EXISTS fact_purchase_order (
    purchase_record_id           serial PRIMARY KEY,
    purchase_order_id            int NOT NULL,
    created_date                 date REFERENCES dim_date (date_id),
    created_time                 time,
    last_updated_date            date REFERENCES dim_date (date_id),
    last_updated_time            time,
    staff_id                     int,
    counterparty_id              int,
    item_code                    varchar,
    item_quantity                int,
    item_unit_price              numeric,
    currency_id                  int,
    agreed_delivery_date         date REFERENCES dim_date (date_id),
    agreed_payment_date          date REFERENCES dim_date (date_id),
    agreed_delivery_location_id  int
);

CREATE TABLE IF NOT EXISTS fact_payment (
    payment_record_id  serial PRIMARY KEY,
    payment_id         int NOT NULL,
    created_date       date REFERENCES dim_date (date_id),
    created_time       time,
    last_updated_date  date REFERENCES dim_date (date_id),
    last_updated_time  time,
    transaction_id     int,
    counterparty_id    int,
    payment_amount     numeric,
    currency_id        int,
    payment_type_id    int,
    paid               boolean,
    payment_date       date REFERENCES dim_date (date_id)
);
