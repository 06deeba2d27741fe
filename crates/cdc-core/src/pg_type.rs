//! PostgreSQL's types as every stage types them: one table of the built-in types the
//! pipeline reads into typed [`Value`](crate::Value)s, and the [`ColumnKind`] of a column
//! computed once from its type OID.
//!
//! ```text
//!   atttypid ──► ColumnKind::of ──► Scalar(PgType) │ Array(PgType) │ Verbatim
//!   atttypmod ─► NumericTypmod::decode ──► (precision, scale) of numeric(p,s) and numeric(p,s)[]
//! ```
//!
//! The decoder, the Avro mapping, the lake's Arrow mapping and the modeler all start here,
//! so they cannot disagree about which types are typed. Each target then says how it holds
//! a kind (Avro `decimal` when it can declare the precision, Arrow `Decimal128` up to 38
//! digits, text otherwise). Domains are typed as their base type: capture resolves them
//! from the catalog before a column's OID reaches this module. Enums, `interval`, `timetz`,
//! `xml`, `money`, ranges and arrays of any of these are [`ColumnKind::Verbatim`]: their
//! text travels as PostgreSQL prints it.

/// The built-in types read into typed values, each with its OID and its array's OID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PgType {
    /// `boolean`.
    Bool,
    /// `bytea`.
    Bytea,
    /// `"char"`, the one-byte internal type.
    Char,
    /// `name`.
    Name,
    /// `text`.
    Text,
    /// `character(n)`.
    Bpchar,
    /// `character varying(n)`.
    Varchar,
    /// `smallint`.
    Int2,
    /// `integer`.
    Int4,
    /// `bigint`.
    Int8,
    /// `oid` (unsigned 32-bit).
    Oid,
    /// `real`.
    Float4,
    /// `double precision`.
    Float8,
    /// `numeric`, with or without a precision and scale.
    Numeric,
    /// `date`.
    Date,
    /// `time without time zone`.
    Time,
    /// `timestamp without time zone`.
    Timestamp,
    /// `timestamp with time zone`.
    TimestampTz,
    /// `uuid`.
    Uuid,
    /// `json`.
    Json,
    /// `jsonb`.
    Jsonb,
}

/// The workspace's one table of PostgreSQL type OIDs (from `pg_type.dat`): per type, its
/// OID, its array's OID, its short name, its array's short name and `format_type`'s name.
const fn row(ty: PgType) -> (u32, u32, &'static str, &'static str, &'static str) {
    match ty {
        PgType::Bool => (16, 1000, "bool", "bool[]", "boolean"),
        PgType::Bytea => (17, 1001, "bytea", "bytea[]", "bytea"),
        PgType::Char => (18, 1002, "\"char\"", "\"char\"[]", "\"char\""),
        PgType::Name => (19, 1003, "name", "name[]", "name"),
        PgType::Text => (25, 1009, "text", "text[]", "text"),
        PgType::Bpchar => (1042, 1014, "bpchar", "bpchar[]", "character"),
        PgType::Varchar => (1043, 1015, "varchar", "varchar[]", "character varying"),
        PgType::Int2 => (21, 1005, "int2", "int2[]", "smallint"),
        PgType::Int4 => (23, 1007, "int4", "int4[]", "integer"),
        PgType::Int8 => (20, 1016, "int8", "int8[]", "bigint"),
        PgType::Oid => (26, 1028, "oid", "oid[]", "oid"),
        PgType::Float4 => (700, 1021, "float4", "float4[]", "real"),
        PgType::Float8 => (701, 1022, "float8", "float8[]", "double precision"),
        PgType::Numeric => (1700, 1231, "numeric", "numeric[]", "numeric"),
        PgType::Date => (1082, 1182, "date", "date[]", "date"),
        PgType::Time => (1083, 1183, "time", "time[]", "time without time zone"),
        PgType::Timestamp => (
            1114,
            1115,
            "timestamp",
            "timestamp[]",
            "timestamp without time zone",
        ),
        PgType::TimestampTz => (
            1184,
            1185,
            "timestamptz",
            "timestamptz[]",
            "timestamp with time zone",
        ),
        PgType::Uuid => (2950, 2951, "uuid", "uuid[]", "uuid"),
        PgType::Json => (114, 199, "json", "json[]", "json"),
        PgType::Jsonb => (3802, 3807, "jsonb", "jsonb[]", "jsonb"),
    }
}

impl PgType {
    /// Every typed built-in type.
    pub const ALL: [PgType; 21] = [
        PgType::Bool,
        PgType::Bytea,
        PgType::Char,
        PgType::Name,
        PgType::Text,
        PgType::Bpchar,
        PgType::Varchar,
        PgType::Int2,
        PgType::Int4,
        PgType::Int8,
        PgType::Oid,
        PgType::Float4,
        PgType::Float8,
        PgType::Numeric,
        PgType::Date,
        PgType::Time,
        PgType::Timestamp,
        PgType::TimestampTz,
        PgType::Uuid,
        PgType::Json,
        PgType::Jsonb,
    ];

    /// The type of OID `oid`, when it is one of the typed built-ins.
    pub fn from_oid(oid: u32) -> Option<PgType> {
        PgType::ALL.into_iter().find(|t| t.oid() == oid)
    }

    /// The element type of the one-dimensional array type `array_oid`.
    pub fn from_array_oid(array_oid: u32) -> Option<PgType> {
        PgType::ALL.into_iter().find(|t| t.array_oid() == array_oid)
    }

    /// The type `format_type` names `name` (without a modifier: `character varying`).
    pub fn from_sql_name(name: &str) -> Option<PgType> {
        if name == "bpchar" {
            return Some(PgType::Bpchar);
        }
        PgType::ALL.into_iter().find(|t| t.sql_name() == name)
    }

    /// Its OID.
    pub const fn oid(self) -> u32 {
        row(self).0
    }

    /// Its one-dimensional array type's OID.
    pub const fn array_oid(self) -> u32 {
        row(self).1
    }

    /// Its short name, as in messages (`int4`, `timestamptz`).
    pub const fn short_name(self) -> &'static str {
        row(self).2
    }

    /// Its array type's short name (`int4[]`).
    pub const fn array_name(self) -> &'static str {
        row(self).3
    }

    /// Its name as `format_type` prints it, without a modifier (`integer`).
    pub const fn sql_name(self) -> &'static str {
        row(self).4
    }
}

/// How a column's values are typed, from its type OID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnKind {
    /// One value of a typed built-in type.
    Scalar(PgType),
    /// A one-dimensional array of a typed built-in type.
    Array(PgType),
    /// Any other type: PostgreSQL's text, kept verbatim.
    Verbatim,
}

impl ColumnKind {
    /// The kind of a column of type `oid`.
    pub fn of(oid: u32) -> ColumnKind {
        if let Some(ty) = PgType::from_oid(oid) {
            ColumnKind::Scalar(ty)
        } else if let Some(element) = PgType::from_array_oid(oid) {
            ColumnKind::Array(element)
        } else {
            ColumnKind::Verbatim
        }
    }

    /// The scalar type, or the element type of an array.
    pub fn element(self) -> Option<PgType> {
        match self {
            ColumnKind::Scalar(ty) | ColumnKind::Array(ty) => Some(ty),
            ColumnKind::Verbatim => None,
        }
    }

    /// The name for messages: `int4`, `numeric[]`, or `value` for a verbatim type.
    pub fn name(self) -> &'static str {
        match self {
            ColumnKind::Scalar(ty) => ty.short_name(),
            ColumnKind::Array(ty) => ty.array_name(),
            ColumnKind::Verbatim => "value",
        }
    }
}

/// The declared precision and scale of `numeric(p,s)` (and of `numeric(p,s)[]`, whose
/// modifier is its elements').
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NumericTypmod {
    /// Total significant digits, 1 to 1000.
    pub precision: u16,
    /// Digits after the point; negative or above the precision since PostgreSQL 15.
    pub scale: i16,
}

/// PostgreSQL's `VARHDRSZ`, added to every length-like type modifier.
const VARHDRSZ: i32 = 4;

impl NumericTypmod {
    /// The precision and scale a `numeric` modifier declares; `None` when unconstrained.
    ///
    /// PostgreSQL stores `((precision << 16) | (scale & 0x7ff)) + 4`, the scale as 11-bit
    /// two's complement.
    pub fn decode(typmod: i32) -> Option<NumericTypmod> {
        if typmod < VARHDRSZ {
            return None;
        }
        let raw = typmod - VARHDRSZ;
        let precision = u16::try_from((raw >> 16) & 0xFFFF).ok()?;
        let scale = i16::try_from(((raw & 0x7ff) ^ 1024) - 1024).ok()?;
        (precision >= 1).then_some(NumericTypmod { precision, scale })
    }

    /// The modifier of `numeric(precision, scale)`, for the values PostgreSQL accepts.
    pub fn encode(precision: i32, scale: i32) -> Option<i32> {
        ((1..=1000).contains(&precision) && (-1000..=1000).contains(&scale))
            .then(|| ((precision << 16) | (scale & 0x7ff)) + VARHDRSZ)
    }

    /// `(precision, scale)` when the scale lies in `0..=precision`, the shape decimal
    /// types of other systems can declare.
    pub fn plain(self) -> Option<(u32, u32)> {
        let scale = u16::try_from(self.scale).ok()?;
        (scale <= self.precision).then_some((u32::from(self.precision), u32::from(scale)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_has_one_row() {
        for ty in PgType::ALL {
            assert_eq!(PgType::from_oid(ty.oid()), Some(ty));
            assert_eq!(PgType::from_array_oid(ty.array_oid()), Some(ty));
            assert_eq!(PgType::from_sql_name(ty.sql_name()), Some(ty));
            assert_eq!(ColumnKind::of(ty.oid()), ColumnKind::Scalar(ty));
            assert_eq!(ColumnKind::of(ty.array_oid()), ColumnKind::Array(ty));
        }
        let mut oids: Vec<u32> = PgType::ALL
            .iter()
            .flat_map(|t| [t.oid(), t.array_oid()])
            .collect();
        oids.sort_unstable();
        oids.dedup();
        assert_eq!(oids.len(), 2 * PgType::ALL.len(), "no OID stands twice");
        for ty in PgType::ALL {
            assert_eq!(ty.array_name(), format!("{}[]", ty.short_name()));
        }
    }

    #[test]
    fn other_types_are_verbatim() {
        // interval, interval[], timetz, xml, money, an enum's OID.
        for oid in [1186, 1187, 1266, 142, 790, 16_385] {
            assert_eq!(ColumnKind::of(oid), ColumnKind::Verbatim);
        }
        assert_eq!(ColumnKind::of(1231).name(), "numeric[]");
        assert_eq!(ColumnKind::of(23).name(), "int4");
        assert_eq!(PgType::from_sql_name("bpchar"), Some(PgType::Bpchar));
    }

    #[test]
    fn numeric_modifiers_round_trip_with_pg15_scales() {
        for (p, s) in [
            (10, 2),
            (38, 0),
            (1, 0),
            (1000, 1000),
            (3, -2),
            (2, 5),
            (5, -1000),
        ] {
            let typmod = NumericTypmod::encode(p, s).expect("in range");
            let decoded = NumericTypmod::decode(typmod).expect("constrained");
            assert_eq!(
                (i32::from(decoded.precision), i32::from(decoded.scale)),
                (p, s)
            );
        }
        assert_eq!(NumericTypmod::decode(-1), None);
        assert_eq!(NumericTypmod::encode(0, 0), None);
        assert_eq!(NumericTypmod::encode(1001, 0), None);
        let plain = |p, s| NumericTypmod::decode(NumericTypmod::encode(p, s)?)?.plain();
        assert_eq!(plain(10, 2), Some((10, 2)));
        assert_eq!(plain(3, -2), None, "negative scale");
        assert_eq!(plain(2, 5), None, "scale above precision");
    }
}
