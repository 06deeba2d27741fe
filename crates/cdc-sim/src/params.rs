//! Values bound as statement parameters that `tokio_postgres` has no type for:
//! exact two-decimal `numeric`s, and `transaction_type` as varchar or enum.

use std::error::Error;
use std::fmt;

use bytes::{BufMut, BytesMut};
use tokio_postgres::types::{to_sql_checked, IsNull, Kind, ToSql, Type};

/// An exact amount with two decimal places, held as hundredths (`1250` is `12.50`).
///
/// Binds to `numeric` (with or without a declared precision) in PostgreSQL's binary form,
/// so no value is ever rounded through a float or formatted into SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Cents(pub i64);

impl Cents {
    /// The binary `numeric` encoding: ndigits, weight, sign, dscale, then base-10000 digits.
    fn encode(self, out: &mut BytesMut) {
        let magnitude = self.0.unsigned_abs();
        let mut whole = magnitude / 100;
        // The two decimals make up the first base-10000 digit after the point.
        let fraction = (magnitude % 100) as i16 * 100;
        let mut groups: Vec<i16> = Vec::with_capacity(6);
        while whole > 0 {
            groups.push((whole % 10_000) as i16);
            whole /= 10_000;
        }
        let weight = groups.len() as i16 - 1;
        groups.reverse();
        groups.push(fraction);
        while groups.last() == Some(&0) {
            groups.pop();
        }
        let (weight, sign) = if groups.is_empty() {
            (0, 0x0000)
        } else if self.0 < 0 {
            (weight, 0x4000)
        } else {
            (weight, 0x0000)
        };
        out.put_i16(groups.len() as i16);
        out.put_i16(weight);
        out.put_u16(sign);
        out.put_i16(2);
        for group in groups {
            out.put_i16(group);
        }
    }
}

impl fmt::Display for Cents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let magnitude = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", magnitude / 100, magnitude % 100)
    }
}

impl ToSql for Cents {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        self.encode(out);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }

    to_sql_checked!();
}

/// `transaction.transaction_type`: binds to the spec's `varchar` and to the enum variant alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TransactionType {
    /// The transaction of a sales order.
    Sale,
    /// The transaction of a purchase order.
    Purchase,
}

impl TransactionType {
    /// The value as stored: `SALE` or `PURCHASE`.
    pub(crate) fn label(self) -> &'static str {
        match self {
            TransactionType::Sale => "SALE",
            TransactionType::Purchase => "PURCHASE",
        }
    }
}

impl ToSql for TransactionType {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        // The binary form of text types and of enums is the label's bytes.
        out.put_slice(self.label().as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        if *ty == Type::VARCHAR || *ty == Type::TEXT {
            return true;
        }
        match ty.kind() {
            Kind::Enum(labels) => {
                labels.iter().any(|l| l == "SALE") && labels.iter().any(|l| l == "PURCHASE")
            }
            _ => false,
        }
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(cents: i64) -> Vec<i16> {
        let mut out = BytesMut::new();
        Cents(cents).encode(&mut out);
        out.chunks(2)
            .map(|c| i16::from_be_bytes([c[0], c[1]]))
            .collect()
    }

    #[test]
    fn numeric_encoding_of_typical_amounts() {
        // ndigits, weight, sign, dscale, digits…
        assert_eq!(encoded(0), [0, 0, 0, 2]);
        assert_eq!(encoded(1250), [2, 0, 0, 2, 12, 5000]);
        assert_eq!(encoded(5), [1, -1, 0, 2, 500]);
        assert_eq!(encoded(300), [1, 0, 0, 2, 3]);
        assert_eq!(encoded(100_000_000), [1, 1, 0, 2, 100]);
        assert_eq!(encoded(123_456_789), [3, 1, 0, 2, 123, 4567, 8900]);
        assert_eq!(encoded(10_000_000_000), [1, 2, 0, 2, 1]);
        assert_eq!(encoded(-1250), [2, 0, 0x4000, 2, 12, 5000]);
    }

    #[test]
    fn cents_display_has_two_decimals() {
        assert_eq!(Cents(0).to_string(), "0.00");
        assert_eq!(Cents(5).to_string(), "0.05");
        assert_eq!(Cents(1250).to_string(), "12.50");
        assert_eq!(Cents(100_000_000).to_string(), "1000000.00");
        assert_eq!(Cents(-1250).to_string(), "-12.50");
    }

    #[test]
    fn transaction_type_binds_to_text_and_matching_enums() {
        assert!(<TransactionType as ToSql>::accepts(&Type::VARCHAR));
        assert!(<TransactionType as ToSql>::accepts(&Type::TEXT));
        assert!(!<TransactionType as ToSql>::accepts(&Type::INT4));
        let labels = vec!["SALE".to_owned(), "PURCHASE".to_owned()];
        let enum_type = Type::new(
            "transaction_type_enum".into(),
            1,
            Kind::Enum(labels),
            "public".into(),
        );
        assert!(<TransactionType as ToSql>::accepts(&enum_type));
        let other = Type::new(
            "mood".into(),
            2,
            Kind::Enum(vec!["sad".into()]),
            "public".into(),
        );
        assert!(!<TransactionType as ToSql>::accepts(&other));
    }
}
