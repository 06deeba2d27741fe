use std::fmt;

/// A source table's identity: its relation OID in PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableId(pub u32);

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A schema-qualified table name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableName {
    /// The namespace, e.g. `public`.
    pub schema: String,
    /// The table's own name.
    pub name: String,
}

impl TableName {
    /// A name from its two parts.
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        TableName {
            schema: schema.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// Which old-row columns PostgreSQL logs for updates and deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplicaIdentity {
    /// The primary key (`d`).
    Default,
    /// No old row at all (`n`).
    Nothing,
    /// Every column (`f`).
    Full,
    /// The columns of a chosen unique index (`i`).
    Index,
}

impl ReplicaIdentity {
    /// From the `relreplident` character; `None` for an unknown one.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            b'd' => Some(Self::Default),
            b'n' => Some(Self::Nothing),
            b'f' => Some(Self::Full),
            b'i' => Some(Self::Index),
            _ => None,
        }
    }
}

/// One column of a source table as capture sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ColumnSchema {
    /// Column name.
    pub name: String,
    /// PostgreSQL type OID.
    pub type_oid: u32,
    /// PostgreSQL type modifier (`atttypmod`), -1 when none.
    pub type_modifier: i32,
    /// The type's name as `format_type` prints it (e.g. `numeric(10,2)`, `public.txn_type`).
    pub type_name: String,
    /// Whether the column may hold NULL.
    pub nullable: bool,
    /// Whether the column is part of the primary key.
    pub primary_key: bool,
    /// Whether the column is part of the replica identity (sent in old-key tuples).
    pub replica_identity: bool,
}

impl ColumnSchema {
    /// Declared `(precision, scale)` of a `numeric(p,s)` column (or `numeric(p,s)[]`) whose
    /// scale lies in `0..=p`; `None` when unconstrained.
    pub fn numeric_precision_scale(&self) -> Option<(u32, u32)> {
        crate::NumericTypmod::decode(self.type_modifier)?.plain()
    }
}

/// A source table's shape at one point of the WAL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableSchema {
    /// Relation OID.
    pub id: TableId,
    /// Schema-qualified name.
    pub name: TableName,
    /// Columns in attribute order, as sent in tuples.
    pub columns: Vec<ColumnSchema>,
    /// The table's replica identity setting.
    pub replica_identity: ReplicaIdentity,
}

impl TableSchema {
    /// Indexes of the primary-key columns (falling back to the replica identity columns).
    pub fn key_indexes(&self) -> Vec<usize> {
        let pk: Vec<usize> = (0..self.columns.len())
            .filter(|&i| self.columns[i].primary_key)
            .collect();
        if !pk.is_empty() {
            return pk;
        }
        (0..self.columns.len())
            .filter(|&i| self.columns[i].replica_identity)
            .collect()
    }

    /// The index of the column named `name`.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, type_modifier: i32, primary_key: bool) -> ColumnSchema {
        ColumnSchema {
            name: name.into(),
            type_oid: 1700,
            type_modifier,
            type_name: "numeric".into(),
            nullable: !primary_key,
            primary_key,
            replica_identity: primary_key,
        }
    }

    #[test]
    fn numeric_typmod_decodes_precision_and_scale() {
        assert_eq!(
            column("a", ((10 << 16) | 2) + 4, false).numeric_precision_scale(),
            Some((10, 2))
        );
        assert_eq!(column("a", -1, false).numeric_precision_scale(), None);
    }

    #[test]
    fn key_indexes_prefer_primary_key() {
        let table = TableSchema {
            id: TableId(1),
            name: TableName::new("public", "t"),
            columns: vec![column("a", -1, false), column("id", -1, true)],
            replica_identity: ReplicaIdentity::Default,
        };
        assert_eq!(table.key_indexes(), vec![1]);
        assert_eq!(table.column_index("a"), Some(0));
        assert_eq!(table.name.to_string(), "public.t");
    }
}
