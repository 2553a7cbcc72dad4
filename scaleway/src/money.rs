//! Exact prices: [`MicroEuros`], parsed from the decimal text of a JSON number.
//!
//! Scaleway sends prices as JSON numbers in EUR (`"hourly_price": 1.2426`). Going through `f64`
//! would turn `1.2426` into `1.24259999…` and make sums drift, so the client captures the raw
//! text of the number (`serde_json::value::RawValue`) and parses it as a decimal, exactly, into
//! an integer count of micro-euros. A value with more than six fractional digits is rounded half
//! away from zero to the nearest micro-euro (no Scaleway price we know of has more than four).
//! The simulator writes prices back as the same decimal text, so no float is involved anywhere.

use std::fmt;
use std::str::FromStr;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// An amount of money in millionths of a euro (`1_242_600` is 1.2426 EUR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MicroEuros(pub i64);

/// The decimal text was not a number, or does not fit an `i64` of micro-euros.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid price {text:?}: {reason}")]
pub struct PriceParseError {
    /// The text that was rejected.
    pub text: String,
    /// Why it was rejected.
    pub reason: &'static str,
}

const SCALE_DIGITS: i32 = 6;

impl MicroEuros {
    /// Zero euros.
    pub const ZERO: Self = Self(0);

    /// From whole micro-euros.
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// The amount in micro-euros.
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// Parses the text of a JSON number (`"0.75"`, `"1.2426"`, `"6"`, `"1.5e1"`) exactly.
    pub fn from_decimal_str(text: &str) -> Result<Self, PriceParseError> {
        let err = |reason| PriceParseError {
            text: text.to_string(),
            reason,
        };
        let s = text.trim();
        let (negative, s) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let (mantissa, exponent) = match s.find(['e', 'E']) {
            Some(i) => {
                let exp: i32 = s[i + 1..].parse().map_err(|_| err("malformed exponent"))?;
                (&s[..i], exp)
            }
            None => (s, 0),
        };
        let (int_part, frac_part) = match mantissa.split_once('.') {
            Some((i, f)) => (i, f),
            None => (mantissa, ""),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(err("no digits"));
        }
        if !int_part.bytes().all(|b| b.is_ascii_digit())
            || !frac_part.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(err("not a decimal number"));
        }
        // All digits as one integer, then a power-of-ten shift to reach micro-units.
        let digits = format!("{int_part}{frac_part}");
        let digits = digits.trim_start_matches('0');
        if digits.len() > 30 {
            return Err(err("too many digits"));
        }
        let mut value: i128 = if digits.is_empty() {
            0
        } else {
            digits.parse().map_err(|_| err("not a decimal number"))?
        };
        let frac_len = i32::try_from(frac_part.len()).map_err(|_| err("too many digits"))?;
        let shift = SCALE_DIGITS - frac_len + exponent;
        if shift >= 0 {
            if value != 0 {
                if shift > 24 {
                    return Err(err("out of range"));
                }
                value = value
                    .checked_mul(10i128.pow(shift.unsigned_abs()))
                    .ok_or_else(|| err("out of range"))?;
            }
        } else {
            let drop = shift.unsigned_abs();
            value = if drop > 38 {
                0
            } else {
                let divisor = 10i128.pow(drop);
                let quotient = value / divisor;
                let remainder = value % divisor;
                // Half away from zero (the sign is applied afterwards).
                if remainder * 2 >= divisor {
                    quotient + 1
                } else {
                    quotient
                }
            };
        }
        if negative {
            value = -value;
        }
        i64::try_from(value)
            .map(Self)
            .map_err(|_| err("out of range"))
    }

    /// The decimal text of the amount in EUR, with at least one fractional digit and no
    /// trailing zeros beyond it (`0.75`, `1.2426`, `6.0`).
    pub fn to_decimal_string(self) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let whole = abs / 1_000_000;
        let frac = abs % 1_000_000;
        let mut frac_text = format!("{frac:06}");
        while frac_text.len() > 1 && frac_text.ends_with('0') {
            frac_text.pop();
        }
        format!("{sign}{whole}.{frac_text}")
    }

    /// Multiplies by a whole count (hours, GPUs), failing on overflow.
    pub fn checked_mul(self, factor: i64) -> Option<Self> {
        self.0.checked_mul(factor).map(Self)
    }

    /// Adds two amounts, failing on overflow.
    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).map(Self)
    }
}

impl fmt::Display for MicroEuros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} EUR", self.to_decimal_string())
    }
}

impl FromStr for MicroEuros {
    type Err = PriceParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_decimal_str(s)
    }
}

/// Serialises as a JSON number with the exact decimal text (`1.2426`), as Scaleway does.
impl Serialize for MicroEuros {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw =
            RawValue::from_string(self.to_decimal_string()).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

/// Deserialises from a JSON number (or a string holding one) through its decimal text.
///
/// This works when the input is read by `serde_json` from text (`from_slice`/`from_str`), which
/// is how the client reads every response; `serde_json::Value` input is refused because it has
/// already turned the number into an `f64`.
impl<'de> Deserialize<'de> for MicroEuros {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        let text = raw.get().trim();
        let text = text
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .unwrap_or(text);
        Self::from_decimal_str(text).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> i64 {
        MicroEuros::from_decimal_str(s)
            .map(|m| m.0)
            .unwrap_or(i64::MIN)
    }

    #[test]
    fn parses_exact_decimals() {
        assert_eq!(p("0.75"), 750_000);
        assert_eq!(p("1.2426"), 1_242_600);
        assert_eq!(p("23.03"), 23_030_000);
        assert_eq!(p("6"), 6_000_000);
        assert_eq!(p("6.0"), 6_000_000);
        assert_eq!(p("0"), 0);
        assert_eq!(p("0.000001"), 1);
        assert_eq!(p("-1.5"), -1_500_000);
        assert_eq!(p(".5"), 500_000);
        assert_eq!(p("5."), 5_000_000);
    }

    #[test]
    fn parses_exponents() {
        assert_eq!(p("1.5e1"), 15_000_000);
        assert_eq!(p("1E-3"), 1_000);
        assert_eq!(p("12426e-4"), 1_242_600);
        assert_eq!(p("0e999"), 0);
    }

    #[test]
    fn rounds_sub_micro_half_away_from_zero() {
        assert_eq!(p("0.0000004"), 0);
        assert_eq!(p("0.0000005"), 1);
        assert_eq!(p("-0.0000005"), -1);
        assert_eq!(p("1.23456749"), 1_234_567);
        assert_eq!(p("1e-60"), 0);
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "-",
            ".",
            "abc",
            "1.2.3",
            "1e",
            "1e+x",
            "0x10",
            "1,5",
            "99999999999999999999",
        ] {
            assert!(MicroEuros::from_decimal_str(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_and_round_trips_json() {
        assert_eq!(MicroEuros(750_000).to_decimal_string(), "0.75");
        assert_eq!(MicroEuros(1_242_600).to_decimal_string(), "1.2426");
        assert_eq!(MicroEuros(6_000_000).to_decimal_string(), "6.0");
        assert_eq!(MicroEuros(-1).to_decimal_string(), "-0.000001");
        assert_eq!(MicroEuros(1_242_600).to_string(), "1.2426 EUR");

        let json = serde_json::to_string(&MicroEuros(1_242_600)).unwrap_or_default();
        assert_eq!(json, "1.2426");
        let back: MicroEuros = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(back, MicroEuros(1_242_600));
        let from_string: MicroEuros = serde_json::from_str("\"0.75\"").unwrap_or_default();
        assert_eq!(from_string, MicroEuros(750_000));
    }

    #[test]
    fn number_text_survives_where_f64_would_not() {
        // 0.1 + 0.2 in f64 is 0.30000000000000004; in micro-euros it is exact.
        let a = MicroEuros::from_decimal_str("0.1").unwrap_or_default();
        let b = MicroEuros::from_decimal_str("0.2").unwrap_or_default();
        assert_eq!(a.checked_add(b), Some(MicroEuros(300_000)));
    }
}
