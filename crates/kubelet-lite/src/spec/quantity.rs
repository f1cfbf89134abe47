//! Kubernetes resource quantities (`100m`, `1.5Gi`, `1e3`) as exact numbers.
//!
//! A quantity is held in nano-units (`i128`), which is exact for every suffix from `n` to
//! `Ei` and leaves room for arithmetic; the kubelet's rounding rules (milli-CPU rounded up,
//! bytes rounded up) are methods here.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::SpecError;

const NANO: i128 = 1_000_000_000;

/// A parsed quantity, in nano-units of its resource (nano-cores, nano-bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Amount(i128);

impl Amount {
    /// Parses a quantity string: a signed decimal number with an optional binary
    /// (`Ki`..`Ei`), decimal (`n`, `u`, `m`, `k`, `M`..`E`) or exponent (`e3`) suffix.
    pub fn parse(text: &str) -> Result<Self, SpecError> {
        let bad = || SpecError::InvalidQuantity(text.to_owned());
        let trimmed = text.trim();
        let (negative, rest) = match trimmed.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, trimmed.strip_prefix('+').unwrap_or(trimmed)),
        };
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(number_end);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(bad());
        }
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        // Numerator/denominator of the multiplier, in nano-units.
        let (mul, div): (i128, i128) = match suffix {
            "" => (NANO, 1),
            "n" => (1, 1),
            "u" => (1_000, 1),
            "m" => (1_000_000, 1),
            "k" => (NANO * 1_000, 1),
            "M" => (NANO * 1_000_000, 1),
            "G" => (NANO * 1_000_000_000, 1),
            "T" => (NANO * 1_000_000_000_000, 1),
            "P" => (NANO * 1_000_000_000_000_000, 1),
            "E" => (NANO * 1_000_000_000_000_000_000, 1),
            "Ki" => (NANO << 10, 1),
            "Mi" => (NANO << 20, 1),
            "Gi" => (NANO << 30, 1),
            "Ti" => (NANO << 40, 1),
            "Pi" => (NANO << 50, 1),
            "Ei" => (NANO << 60, 1),
            exp if exp.starts_with(['e', 'E']) => {
                let power: i32 = exp[1..].parse().map_err(|_| bad())?;
                if !(-9..=18).contains(&power) {
                    return Err(bad());
                }
                if power >= 0 {
                    (NANO * 10_i128.pow(power.unsigned_abs()), 1)
                } else {
                    (NANO, 10_i128.pow(power.unsigned_abs()))
                }
            }
            _ => return Err(bad()),
        };
        if int_part.len() + frac_part.len() > 30 {
            return Err(bad());
        }
        let digits: i128 = format!("{int_part}{frac_part}").parse::<i128>().map_err(|_| bad())?;
        let scale = 10_i128.pow(u32::try_from(frac_part.len()).map_err(|_| bad())?);
        // Divided in two steps (the same floor for non-negative numbers): `scale * div`
        // alone can pass i128's range (30 fraction digits and `e-9`).
        let value = digits
            .checked_mul(mul)
            .ok_or_else(bad)?
            .checked_div(scale)
            .and_then(|v| v.checked_div(div))
            .ok_or_else(bad)?;
        Ok(Amount(if negative { -value } else { value }))
    }

    /// Parses a k8s-openapi [`Quantity`].
    pub fn of(quantity: &Quantity) -> Result<Self, SpecError> {
        Self::parse(&quantity.0)
    }

    /// An amount of whole units.
    pub fn from_units(units: i64) -> Self {
        Amount(i128::from(units) * NANO)
    }

    /// Zero.
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// The amount in thousandths, rounded up (milli-CPU, as `MilliValue()`).
    pub fn milli(self) -> i64 {
        clamp(div_ceil(self.0, NANO / 1_000))
    }

    /// The amount in whole units, rounded up (bytes, as `Value()`).
    pub fn units(self) -> i64 {
        clamp(div_ceil(self.0, NANO))
    }

    /// `self / divisor`, rounded up, as the downward API reports resources; a zero divisor
    /// counts as 1.
    pub fn div_ceil_by(self, divisor: Amount) -> i64 {
        if divisor.0 == 0 {
            return self.units();
        }
        clamp(div_ceil(self.0, divisor.0))
    }
}

impl std::ops::Add for Amount {
    type Output = Amount;
    fn add(self, other: Amount) -> Amount {
        Amount(self.0.saturating_add(other.0))
    }
}

fn div_ceil(a: i128, b: i128) -> i128 {
    let q = a / b;
    if a % b != 0 && ((a > 0) == (b > 0)) { q + 1 } else { q }
}

fn clamp(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod properties;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_suffix() {
        let cases = [
            ("plain integer", "2", 2_000, 2),
            ("milli", "100m", 100, 1),
            ("fraction", "0.5", 500, 1),
            ("fraction rounds up", "0.0001", 1, 1),
            ("kilo", "1k", 1_000_000, 1_000),
            ("mega", "64M", 64_000_000_000, 64_000_000),
            ("kibi", "1Ki", 1_024_000, 1_024),
            ("mebi", "128Mi", 134_217_728_000, 134_217_728),
            ("gibi fraction", "1.5Gi", 1_610_612_736_000, 1_610_612_736),
            ("exponent", "1e3", 1_000_000, 1_000),
            ("negative exponent", "5e-1", 500, 1),
            ("nano", "1500000n", 2, 1),
            ("micro", "250u", 1, 1),
            ("exa", "1E", 1_000_000_000_000_000_000_000, 1_000_000_000_000_000_000),
        ];
        for (desc, text, milli, units) in cases {
            let amount = Amount::parse(text).unwrap_or_else(|e| panic!("{desc}: {e}"));
            assert_eq!(amount.milli(), milli.min(i64::MAX as i128) as i64, "{desc}: milli");
            assert_eq!(amount.units(), units, "{desc}: units");
        }
    }

    #[test]
    fn rejects_garbage() {
        for (desc, text) in [
            ("empty", ""),
            ("unknown suffix", "1Q"),
            ("two dots", "1.2.3"),
            ("letters only", "Mi"),
            ("bad exponent", "1e"),
        ] {
            assert!(Amount::parse(text).is_err(), "{desc}");
        }
    }

    #[test]
    fn the_smallest_fractions_parse_without_overflow() {
        // 30 fraction digits with `e-9` once overflowed the divisor (found by the
        // quantity properties).
        let tiny = Amount::parse(".000000000000000000000000000001E-9").unwrap();
        assert_eq!(tiny, Amount(0));
        assert_eq!(Amount::parse("-.000000000000000000000000000009e-9").unwrap(), Amount(0));
        assert_eq!(Amount::parse("0.00000000000000000000000000001e-9").unwrap().milli(), 0);
    }

    #[test]
    fn divides_rounding_up() {
        let mem = Amount::parse("100Mi").unwrap();
        assert_eq!(mem.div_ceil_by(Amount::parse("1Mi").unwrap()), 100);
        assert_eq!(mem.div_ceil_by(Amount::parse("1G").unwrap()), 1);
        let cpu = Amount::parse("250m").unwrap();
        assert_eq!(cpu.div_ceil_by(Amount::parse("1m").unwrap()), 250);
        assert_eq!(cpu.div_ceil_by(Amount::parse("1").unwrap()), 1);
        assert_eq!(cpu.div_ceil_by(Amount::default()), 1);
    }
}
