//! Numbers as Strata's sentences print them (the analysis's, the leakage check's): short, and the
//! way users type rates.

/// Trims `1.500e-3` to `1.5e-3` and `1.000e-3` to `1e-3`.
fn trim_mantissa(formatted: String) -> String {
    match formatted.split_once('e') {
        Some((mantissa, exponent)) if mantissa.contains('.') => {
            let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
            format!("{mantissa}e{exponent}")
        }
        _ => formatted,
    }
}

fn non_finite(value: f64) -> Option<String> {
    if value.is_nan() {
        Some("NaN".into())
    } else if value.is_infinite() {
        Some(if value > 0.0 { "inf" } else { "-inf" }.into())
    } else {
        None
    }
}

/// A loss with four significant digits: `2.104`, `0.03589`, `91.55`, `4.349e17`.
pub fn loss(value: f64) -> String {
    if let Some(text) = non_finite(value) {
        return text;
    }
    let magnitude = value.abs();
    if magnitude == 0.0 {
        return "0".into();
    }
    if !(1e-3..1e4).contains(&magnitude) {
        return trim_mantissa(format!("{value:.3e}"));
    }
    let decimals = (3 - magnitude.log10().floor() as i32).clamp(0, 6) as usize;
    format!("{value:.decimals$}")
}

/// A gap, signed: `+0.1234`, `-0.005`.
pub fn gap(value: f64) -> String {
    if value.is_finite() && value >= 0.0 {
        format!("+{}", loss(value))
    } else {
        loss(value)
    }
}

/// A fraction as a percentage: `80%`, `2.5%`, `0.03%`.
pub fn percent(fraction: f64) -> String {
    if let Some(text) = non_finite(fraction) {
        return text;
    }
    let p = fraction * 100.0;
    let magnitude = p.abs();
    // Near 100% but not at it ("fell 99.6%", "100.3% of"): a whole number would say "all" or "the
    // same".
    if (99.5..100.5).contains(&magnitude) && magnitude != 100.0 {
        let shown = format!("{p:.1}%");
        return if shown.trim_start_matches('-') == "100.0%" {
            if magnitude < 100.0 {
                "over 99.9%".into()
            } else {
                "100.0%".into()
            }
        } else {
            shown
        };
    }
    if magnitude >= 9.95 {
        format!("{p:.0}%")
    } else if magnitude >= 0.995 {
        format!("{p:.1}%")
    } else if magnitude >= 0.01 || magnitude == 0.0 {
        format!("{p:.2}%")
    } else {
        "under 0.01%".into()
    }
}

/// An update ratio: `3.2e-2`, `1e-3`.
pub fn ratio(value: f64) -> String {
    if let Some(text) = non_finite(value) {
        return text;
    }
    if value == 0.0 {
        return "0".into();
    }
    trim_mantissa(format!("{value:.1e}"))
}

/// A learning rate as users type them: `1e-3`, `2.5e-4`.
pub fn rate(value: f64) -> String {
    if let Some(text) = non_finite(value) {
        return text;
    }
    if value == 0.0 {
        return "0".into();
    }
    trim_mantissa(format!("{value:.3e}"))
}

/// A suggested rate, to one significant digit: `3e-4`, `0.05`, `7`.
pub fn rounded_rate(value: f64) -> String {
    if let Some(text) = non_finite(value) {
        return text;
    }
    let rounded: f64 = format!("{value:.0e}").parse().unwrap_or(value);
    if (1e-2..1e3).contains(&rounded) {
        format!("{rounded}")
    } else {
        rate(rounded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_the_way_users_write_them() {
        assert_eq!(loss(2.10409), "2.104");
        assert_eq!(loss(0.035891), "0.03589");
        assert_eq!(loss(91.5517), "91.55");
        assert_eq!(loss(4.348966e17), "4.349e17");
        assert_eq!(loss(f64::NAN), "NaN");
        assert_eq!(gap(0.25), "+0.2500");
        assert_eq!(gap(-0.005), "-0.005000");
        assert_eq!(percent(0.8), "80%");
        assert_eq!(percent(0.025), "2.5%");
        assert_eq!(percent(0.0003), "0.03%");
        assert_eq!(percent(0.9958), "99.6%");
        assert_eq!(percent(0.99996), "over 99.9%");
        assert_eq!(percent(1.003), "100.3%");
        assert_eq!(percent(1.0), "100%");
        assert_eq!(ratio(0.032), "3.2e-2");
        assert_eq!(ratio(1e-3), "1e-3");
        assert_eq!(rate(2.5e-4), "2.5e-4");
        assert_eq!(rounded_rate(6.67), "7");
        assert_eq!(rounded_rate(0.0333), "0.03");
        assert_eq!(rounded_rate(3.3e-4), "3e-4");
    }
}
