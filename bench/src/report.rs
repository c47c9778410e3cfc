//! The benchmark's result: one row per figure (Strata, the alternative, their ratio, the goal and
//! whether it is met), printed as a Markdown table and written as JSON.

use serde_json::{json, Value};

/// What a figure is held to.
#[derive(Clone, Copy, Debug)]
pub enum Goal {
    /// Strata's figure over the alternative's at most this (times: lower is better).
    RatioAtMost(f64),
    /// Strata's figure below this, in the row's unit.
    Below(f64),
    /// Strata's figure at least this, in the row's unit.
    AtLeast(f64),
    /// Strata's figure exactly zero (e.g. CPU time while idle).
    Zero,
    /// No goal: the figure is reported for what it is.
    None,
}

/// Whether a row's goal is met.
#[derive(Clone, Debug, PartialEq)]
pub enum Met {
    Yes,
    No,
    NoGoal,
    /// The figure could not be measured here, and why.
    NotMeasured(String),
}

impl Met {
    fn label(&self) -> String {
        match self {
            Met::Yes => "yes".into(),
            Met::No => "**no**".into(),
            Met::NoGoal => "—".into(),
            Met::NotMeasured(why) => format!("not measured: {why}"),
        }
    }

    fn key(&self) -> &'static str {
        match self {
            Met::Yes => "yes",
            Met::No => "no",
            Met::NoGoal => "no goal",
            Met::NotMeasured(_) => "not measured",
        }
    }
}

/// One figure.
#[derive(Clone, Debug)]
pub struct Row {
    pub figure: String,
    /// Strata's figure as printed (with its unit).
    pub strata: String,
    /// The alternative's figure as printed, or "—".
    pub alternative: String,
    /// Strata's figure over the alternative's.
    pub ratio: Option<f64>,
    /// How the goal reads in the table, in the row's unit.
    pub goal_text: String,
    pub met: Met,
    /// The numbers behind the row, for the JSON.
    pub values: Value,
}

impl Row {
    /// A comparison with an alternative: `ratio` = strata / alternative, judged by `goal`.
    pub fn compared(
        figure: impl Into<String>,
        strata: impl Into<String>,
        alternative: impl Into<String>,
        ratio: f64,
        goal: Goal,
        values: Value,
    ) -> Row {
        let (goal_text, met) = judge(goal, ratio);
        Row {
            figure: figure.into(),
            strata: strata.into(),
            alternative: alternative.into(),
            ratio: Some(ratio),
            goal_text,
            met,
            values,
        }
    }

    /// A figure of Strata's alone, `value` judged by `goal` (in the unit `goal_unit`).
    pub fn alone(
        figure: impl Into<String>,
        strata: impl Into<String>,
        value: f64,
        goal: Goal,
        goal_unit: &str,
        values: Value,
    ) -> Row {
        let (goal_text, met) = judge(goal, value);
        Row {
            figure: figure.into(),
            strata: strata.into(),
            alternative: "—".into(),
            ratio: None,
            goal_text: if goal_unit.is_empty() || matches!(goal, Goal::None) {
                goal_text
            } else {
                format!("{goal_text} {goal_unit}")
            },
            met,
            values,
        }
    }

    /// A figure that could not be measured on this machine.
    pub fn not_measured(figure: impl Into<String>, goal_text: &str, why: impl Into<String>) -> Row {
        Row {
            figure: figure.into(),
            strata: "—".into(),
            alternative: "—".into(),
            ratio: None,
            goal_text: goal_text.into(),
            met: Met::NotMeasured(why.into()),
            values: Value::Null,
        }
    }
}

fn judge(goal: Goal, value: f64) -> (String, Met) {
    let met = |ok: bool| if ok { Met::Yes } else { Met::No };
    match goal {
        Goal::RatioAtMost(limit) => (format!("≤ {limit:.2}"), met(value <= limit)),
        Goal::Below(limit) => (format!("< {}", number(limit)), met(value < limit)),
        Goal::AtLeast(limit) => (format!("≥ {}", number(limit)), met(value >= limit)),
        Goal::Zero => ("0".into(), met(value == 0.0)),
        Goal::None => ("—".into(), Met::NoGoal),
    }
}

/// A number as people read it: thousands separated, few digits.
pub fn number(value: f64) -> String {
    if value.abs() >= 1_000.0 {
        let digits = format!("{:.0}", value.abs());
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(c);
        }
        if value < 0.0 {
            format!("-{grouped}")
        } else {
            grouped
        }
    } else if value.abs() >= 100.0 || value == value.trunc() {
        format!("{value:.0}")
    } else if value.abs() >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

/// Every row, grouped in sections, with what the reader needs to know about the figures.
pub struct Report {
    pub sections: Vec<(String, Vec<Row>)>,
    pub notes: Vec<String>,
}

impl Report {
    /// The table, in Markdown (readable as it is in a terminal, and pasted into the README).
    pub fn markdown(&self) -> String {
        let header = ["figure", "Strata", "alternative", "ratio", "goal", "met"].map(String::from);
        let mut lines: Vec<[String; 6]> = Vec::new();
        for (section, rows) in &self.sections {
            lines.push([
                format!("**{section}**"),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ]);
            for row in rows {
                lines.push([
                    row.figure.clone(),
                    row.strata.clone(),
                    row.alternative.clone(),
                    row.ratio.map_or("—".into(), |r| format!("{r:.2}")),
                    row.goal_text.clone(),
                    row.met.label(),
                ]);
            }
        }
        let width = |i: usize| {
            std::iter::once(&header)
                .chain(&lines)
                .map(|line| line[i].chars().count())
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..6).map(width).collect();
        let render = |line: &[String; 6]| {
            let cells: Vec<String> = line
                .iter()
                .zip(&widths)
                .map(|(cell, &w)| format!("{cell}{}", " ".repeat(w - cell.chars().count())))
                .collect();
            format!("| {} |", cells.join(" | "))
        };
        let rule = format!(
            "|{}|",
            widths
                .iter()
                .map(|&w| "-".repeat(w + 2))
                .collect::<Vec<_>>()
                .join("|")
        );
        let mut text = render(&header) + "\n" + &rule + "\n";
        for line in &lines {
            text += &render(line);
            text.push('\n');
        }
        text
    }

    /// Goals met and missed, and figures not measured.
    pub fn tally(&self) -> (usize, usize, usize) {
        let rows = || self.sections.iter().flat_map(|(_, rows)| rows);
        let count = |m: &dyn Fn(&Met) -> bool| rows().filter(|r| m(&r.met)).count();
        (
            count(&|m| *m == Met::Yes),
            count(&|m| *m == Met::No),
            count(&|m| matches!(m, Met::NotMeasured(_))),
        )
    }

    pub fn json(&self, header: Value) -> Value {
        let rows: Vec<Value> = self
            .sections
            .iter()
            .flat_map(|(section, rows)| {
                rows.iter().map(move |row| {
                    json!({
                        "section": section,
                        "figure": row.figure,
                        "strata": row.strata,
                        "alternative": row.alternative,
                        "ratio": row.ratio,
                        "goal": row.goal_text,
                        "met": row.met.key(),
                        "why_not_measured": match &row.met {
                            Met::NotMeasured(why) => Value::from(why.as_str()),
                            _ => Value::Null,
                        },
                        "values": row.values,
                    })
                })
            })
            .collect();
        let mut document = header;
        document["rows"] = Value::from(rows);
        document["notes"] = Value::from(self.notes.clone());
        document
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(number(1_234_567.0), "1,234,567");
        assert_eq!(number(12_345.0), "12,345");
        assert_eq!(number(1_437.0), "1,437");
        assert_eq!(number(512.4), "512");
        assert_eq!(number(5.0), "5");
        assert_eq!(number(4.567), "4.57");
        assert_eq!(number(0.1234), "0.123");
    }

    #[test]
    fn goals_are_judged_on_the_right_side() {
        let row = |goal, value| Row::alone("f", "s", value, goal, "ms", Value::Null).met;
        assert_eq!(row(Goal::Below(5.0), 4.9), Met::Yes);
        assert_eq!(row(Goal::Below(5.0), 5.0), Met::No);
        assert_eq!(row(Goal::AtLeast(3.0), 3.0), Met::Yes);
        assert_eq!(row(Goal::Zero, 0.01), Met::No);
        assert_eq!(row(Goal::None, 1.0), Met::NoGoal);
        let compared = Row::compared("f", "a", "b", 0.81, Goal::RatioAtMost(0.8), Value::Null);
        assert_eq!(compared.met, Met::No);
    }
}
