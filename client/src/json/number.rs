//! Floats in JSON: numbers when finite, `null` otherwise (JSON has no NaN).

use serde_json::Value;

/// A float as JSON: a number when finite, `null` otherwise.
pub fn number(value: f64) -> Value {
    serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number)
}

/// An optional float: `null` when unset or non-finite.
pub fn optional_number(value: Option<f64>) -> Value {
    value.map_or(Value::Null, number)
}
