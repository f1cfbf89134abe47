//! Properties of quantity parsing: any text parses or is refused without a panic, and a
//! number with a suffix means that number times the suffix, rounded up as the kubelet
//! rounds.

use proptest::prelude::*;

use super::*;

/// Suffixes and what one unit of each is in nano-units.
const SUFFIXES: [(&str, i128); 15] = [
    ("", NANO),
    ("n", 1),
    ("u", 1_000),
    ("m", 1_000_000),
    ("k", NANO * 1_000),
    ("M", NANO * 1_000_000),
    ("G", NANO * 1_000_000_000),
    ("T", NANO * 1_000_000_000_000),
    ("Ki", NANO << 10),
    ("Mi", NANO << 20),
    ("Gi", NANO << 30),
    ("Ti", NANO << 40),
    ("e3", NANO * 1_000),
    ("E", NANO * 1_000_000_000_000_000_000),
    ("Ei", NANO << 60),
];

/// Digit strings of lengths near the parser's limits as often as short ones.
fn digits() -> impl Strategy<Value = String> {
    prop_oneof![0usize..=3, 27usize..=31]
        .prop_flat_map(|len| proptest::string::string_regex(&format!("[0-9]{{{len}}}")).expect("a regex"))
}

/// Text shaped like a quantity: sign, digits, a fraction, a suffix or exponent.
fn quantity_text() -> impl Strategy<Value = String> {
    let sign = prop_oneof![Just(""), Just("-"), Just("+"), Just(" ")];
    let suffix = prop_oneof![
        (0..SUFFIXES.len()).prop_map(|i| SUFFIXES[i].0.to_string()),
        (-12i32..=21).prop_map(|e| format!("e{e}")),
        prop_oneof![Just(-9i32), Just(18)].prop_map(|e| format!("E{e}")),
        "[a-zA-Z.]{0,3}",
    ];
    (sign, digits(), proptest::option::of(digits()), suffix).prop_map(|(sign, int, frac, suffix)| match frac {
        Some(frac) => format!("{sign}{int}.{frac}{suffix}"),
        None => format!("{sign}{int}{suffix}"),
    })
}

fn div_ceil_ref(a: i128, b: i128) -> i128 {
    a.div_euclid(b) + i128::from(a.rem_euclid(b) != 0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn any_text_parses_or_is_refused(text in quantity_text()) {
        if let Ok(amount) = Amount::parse(&text) {
            // What the kubelet reads off an amount never panics either.
            let _ = (amount.milli(), amount.units(), amount.div_ceil_by(Amount::from_units(3)));
        }
    }

    #[test]
    fn arbitrary_strings_never_panic(text in "\\PC{0,40}") {
        let _ = Amount::parse(&text);
    }

    #[test]
    fn a_number_with_a_suffix_is_that_many_units(n in 0i64..1_000_000_000, suffix in 0..SUFFIXES.len(), negative: bool) {
        let (name, unit) = SUFFIXES[suffix];
        let sign = if negative { "-" } else { "" };
        let amount = Amount::parse(&format!("{sign}{n}{name}")).expect("a valid quantity");
        let nanos = i128::from(n) * unit * if negative { -1 } else { 1 };
        prop_assert_eq!(amount, Amount(nanos));
        let clamp_ref = |v: i128| v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
        prop_assert_eq!(amount.units(), clamp_ref(div_ceil_ref(nanos, NANO)));
        prop_assert_eq!(amount.milli(), clamp_ref(div_ceil_ref(nanos, NANO / 1_000)));
    }

    #[test]
    fn a_fraction_is_exact_to_the_nano_unit(int in 0u32..1_000_000, frac in "[0-9]{1,9}") {
        let amount = Amount::parse(&format!("{int}.{frac}")).expect("a valid quantity");
        let scale = 10i128.pow(9 - frac.len() as u32);
        let expected = i128::from(int) * NANO + frac.parse::<i128>().expect("digits") * scale;
        prop_assert_eq!(amount, Amount(expected));
    }
}
