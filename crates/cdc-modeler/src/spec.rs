//! The warehouse's dimensions and facts: their contract columns and where each comes
//! from in the source (spec/warehouse.md).

/// A contract column of a dimension or fact table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Its name in the contract.
    pub name: &'static str,
    /// Its SQL type, the cast applied to the text value.
    pub sql_type: &'static str,
    /// Whether the contract table declares it `NOT NULL` (an unknown value is written
    /// as [`UNKNOWN`] there).
    pub not_null: bool,
}

/// The value a `NOT NULL` text column holds when the source does not know it (an inferred
/// member, a staff member whose department never arrived).
pub const UNKNOWN: &str = "unknown";

const fn col(name: &'static str, sql_type: &'static str, not_null: bool) -> Column {
    Column {
        name,
        sql_type,
        not_null,
    }
}

/// A dimension of the star schemas (`dim_date` is a calendar, not modelled from changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dim {
    /// `dim_staff`: staff ⋈ department.
    Staff,
    /// `dim_location`: address.
    Location,
    /// `dim_currency`: currency with its ISO 4217 name.
    Currency,
    /// `dim_design`: design.
    Design,
    /// `dim_counterparty`: counterparty ⋈ address on `legal_address_id`.
    Counterparty,
    /// `dim_payment_type`: payment_type.
    PaymentType,
    /// `dim_transaction`: transaction.
    Transaction,
}

impl Dim {
    /// Every modelled dimension.
    pub const ALL: [Dim; 7] = [
        Dim::Staff,
        Dim::Location,
        Dim::Currency,
        Dim::Design,
        Dim::Counterparty,
        Dim::PaymentType,
        Dim::Transaction,
    ];

    /// The contract table's name.
    pub fn table(self) -> &'static str {
        match self {
            Dim::Staff => "dim_staff",
            Dim::Location => "dim_location",
            Dim::Currency => "dim_currency",
            Dim::Design => "dim_design",
            Dim::Counterparty => "dim_counterparty",
            Dim::PaymentType => "dim_payment_type",
            Dim::Transaction => "dim_transaction",
        }
    }

    /// The natural key column.
    pub fn key(self) -> &'static str {
        match self {
            Dim::Staff => "staff_id",
            Dim::Location => "location_id",
            Dim::Currency => "currency_id",
            Dim::Design => "design_id",
            Dim::Counterparty => "counterparty_id",
            Dim::PaymentType => "payment_type_id",
            Dim::Transaction => "transaction_id",
        }
    }

    /// The contract columns after the key, in table order.
    pub fn columns(self) -> &'static [Column] {
        const V: &str = "varchar";
        match self {
            Dim::Staff => {
                const C: &[Column] = &[
                    col("first_name", V, true),
                    col("last_name", V, true),
                    col("department_name", V, true),
                    col("location", V, false),
                    col("email_address", V, true),
                ];
                C
            }
            Dim::Location => {
                const C: &[Column] = &[
                    col("address_line_1", V, true),
                    col("address_line_2", V, false),
                    col("district", V, false),
                    col("city", V, true),
                    col("postal_code", V, true),
                    col("country", V, true),
                    col("phone", V, true),
                ];
                C
            }
            Dim::Currency => {
                const C: &[Column] =
                    &[col("currency_code", V, true), col("currency_name", V, true)];
                C
            }
            Dim::Design => {
                const C: &[Column] = &[
                    col("design_name", V, true),
                    col("file_location", V, true),
                    col("file_name", V, true),
                ];
                C
            }
            Dim::Counterparty => {
                const C: &[Column] = &[
                    col("counterparty_legal_name", V, true),
                    col("counterparty_legal_address_line_1", V, true),
                    col("counterparty_legal_address_line_2", V, false),
                    col("counterparty_legal_district", V, false),
                    col("counterparty_legal_city", V, true),
                    col("counterparty_legal_postal_code", V, true),
                    col("counterparty_legal_country", V, true),
                    col("counterparty_legal_phone_number", V, true),
                ];
                C
            }
            Dim::PaymentType => {
                const C: &[Column] = &[col("payment_type_name", V, true)];
                C
            }
            Dim::Transaction => {
                const C: &[Column] = &[
                    col("transaction_type", V, true),
                    col("sales_order_id", "int", false),
                    col("purchase_order_id", "int", false),
                ];
                C
            }
        }
    }

    /// The source table whose rows are this dimension's rows (others may be joined).
    pub fn source(self) -> &'static str {
        match self {
            Dim::Staff => "staff",
            Dim::Location => "address",
            Dim::Currency => "currency",
            Dim::Design => "design",
            Dim::Counterparty => "counterparty",
            Dim::PaymentType => "payment_type",
            Dim::Transaction => "transaction",
        }
    }

    /// The history table beside the contract table.
    pub fn history_table(self) -> String {
        format!("{}_history", self.table())
    }
}

/// Where a fact column's value comes from in the source row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    /// The source column as it is.
    Copy(&'static str),
    /// The date part of a source timestamp.
    DateOf(&'static str),
    /// The time part of a source timestamp.
    TimeOf(&'static str),
    /// A `YYYY-MM-DD` text column parsed as a date (bad input otherwise).
    Date(&'static str),
    /// An unconstrained source numeric that must fit `numeric(10,2)` exactly.
    Money(&'static str),
}

/// A fact table of the star schemas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fact {
    /// `fact_sales_order` from sales_order.
    SalesOrder,
    /// `fact_purchase_order` from purchase_order.
    PurchaseOrder,
    /// `fact_payment` from payment.
    Payment,
}

impl Fact {
    /// Every fact table.
    pub const ALL: [Fact; 3] = [Fact::SalesOrder, Fact::PurchaseOrder, Fact::Payment];

    /// The fact of a source table.
    pub fn of_source(table: &str) -> Option<Fact> {
        Fact::ALL.into_iter().find(|f| f.source() == table)
    }

    /// The source table.
    pub fn source(self) -> &'static str {
        match self {
            Fact::SalesOrder => "sales_order",
            Fact::PurchaseOrder => "purchase_order",
            Fact::Payment => "payment",
        }
    }

    /// The contract table's name.
    pub fn table(self) -> &'static str {
        match self {
            Fact::SalesOrder => "fact_sales_order",
            Fact::PurchaseOrder => "fact_purchase_order",
            Fact::Payment => "fact_payment",
        }
    }

    /// The version table beside it.
    pub fn version_table(self) -> String {
        format!("{}_version", self.table())
    }

    /// The serial record id column.
    pub fn record_id(self) -> &'static str {
        match self {
            Fact::SalesOrder => "sales_record_id",
            Fact::PurchaseOrder => "purchase_record_id",
            Fact::Payment => "payment_record_id",
        }
    }

    /// The natural key (the source row's key), the first contract column.
    pub fn key(self) -> &'static str {
        match self {
            Fact::SalesOrder => "sales_order_id",
            Fact::PurchaseOrder => "purchase_order_id",
            Fact::Payment => "payment_id",
        }
    }

    /// The contract columns after the record id, with where each comes from.
    pub fn columns(self) -> &'static [(Column, From)] {
        const TS: [(Column, From); 4] = [
            (
                col("created_date", "date", false),
                From::DateOf("created_at"),
            ),
            (
                col("created_time", "time", false),
                From::TimeOf("created_at"),
            ),
            (
                col("last_updated_date", "date", false),
                From::DateOf("last_updated"),
            ),
            (
                col("last_updated_time", "time", false),
                From::TimeOf("last_updated"),
            ),
        ];
        const fn int(name: &'static str, from: &'static str) -> (Column, From) {
            (col(name, "int", false), From::Copy(from))
        }
        const fn date(name: &'static str) -> (Column, From) {
            (col(name, "date", false), From::Date(name))
        }
        match self {
            Fact::SalesOrder => {
                const C: &[(Column, From)] = &[
                    int("sales_order_id", "sales_order_id"),
                    TS[0],
                    TS[1],
                    TS[2],
                    TS[3],
                    int("sales_staff_id", "staff_id"),
                    int("counterparty_id", "counterparty_id"),
                    int("units_sold", "units_sold"),
                    (
                        col("unit_price", "numeric", false),
                        From::Money("unit_price"),
                    ),
                    int("currency_id", "currency_id"),
                    int("design_id", "design_id"),
                    date("agreed_payment_date"),
                    date("agreed_delivery_date"),
                    int("agreed_delivery_location_id", "agreed_delivery_location_id"),
                ];
                C
            }
            Fact::PurchaseOrder => {
                const C: &[(Column, From)] = &[
                    int("purchase_order_id", "purchase_order_id"),
                    TS[0],
                    TS[1],
                    TS[2],
                    TS[3],
                    int("staff_id", "staff_id"),
                    int("counterparty_id", "counterparty_id"),
                    (col("item_code", "varchar", false), From::Copy("item_code")),
                    int("item_quantity", "item_quantity"),
                    (
                        col("item_unit_price", "numeric", false),
                        From::Copy("item_unit_price"),
                    ),
                    int("currency_id", "currency_id"),
                    date("agreed_delivery_date"),
                    date("agreed_payment_date"),
                    int("agreed_delivery_location_id", "agreed_delivery_location_id"),
                ];
                C
            }
            Fact::Payment => {
                const C: &[(Column, From)] = &[
                    int("payment_id", "payment_id"),
                    TS[0],
                    TS[1],
                    TS[2],
                    TS[3],
                    int("transaction_id", "transaction_id"),
                    int("counterparty_id", "counterparty_id"),
                    (
                        col("payment_amount", "numeric", false),
                        From::Copy("payment_amount"),
                    ),
                    int("currency_id", "currency_id"),
                    int("payment_type_id", "payment_type_id"),
                    (col("paid", "boolean", false), From::Copy("paid")),
                    date("payment_date"),
                ];
                C
            }
        }
    }

    /// The dimensions a fact row refers to: (source column, dimension).
    pub fn references(self) -> &'static [(&'static str, Dim)] {
        match self {
            Fact::SalesOrder => &[
                ("staff_id", Dim::Staff),
                ("counterparty_id", Dim::Counterparty),
                ("currency_id", Dim::Currency),
                ("design_id", Dim::Design),
                ("agreed_delivery_location_id", Dim::Location),
            ],
            Fact::PurchaseOrder => &[
                ("staff_id", Dim::Staff),
                ("counterparty_id", Dim::Counterparty),
                ("currency_id", Dim::Currency),
                ("agreed_delivery_location_id", Dim::Location),
            ],
            Fact::Payment => &[
                ("transaction_id", Dim::Transaction),
                ("counterparty_id", Dim::Counterparty),
                ("currency_id", Dim::Currency),
                ("payment_type_id", Dim::PaymentType),
            ],
        }
    }
}

/// The source tables dimensions are built from; the modeler mirrors their rows while it
/// plans a source transaction.
pub const MIRRORED: [&str; 8] = [
    "staff",
    "department",
    "address",
    "counterparty",
    "currency",
    "design",
    "payment_type",
    "transaction",
];

/// The mirrored tables a dimension joins (`staff ⋈ department`, `counterparty ⋈
/// address`): their current rows are kept between transactions, in memory and in
/// `totesys_cdc.source_rows`. The other mirrored tables' dimension rows are their rows
/// alone, so the change itself is all a recomputation needs.
pub const JOINED: [&str; 4] = ["staff", "department", "address", "counterparty"];

/// The key column of a mirrored source table.
pub fn source_key(table: &str) -> String {
    format!("{table}_id")
}
