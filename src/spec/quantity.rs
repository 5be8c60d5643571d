//! Kubernetes resource quantities ("250m", "2", "512Mi", "1.5Gi", "1e3"), parsed exactly enough to
//! check syntax and compare a request with a limit.
//!
//! Hand-written rather than kube_quantity because that crate pins its own k8s-openapi range and
//! berth only needs parse + compare; the grammar is the one in
//! k8s.io/apimachinery/pkg/api/resource/quantity.go. Values are held in nano-units (the API
//! server's smallest scale) as u128, which covers up to 2^60 (Ei) with room to spare.

use std::cmp::Ordering;

/// A parsed, non-negative quantity. `text` is kept verbatim: it is what berth writes, and the
/// API server canonicalises it (so compare [`Quantity::nanos`], never the text, against live).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Quantity {
    pub text: String,
    #[serde(skip)]
    nanos: u128,
}

impl Quantity {
    /// Parse `text`; the error says what is wrong in words a person can act on.
    pub fn parse(text: &str) -> Result<Quantity, String> {
        let nanos = parse_nanos(text)?;
        Ok(Quantity {
            text: text.to_string(),
            nanos,
        })
    }

    /// The value in nano-units (1 = 10^-9), rounded up as the API server does.
    pub fn nanos(&self) -> u128 {
        self.nanos
    }

    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.nanos.cmp(&other.nanos))
    }
}

const SYNTAX: &str = "expected a number with an optional suffix (m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei, or an exponent such as e3), like \"250m\", \"2\" or \"512Mi\"";

fn parse_nanos(text: &str) -> Result<u128, String> {
    let s = text.trim();
    if s != text || s.is_empty() {
        return Err(SYNTAX.into());
    }
    let (negative, s) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(num_end);
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if (int_part.is_empty() && frac_part.is_empty()) || frac_part.contains('.') {
        return Err(SYNTAX.into());
    }
    // scale10 and pow2 describe the suffix: value = number * 10^scale10 * 2^pow2.
    let (scale10, pow2): (i32, u32) = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        exp if exp.starts_with(['e', 'E']) && exp.len() > 1 => {
            let e: i32 = exp[1..]
                .parse()
                .map_err(|_| format!("bad exponent `{exp}`: {SYNTAX}"))?;
            if !(-30..=30).contains(&e) {
                return Err(format!("exponent `{exp}` is out of range"));
            }
            (e, 0)
        }
        other => return Err(format!("unknown suffix `{other}`: {SYNTAX}")),
    };
    if negative {
        return Err("must not be negative".into());
    }
    let digits = format!("{int_part}{frac_part}");
    let digits = digits.trim_start_matches('0');
    if digits.len() > 30 {
        return Err("has too many digits".into());
    }
    let mantissa: u128 = if digits.is_empty() {
        0
    } else {
        digits.parse().map_err(|_| SYNTAX.to_string())?
    };
    // value in nanos = mantissa * 10^(scale10 + 9 - frac_len) * 2^pow2
    let frac_len = i32::try_from(frac_part.len()).map_err(|_| SYNTAX.to_string())?;
    let exp10 = scale10 + 9 - frac_len;
    let too_large = || "is too large".to_string();
    let with_pow2 = mantissa.checked_shl(pow2).filter(|v| v >> pow2 == mantissa);
    let with_pow2 = with_pow2.ok_or_else(too_large)?;
    if exp10 >= 0 {
        let factor = 10u128
            .checked_pow(exp10.unsigned_abs())
            .ok_or_else(too_large)?;
        with_pow2.checked_mul(factor).ok_or_else(too_large)
    } else {
        // Below a nano: round up, as the API server does.
        let divisor = 10u128
            .checked_pow(exp10.unsigned_abs())
            .ok_or_else(too_large)?;
        Ok(with_pow2.div_ceil(divisor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> u128 {
        match Quantity::parse(s) {
            Ok(q) => q.nanos(),
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn parses_the_usual_forms() {
        assert_eq!(q("250m"), 250_000_000);
        assert_eq!(q("2"), 2_000_000_000);
        assert_eq!(q("0.5"), 500_000_000);
        assert_eq!(q(".5"), 500_000_000);
        assert_eq!(q("1k"), 1_000_000_000_000);
        assert_eq!(q("1e3"), q("1k"));
        assert_eq!(q("1Gi"), q("1024Mi"));
        assert_eq!(q("1.5Gi"), q("1536Mi"));
        assert_eq!(q("1Ei"), (1u128 << 60) * 1_000_000_000);
        assert_eq!(q("1n"), 1);
        assert_eq!(q("0"), 0);
    }

    #[test]
    fn rejects_nonsense() {
        for bad in [
            "", " 1", "1 ", "abc", "1.2.3", "1GB", "1gi", "-1", "1e", "1e99", ".", "Mi",
        ] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn compares_by_value() {
        let a = Quantity::parse("500m").unwrap_or_else(|e| panic!("{e}"));
        let b = Quantity::parse("2").unwrap_or_else(|e| panic!("{e}"));
        assert!(a < b);
        let c = Quantity::parse("1Gi").unwrap_or_else(|e| panic!("{e}"));
        let d = Quantity::parse("1024Mi").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.partial_cmp(&d), Some(Ordering::Equal));
    }
}
