//! Printing command results as aligned tables, JSON or YAML.

use serde_json::Value;

/// Output format chosen with `--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// One JSON array of objects for scripts.
    Json,
    /// The same document as JSON, in YAML.
    Yaml,
}

/// A whole document (what `--format json` prints) in a machine format: pretty JSON,
/// or YAML. Table callers format their own text.
pub fn render_document(doc: &Value, format: Format) -> String {
    match format {
        Format::Yaml => serde_yaml_ng::to_string(doc)
            .map(|s| s.trim_end().to_string())
            .unwrap_or_default(),
        Format::Json | Format::Table => serde_json::to_string_pretty(doc).unwrap_or_default(),
    }
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
            Format::Json | Format::Yaml => {
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
                render_document(&Value::Array(arr), format)
            }
            Format::Table => {
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

/// One record as named fields (`cluster show`): a JSON object, or one aligned
/// `field  value` line per field. A nested object (such as stats) stays nested in
/// JSON and is flattened to `field.key` lines in a table.
pub struct Fields {
    fields: Vec<(&'static str, Value)>,
}

impl Fields {
    /// A record with these fields, in this order.
    pub fn new(fields: Vec<(&'static str, Value)>) -> Self {
        Fields { fields }
    }

    /// Renders in `format`.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Json | Format::Yaml => {
                let obj: serde_json::Map<String, Value> = self
                    .fields
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect();
                render_document(&Value::Object(obj), format)
            }
            Format::Table => {
                let mut lines: Vec<(String, String)> = Vec::new();
                for (k, v) in &self.fields {
                    match v {
                        Value::Object(inner) => {
                            for (sub, sv) in inner {
                                lines.push((format!("{k}.{sub}"), cell(sv)));
                            }
                        }
                        other => lines.push((k.to_string(), cell(other))),
                    }
                }
                let width = lines
                    .iter()
                    .map(|(k, _)| k.chars().count())
                    .max()
                    .unwrap_or(0);
                lines
                    .iter()
                    .map(|(k, v)| format!("{k:<width$}  {v}").trim_end().to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        }
    }
}

/// A value as shown in a table cell: strings bare, null empty, an object as
/// `key=value,...` (numbers rounded to integers) so that it stays one word.
fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| match v.as_f64() {
                Some(n) => format!("{k}={}", n.round() as i64),
                None => format!("{k}={}", cell(v)),
            })
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
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
        assert_eq!(
            r.render(Format::Yaml),
            "- id: rawx-0\n  score: 87\n- id: rawx-10\n  score: 5"
        );
        let y: Value = serde_yaml_ng::from_str(&r.render(Format::Yaml)).unwrap();
        assert_eq!(y, v);
    }

    #[test]
    fn renders_fields_with_nested_stats() {
        let f = Fields::new(vec![
            ("id", json!("rawx-0")),
            ("score", json!(0)),
            ("stats", json!({"cpu": 99.5, "space": 40.0})),
        ]);
        assert_eq!(
            f.render(Format::Table),
            "id           rawx-0\nscore        0\nstats.cpu    99.5\nstats.space  40.0"
        );
        let v: Value = serde_json::from_str(&f.render(Format::Json)).unwrap();
        assert_eq!(v["stats"]["cpu"], 99.5);
        assert_eq!(v["id"], "rawx-0");
    }
}
