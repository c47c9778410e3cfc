//! Text tables: columns padded to their widest cell, and `label  value` lines.

/// How a column's cells line up. Numbers are right-aligned so their digits line up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A text table: a header row and rows of cells, padded to the widest cell of each column.
#[derive(Clone, Debug)]
pub struct Table {
    columns: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(columns: &[(&str, Align)]) -> Table {
        let columns = columns
            .iter()
            .map(|(name, align)| (name.to_string(), *align))
            .collect();
        Table {
            columns,
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are blank and extra cells are dropped.
    pub fn row(&mut self, mut cells: Vec<String>) {
        cells.resize(self.columns.len(), String::new());
        self.rows.push(cells);
    }

    fn widths(&self) -> Vec<usize> {
        self.columns
            .iter()
            .enumerate()
            .map(|(i, (name, _))| {
                self.rows
                    .iter()
                    .map(|row| text_width(&row[i]))
                    .chain([text_width(name)])
                    .max()
                    .unwrap_or(0)
            })
            .collect()
    }

    fn format_row(&self, cells: &[String], widths: &[usize], separator: &str) -> String {
        let mut line = String::new();
        for (i, (cell, (_, align))) in cells.iter().zip(&self.columns).enumerate() {
            if i > 0 {
                line.push_str(separator);
            }
            let pad = " ".repeat(widths[i].saturating_sub(text_width(cell)));
            match align {
                Align::Left => {
                    line.push_str(cell);
                    line.push_str(&pad);
                }
                Align::Right => {
                    line.push_str(&pad);
                    line.push_str(cell);
                }
            }
        }
        line.trim_end().to_string()
    }

    /// Columns separated by two spaces, like `docker ps`: easy to read and to `awk`.
    pub fn render_plain(&self) -> String {
        let widths = self.widths();
        let header: Vec<String> = self.columns.iter().map(|(name, _)| name.clone()).collect();
        std::iter::once(&header)
            .chain(&self.rows)
            .map(|row| self.format_row(row, &widths, "  "))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Columns separated by ` | ` with a rule under the header, like the seed's epoch table.
    pub fn render_ruled(&self) -> String {
        let widths = self.widths();
        let header: Vec<String> = self.columns.iter().map(|(name, _)| name.clone()).collect();
        let rule = widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-+-");
        let mut lines = vec![self.format_row(&header, &widths, " | "), rule];
        lines.extend(
            self.rows
                .iter()
                .map(|row| self.format_row(row, &widths, " | ")),
        );
        lines.join("\n")
    }
}

/// Display width of a cell. Counting chars is right for everything the daemon sends (ASCII ids,
/// specs, numbers) and close enough for user-chosen names.
fn text_width(text: &str) -> usize {
    text.chars().count()
}

/// `label value` lines with the values lined up.
pub fn key_values(pairs: &[(&str, String)]) -> String {
    let width = pairs
        .iter()
        .map(|(key, _)| text_width(key))
        .max()
        .unwrap_or(0);
    pairs
        .iter()
        .map(|(key, value)| format!("{key:<width$}  {value}").trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_table_pads_columns_and_trims_line_ends() {
        let mut table = Table::new(&[
            ("A", Align::Left),
            ("NUM", Align::Right),
            ("Z", Align::Left),
        ]);
        table.row(vec!["long-cell".into(), "1".into(), "x".into()]);
        table.row(vec!["s".into(), "12345".into()]);
        assert_eq!(
            table.render_plain(),
            "A            NUM  Z\nlong-cell      1  x\ns          12345"
        );
    }
}
