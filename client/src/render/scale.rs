//! The y axis of both loss charts, the terminal one and the plot files: linear, or log10 when
//! the losses span more than two decades, so that a run that blew up does not flatten every
//! other curve.

/// A y range wider than this ratio (max / min, both positive) is drawn on a log scale.
const LOG_SCALE_RATIO: f64 = 100.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct YScale {
    pub log: bool,
}

impl YScale {
    /// The scale for values from `min` to `max`.
    pub fn for_range(min: f64, max: f64) -> YScale {
        YScale {
            log: min > 0.0 && max / min > LOG_SCALE_RATIO,
        }
    }

    /// Where the value `y` lies on the axis.
    pub fn axis_at(self, y: f64) -> f64 {
        if self.log {
            y.log10()
        } else {
            y
        }
    }

    /// The value at axis position `v`.
    pub fn value_at(self, v: f64) -> f64 {
        if self.log {
            10f64.powf(v)
        } else {
            v
        }
    }

    /// Whether `y` can be drawn: finite, and positive on a log scale.
    pub fn shows(self, y: f64) -> bool {
        y.is_finite() && (!self.log || y > 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_than_two_decades_of_positive_values_are_drawn_on_a_log_scale() {
        assert!(!YScale::for_range(0.5, 50.0).log);
        assert!(YScale::for_range(0.5, 51.0).log);
        assert!(!YScale::for_range(0.0, 1e9).log, "zero has no logarithm");
        let log = YScale::for_range(1.0, 1e6);
        assert_eq!(log.axis_at(1000.0), 3.0);
        assert_eq!(log.value_at(2.0), 100.0);
        assert!(!log.shows(0.0) && log.shows(1e-9) && !log.shows(f64::NAN));
    }
}
