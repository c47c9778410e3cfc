//! How single values are printed, one function per kind, for every table, chart and export:
//! losses and other metrics, learning rates, plain numbers, update ratios, shapes, times,
//! durations, a status with its reason, a run's short label, its epochs done, `-` for none.

use strata_client::status_label;
use strata_proto::Run;

/// A loss or similar metric: 6 decimals, or scientific notation when that would hide the value
/// (tiny or huge losses); `NaN`/`inf` spelled out, since a diverged run has them.
pub fn metric(value: f64) -> String {
    format_metric(value, false)
}

/// Like [`metric`] with an explicit sign, for gaps (`+0.022222`, `-0.001000`).
pub fn signed_metric(value: f64) -> String {
    format_metric(value, true)
}

fn format_metric(value: f64, signed: bool) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 {
            if signed {
                "+inf"
            } else {
                "inf"
            }
        } else {
            "-inf"
        }
        .into();
    }
    let magnitude = value.abs();
    let scientific = magnitude != 0.0 && !(1e-4..1e6).contains(&magnitude);
    match (scientific, signed) {
        (true, true) => format!("{value:+.4e}"),
        (true, false) => format!("{value:.4e}"),
        (false, true) => format!("{value:+.6}"),
        (false, false) => format!("{value:.6}"),
    }
}

/// A validation metric (accuracy or R²) to four decimals, `NaN` as such.
pub fn validation_metric(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.4}")
    } else {
        metric(value)
    }
}

/// A learning rate the way users type them: `1e-3`, `3.162e-5`, `0`.
pub fn rate(value: f64) -> String {
    if value == 0.0 {
        return "0".into();
    }
    if !value.is_finite() {
        return metric(value);
    }
    let formatted = format!("{value:.3e}");
    match formatted.split_once('e') {
        Some((mantissa, exponent)) => {
            let mantissa = if mantissa.contains('.') {
                mantissa.trim_end_matches('0').trim_end_matches('.')
            } else {
                mantissa
            };
            format!("{mantissa}e{exponent}")
        }
        None => formatted,
    }
}

/// A number in Rust's shortest round-trip form (`0.2`, `0.65`), `NaN`, `inf` and `-inf` spelled
/// out: config values in `strata show`, and every float of the CSV export (pandas reads all of
/// them back exactly).
pub fn plain_number(value: f64) -> String {
    if value.is_finite() {
        format!("{value}")
    } else {
        metric(value)
    }
}

/// A tensor shape: `[64, 2]`.
pub fn shape(dims: &[i64]) -> String {
    let dims: Vec<String> = dims.iter().map(i64::to_string).collect();
    format!("[{}]", dims.join(", "))
}

/// Unix milliseconds as UTC `YYYY-MM-DD HH:MM:SS`; `-` for 0 (not yet).
pub fn utc_time(unix_ms: i64) -> String {
    if unix_ms == 0 {
        return "-".into();
    }
    let secs = unix_ms.div_euclid(1000);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let second_of_day = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day); Howard Hinnant's
/// `civil_from_days`, which avoids a date-time dependency for one conversion.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A duration in milliseconds, short: `850ms`, `12.3s`, `4m05s`, `1h02m`.
pub fn duration(ms: f64) -> String {
    if !ms.is_finite() || ms < 0.0 {
        return "-".into();
    }
    if ms < 1000.0 {
        return format!("{ms:.0}ms");
    }
    let secs = ms / 1000.0;
    if secs < 60.0 {
        return format!("{secs:.1}s");
    }
    let whole = secs.round() as u64;
    if whole < 3600 {
        format!("{}m{:02}s", whole / 60, whole % 60)
    } else {
        format!("{}h{:02}m", whole / 3600, whole % 3600 / 60)
    }
}

/// `status` or `status: reason`.
pub fn status_with_reason(status: i32, reason: &str) -> String {
    if reason.is_empty() {
        status_label(status).into_owned()
    } else {
        format!("{}: {reason}", status_label(status))
    }
}

/// A per-step update ratio (a group's update norm over its weight norm): `1.2e-3`.
pub fn update_ratio(value: f64) -> String {
    format!("{value:.1e}")
}

/// How a run is named where room is short (compare's reasons, chart and plot legends, plot
/// titles): its name, or the first 8 characters of its id.
pub fn run_label(run: &Run) -> String {
    if run.name.is_empty() {
        run.id.chars().take(8).collect()
    } else {
        run.name.clone()
    }
}

/// `3/10`: the epochs a run has done of its configured total (`?` when its config has none).
pub fn epochs_done_of_total(run: &Run) -> String {
    if run.external {
        // Its client decides how many epochs it logs.
        return format!("{} logged", run.epochs_done);
    }
    let total = run
        .config
        .as_ref()
        .and_then(|c| c.epochs)
        .map_or("?".to_string(), |e| e.to_string());
    format!("{}/{total}", run.epochs_done)
}

/// `text`, or `-` when it is empty, so that a blank cell still reads as "none".
pub fn or_dash(text: &str) -> String {
    if text.is_empty() {
        "-".to_string()
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_use_six_decimals_or_scientific() {
        assert_eq!(metric(0.5123449), "0.512345");
        assert_eq!(metric(0.0), "0.000000");
        assert_eq!(metric(1.5e-7), "1.5000e-7");
        assert_eq!(metric(2.5e7), "2.5000e7");
        assert_eq!(metric(f64::NAN), "NaN");
        assert_eq!(metric(f64::INFINITY), "inf");
        assert_eq!(signed_metric(0.022222), "+0.022222");
        assert_eq!(signed_metric(-0.001), "-0.001000");
        assert_eq!(signed_metric(f64::INFINITY), "+inf");
    }

    #[test]
    fn rates_print_like_users_type_them() {
        assert_eq!(rate(1e-3), "1e-3");
        assert_eq!(rate(2.5e-4), "2.5e-4");
        assert_eq!(rate(3.1622776601683795e-5), "3.162e-5");
        assert_eq!(rate(0.0), "0");
        assert_eq!(rate(1.0), "1e0");
    }

    #[test]
    fn utc_time_formats_unix_ms() {
        assert_eq!(utc_time(0), "-");
        assert_eq!(utc_time(1), "1970-01-01 00:00:00");
        assert_eq!(utc_time(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(utc_time(1_700_000_000_123), "2023-11-14 22:13:20");
        assert_eq!(utc_time(-1000), "1969-12-31 23:59:59");
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(duration(850.0), "850ms");
        assert_eq!(duration(12_345.0), "12.3s");
        assert_eq!(duration(245_000.0), "4m05s");
        assert_eq!(duration(3_720_000.0), "1h02m");
    }
}
