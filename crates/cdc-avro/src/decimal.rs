//! PostgreSQL `numeric` text ⇄ the unscaled two's-complement bytes of an Avro `decimal`.
//!
//! Exact in both directions, with no big-number dependency: digits are carried in
//! base-10⁹ or base-2³² limbs. A text with more decimal places than the declared scale, or
//! more significant digits than the precision, is refused rather than rounded.

/// Largest decimal body decoded to text: 512 bytes hold any 1 000-digit PostgreSQL numeric.
const MAX_DECIMAL_BYTES: usize = 512;

/// Why a numeric text does not fit a `decimal(precision, scale)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DecimalError {
    /// `NaN` or `±Infinity`.
    NotFinite,
    /// Not `-?digits(.digits)?`.
    Syntax,
    /// More fractional digits than the scale.
    Scale { places: usize },
    /// More significant digits than the precision.
    Precision { digits: usize },
}

impl DecimalError {
    /// The reason, to complete "numeric "text" …".
    pub(crate) fn reason(&self, precision: u32, scale: u32) -> String {
        match self {
            DecimalError::NotFinite => {
                "is not finite: an Avro decimal cannot carry NaN or infinity".to_owned()
            }
            DecimalError::Syntax => "is not PostgreSQL numeric output".to_owned(),
            DecimalError::Scale { places } => format!(
                "has {places} decimal places, more than the column's scale {scale} (not rounded)"
            ),
            DecimalError::Precision { digits } => {
                format!(
                    "has {digits} significant digits, more than the column's precision {precision}"
                )
            }
        }
    }
}

/// The unscaled value of `text` at `scale`, as minimal big-endian two's-complement bytes.
pub(crate) fn numeric_to_decimal_bytes(
    text: &str,
    precision: u32,
    scale: u32,
) -> Result<Vec<u8>, DecimalError> {
    if matches!(text, "NaN" | "Infinity" | "-Infinity") {
        return Err(DecimalError::NotFinite);
    }
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int_part, frac_part) = match unsigned.split_once('.') {
        Some((int_part, frac_part)) if !frac_part.is_empty() => (int_part, frac_part),
        Some(_) => return Err(DecimalError::Syntax),
        None => (unsigned, ""),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int_part.is_empty() || !all_digits(int_part) || !all_digits(frac_part) {
        return Err(DecimalError::Syntax);
    }
    let scale = usize::try_from(scale).unwrap_or(usize::MAX);
    if frac_part.len() > scale {
        return Err(DecimalError::Scale {
            places: frac_part.len(),
        });
    }
    // Unscaled digits, most significant first, without leading zeros.
    let padding = scale - frac_part.len();
    let digits: Vec<u8> = int_part
        .bytes()
        .chain(frac_part.bytes())
        .chain(std::iter::repeat_n(b'0', padding))
        .map(|b| b - b'0')
        .skip_while(|&d| d == 0)
        .collect();
    if digits.len() > usize::try_from(precision).unwrap_or(usize::MAX) {
        return Err(DecimalError::Precision {
            digits: digits.len(),
        });
    }
    Ok(twos_complement(&magnitude_bytes(&digits), negative))
}

/// The text PostgreSQL prints for the unscaled two's-complement `bytes` at `scale`:
/// exactly `scale` decimal places, `-` only for values below zero.
pub(crate) fn decimal_bytes_to_numeric(bytes: &[u8], scale: u32) -> Result<String, &'static str> {
    if bytes.len() > MAX_DECIMAL_BYTES {
        return Err("decimal longer than 512 bytes");
    }
    let scale = usize::try_from(scale).map_err(|_| "scale out of range")?;
    if scale > 4 * MAX_DECIMAL_BYTES {
        return Err("scale above 2048");
    }
    let negative = bytes.first().is_some_and(|&b| b & 0x80 != 0);
    let mut magnitude = bytes.to_vec();
    if negative {
        negate_in_place(&mut magnitude);
    }
    let mut digits = decimal_digits(&magnitude);
    if digits.len() <= scale {
        let zeros = "0".repeat(scale + 1 - digits.len());
        digits.insert_str(0, &zeros);
    }
    let mut out = String::with_capacity(digits.len() + 2);
    if negative {
        out.push('-');
    }
    let point = digits.len() - scale;
    out.push_str(digits.get(..point).unwrap_or_default());
    if scale > 0 {
        out.push('.');
        out.push_str(digits.get(point..).unwrap_or_default());
    }
    Ok(out)
}

/// Big-endian unsigned bytes of the decimal `digits` (values 0–9), no leading zeros.
fn magnitude_bytes(digits: &[u8]) -> Vec<u8> {
    // Little-endian base-2^32 limbs; fold nine decimal digits at a time.
    let mut limbs: Vec<u32> = Vec::new();
    for chunk in digits.chunks(9) {
        let mut multiplier = 1u64;
        let mut addend = 0u64;
        for &d in chunk {
            multiplier *= 10;
            addend = addend * 10 + u64::from(d);
        }
        let mut carry = addend;
        for limb in limbs.iter_mut() {
            let v = u64::from(*limb) * multiplier + carry;
            *limb = v as u32; // low 32 bits; the rest carries
            carry = v >> 32;
        }
        if carry > 0 {
            limbs.push(carry as u32); // carry < 2^32 since multiplier <= 10^9
        }
    }
    let bytes: Vec<u8> = limbs.iter().rev().flat_map(|l| l.to_be_bytes()).collect();
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes.get(first..).unwrap_or_default().to_vec()
}

/// Minimal two's-complement bytes of `magnitude` (big-endian, unsigned) with the given sign.
fn twos_complement(magnitude: &[u8], negative: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(magnitude.len() + 1);
    out.push(0);
    out.extend_from_slice(magnitude);
    if negative && magnitude.iter().any(|&b| b != 0) {
        negate_in_place(&mut out);
        // Drop sign-extension bytes the next byte already implies.
        while out.len() > 1
            && out.first() == Some(&0xFF)
            && out.get(1).is_some_and(|b| b & 0x80 != 0)
        {
            out.remove(0);
        }
    } else {
        while out.len() > 1 && out.first() == Some(&0) && out.get(1).is_some_and(|b| b & 0x80 == 0)
        {
            out.remove(0);
        }
    }
    out
}

/// Two's-complement negation of a big-endian byte string, in place.
fn negate_in_place(bytes: &mut [u8]) {
    let mut carry = true;
    for b in bytes.iter_mut().rev() {
        let (sum, overflow) = (!*b).overflowing_add(u8::from(carry));
        *b = sum;
        carry = overflow;
    }
}

/// Decimal digits of the big-endian unsigned `bytes`, `"0"` for zero.
fn decimal_digits(bytes: &[u8]) -> String {
    const BASE: u64 = 1_000_000_000;
    // Little-endian base-10^9 limbs.
    let mut limbs: Vec<u32> = Vec::new();
    for &byte in bytes {
        let mut carry = u64::from(byte);
        for limb in limbs.iter_mut() {
            let v = u64::from(*limb) * 256 + carry;
            *limb = (v % BASE) as u32;
            carry = v / BASE;
        }
        while carry > 0 {
            limbs.push((carry % BASE) as u32);
            carry /= BASE;
        }
    }
    let mut out = String::new();
    let mut iter = limbs.iter().rev();
    match iter.next() {
        Some(top) => out.push_str(&top.to_string()),
        None => out.push('0'),
    }
    for limb in iter {
        out.push_str(&format!("{limb:09}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Minimal two's-complement bytes of an `i128`, as Java's `BigInteger.toByteArray`.
    fn reference_bytes(v: i128) -> Vec<u8> {
        let mut bytes = v.to_be_bytes().to_vec();
        while bytes.len() > 1 {
            let (first, second) = (bytes[0], bytes[1]);
            if (first == 0 && second & 0x80 == 0) || (first == 0xFF && second & 0x80 != 0) {
                bytes.remove(0);
            } else {
                break;
            }
        }
        bytes
    }

    /// `unscaled / 10^scale` as PostgreSQL prints a `numeric(p, scale)`.
    fn reference_text(unscaled: i128, scale: u32) -> String {
        cdc_core::decimal_text(unscaled, i32::try_from(scale).unwrap())
    }

    #[test]
    fn known_values() {
        assert_eq!(
            numeric_to_decimal_bytes("3.14", 10, 2),
            Ok(vec![0x01, 0x3A])
        );
        assert_eq!(numeric_to_decimal_bytes("3.1", 10, 2), Ok(vec![0x01, 0x36]));
        assert_eq!(
            numeric_to_decimal_bytes("-3.14", 10, 2),
            Ok(vec![0xFE, 0xC6])
        );
        assert_eq!(numeric_to_decimal_bytes("0.00", 10, 2), Ok(vec![0x00]));
        assert_eq!(numeric_to_decimal_bytes("-0.00", 10, 2), Ok(vec![0x00]));
        assert_eq!(
            numeric_to_decimal_bytes("1.28", 10, 2),
            Ok(vec![0x00, 0x80])
        );
        assert_eq!(numeric_to_decimal_bytes("-1.28", 10, 2), Ok(vec![0x80]));
        assert_eq!(numeric_to_decimal_bytes("12", 10, 0), Ok(vec![12]));
        assert_eq!(
            decimal_bytes_to_numeric(&[0x01, 0x3A], 2).as_deref(),
            Ok("3.14")
        );
        assert_eq!(
            decimal_bytes_to_numeric(&[0xFE, 0xC6], 2).as_deref(),
            Ok("-3.14")
        );
        assert_eq!(decimal_bytes_to_numeric(&[0xFF], 2).as_deref(), Ok("-0.01"));
        assert_eq!(decimal_bytes_to_numeric(&[], 2).as_deref(), Ok("0.00"));
        assert_eq!(decimal_bytes_to_numeric(&[0x80], 0).as_deref(), Ok("-128"));
        assert_eq!(decimal_bytes_to_numeric(&[5], 3).as_deref(), Ok("0.005"));
    }

    #[test]
    fn refuses_rather_than_rounds() {
        assert_eq!(
            numeric_to_decimal_bytes("3.141", 10, 2),
            Err(DecimalError::Scale { places: 3 })
        );
        assert_eq!(
            numeric_to_decimal_bytes("3.140", 10, 2),
            Err(DecimalError::Scale { places: 3 })
        );
        assert_eq!(
            numeric_to_decimal_bytes("123456789.00", 10, 2),
            Err(DecimalError::Precision { digits: 11 })
        );
        assert_eq!(
            numeric_to_decimal_bytes("00012345678.00", 10, 2),
            Ok(reference_bytes(1_234_567_800))
        );
        for bad in ["NaN", "Infinity", "-Infinity"] {
            assert_eq!(
                numeric_to_decimal_bytes(bad, 10, 2),
                Err(DecimalError::NotFinite)
            );
        }
        for bad in ["", "-", "1.", ".5", "1e5", "+1", "1.2.3", "١", "1 ", "--1"] {
            assert_eq!(
                numeric_to_decimal_bytes(bad, 10, 2),
                Err(DecimalError::Syntax),
                "{bad}"
            );
        }
        assert!(decimal_bytes_to_numeric(&[1; 513], 2).is_err());
        assert!(decimal_bytes_to_numeric(&[1], 5000).is_err());
    }

    #[test]
    fn thousand_digit_numbers() {
        let digits = "9".repeat(1000);
        let bytes = numeric_to_decimal_bytes(&digits, 1000, 0).unwrap();
        assert!(bytes.len() <= MAX_DECIMAL_BYTES);
        assert_eq!(decimal_bytes_to_numeric(&bytes, 0).unwrap(), digits);
        let negative = format!("-0.{}", "1".repeat(1000));
        let bytes = numeric_to_decimal_bytes(&negative, 1000, 1000).unwrap();
        assert_eq!(decimal_bytes_to_numeric(&bytes, 1000).unwrap(), negative);
    }

    proptest! {
        #[test]
        fn matches_i128(unscaled in any::<i128>(), scale in 0u32..40) {
            let text = reference_text(unscaled, scale);
            let bytes = numeric_to_decimal_bytes(&text, 39 + scale, scale).unwrap();
            prop_assert_eq!(&bytes, &reference_bytes(unscaled));
            prop_assert_eq!(decimal_bytes_to_numeric(&bytes, scale).unwrap(), text);
        }

        #[test]
        fn any_bytes_decode_to_a_value_that_encodes_back(
            bytes in proptest::collection::vec(any::<u8>(), 1..40),
            scale in 0u32..20,
        ) {
            let text = decimal_bytes_to_numeric(&bytes, scale).unwrap();
            let again = numeric_to_decimal_bytes(&text, 200, scale).unwrap();
            // The same number, in minimal form.
            prop_assert_eq!(decimal_bytes_to_numeric(&again, scale).unwrap(), text);
            prop_assert!(again.len() <= bytes.len());
        }
    }
}
