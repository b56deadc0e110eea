//! Printing command results as aligned tables or JSON.

use serde_json::Value;

/// Output format chosen with `--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// One JSON array of objects for scripts.
    Json,
}

/// Rows with named columns.
pub struct Rows {
    columns: Vec<&'static str>,
    rows: Vec<Vec<Value>>,
}

impl Rows {
    /// A table with these columns.
    pub fn new(columns: &[&'static str]) -> Self {
        Rows {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (one value per column).
    pub fn push(&mut self, row: Vec<Value>) {
        self.rows.push(row);
    }

    /// Renders in `format`.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Json => {
                let arr: Vec<Value> = self
                    .rows
                    .iter()
                    .map(|r| {
                        Value::Object(
                            self.columns
                                .iter()
                                .map(|c| c.to_string())
                                .zip(r.iter().cloned())
                                .collect(),
                        )
                    })
                    .collect();
                serde_json::to_string_pretty(&Value::Array(arr)).unwrap_or_default()
            }
            Format::Table => {
                let cell = |v: &Value| match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                let cells: Vec<Vec<String>> = self
                    .rows
                    .iter()
                    .map(|r| r.iter().map(cell).collect())
                    .collect();
                let mut widths: Vec<usize> = self.columns.iter().map(|c| c.len()).collect();
                for r in &cells {
                    for (i, c) in r.iter().enumerate() {
                        widths[i] = widths[i].max(c.chars().count());
                    }
                }
                let line = |vals: Vec<String>| {
                    vals.iter()
                        .enumerate()
                        .map(|(i, v)| format!("{:<w$}", v, w = widths[i]))
                        .collect::<Vec<_>>()
                        .join("  ")
                        .trim_end()
                        .to_string()
                };
                let mut out = vec![line(
                    self.columns.iter().map(|c| c.to_uppercase()).collect(),
                )];
                out.extend(cells.into_iter().map(line));
                out.join("\n")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_table_and_json() {
        let mut r = Rows::new(&["id", "score"]);
        r.push(vec![json!("rawx-0"), json!(87)]);
        r.push(vec![json!("rawx-10"), json!(5)]);
        assert_eq!(
            r.render(Format::Table),
            "ID       SCORE\nrawx-0   87\nrawx-10  5"
        );
        let v: Value = serde_json::from_str(&r.render(Format::Json)).unwrap();
        assert_eq!(v[1]["id"], "rawx-10");
        assert_eq!(v[0]["score"], 87);
    }
}
