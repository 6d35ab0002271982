//! Renders diagnostics: rustc-style text through codespan-reporting, or one JSON
//! object per line for tools.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Arc;

use codespan_reporting::diagnostic::{
    Diagnostic as CsDiagnostic, Label as CsLabel, Severity as CsSeverity,
};
use codespan_reporting::files::SimpleFiles;
use codespan_reporting::term::{self, termcolor};
use dnnc_diagnostics::{Diagnostic, Label, Severity};
use serde_json::json;

use crate::MessageFormat;

pub struct Renderer {
    format: MessageFormat,
    files: SimpleFiles<String, String>,
    ids: HashMap<Arc<str>, usize>,
}

impl Renderer {
    pub fn new(format: MessageFormat) -> Renderer {
        Renderer {
            format,
            files: SimpleFiles::new(),
            ids: HashMap::new(),
        }
    }

    pub fn add_source(&mut self, name: &Arc<str>, text: &str) {
        if !self.ids.contains_key(name) {
            let id = self.files.add(name.to_string(), printable(text));
            self.ids.insert(name.clone(), id);
        }
    }

    pub fn emit_all(&mut self, diags: &[Diagnostic]) {
        match self.format {
            MessageFormat::Human => {
                let color =
                    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
                let choice = if color {
                    termcolor::ColorChoice::Auto
                } else {
                    termcolor::ColorChoice::Never
                };
                let mut out = termcolor::StandardStream::stderr(choice);
                self.human(&mut out, diags);
                let _ = out.flush();
            }
            MessageFormat::Json => {
                let mut out = std::io::stdout().lock();
                for d in diags {
                    let _ = writeln!(out, "{}", self.json(d));
                }
            }
        }
    }

    /// Every diagnostic rendered as text, then a summary line.
    pub fn human(&self, out: &mut dyn termcolor::WriteColor, diags: &[Diagnostic]) {
        let config = term::Config::default();
        for d in diags {
            let cs = self.to_codespan(d);
            let _ = term::emit_to_write_style(out, &config, &self.files, &cs);
        }
        let errors = diags.iter().filter(|d| d.is_error()).count();
        let warnings = diags.len() - errors;
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        let summary = if errors > 0 {
            let w = if warnings > 0 {
                format!(" and {warnings} warning{}", plural(warnings))
            } else {
                String::new()
            };
            format!(
                "error: aborting due to {errors} error{}{w}\n",
                plural(errors)
            )
        } else if warnings > 0 {
            format!("warning: {warnings} warning{} emitted\n", plural(warnings))
        } else {
            String::new()
        };
        let _ = out.write_all(summary.as_bytes());
    }

    fn label(&self, l: &Label, primary: bool) -> Option<CsLabel<usize>> {
        let id = *self.ids.get(&l.file)?;
        let len = self.files.get(id).map_or(0, |f| f.source().len());
        let start = (l.span.start as usize).min(len);
        let end = (l.span.end as usize).clamp(start, len);
        let label = if primary {
            CsLabel::primary(id, start..end)
        } else {
            CsLabel::secondary(id, start..end)
        };
        Some(label.with_message(l.message.clone()))
    }

    fn to_codespan(&self, d: &Diagnostic) -> CsDiagnostic<usize> {
        let sev = match d.severity {
            Severity::Error => CsSeverity::Error,
            Severity::Warning => CsSeverity::Warning,
        };
        let mut labels: Vec<CsLabel<usize>> = Vec::new();
        labels.extend(self.label(&d.primary, true));
        labels.extend(d.secondary.iter().filter_map(|l| self.label(l, false)));
        let mut notes: Vec<String> = d.notes.iter().map(|n| format!("note: {n}")).collect();
        if let Some(h) = &d.help {
            notes.push(format!("help: {h}"));
        }
        CsDiagnostic::new(sev)
            .with_code(d.code.0)
            .with_message(d.message.clone())
            .with_labels(labels)
            .with_notes(notes)
    }

    fn position(&self, l: &Label) -> serde_json::Value {
        let text = self
            .ids
            .get(&l.file)
            .and_then(|id| self.files.get(*id).ok())
            .map_or("", |f| f.source().as_str());
        let (line, column) = dnnc_syntax::line_col(text, l.span.start as usize);
        let (end_line, end_column) = dnnc_syntax::line_col(text, l.span.end as usize);
        json!({
            "file": &*l.file,
            "byte_start": l.span.start,
            "byte_end": l.span.end,
            "line": line,
            "column": column,
            "end_line": end_line,
            "end_column": end_column,
            "message": l.message,
        })
    }

    pub fn json(&self, d: &Diagnostic) -> serde_json::Value {
        let mut labels = Vec::new();
        let mut p = self.position(&d.primary);
        p["primary"] = json!(true);
        labels.push(p.clone());
        for l in &d.secondary {
            let mut s = self.position(l);
            s["primary"] = json!(false);
            labels.push(s);
        }
        json!({
            "severity": d.severity.to_string(),
            "code": d.code.0,
            "message": d.message,
            "file": p["file"],
            "line": p["line"],
            "column": p["column"],
            "end_line": p["end_line"],
            "end_column": p["end_column"],
            "labels": labels,
            "notes": d.notes,
            "help": d.help,
        })
    }
}

/// The text with control characters replaced by visible ones of the same byte length,
/// so that byte offsets stay valid and a hostile file cannot send escape sequences to
/// the terminal through a source snippet.
fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' | '\t' => out.push(c),
            '\r' if chars.peek() == Some(&'\n') => out.push(c),
            '\u{0}'..='\u{1f}' | '\u{7f}' => out.push('?'),
            '\u{80}'..='\u{9f}' => out.push('\u{bf}'),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_become_visible_without_moving_offsets() {
        let text = "a\u{1b}[31mb\u{0}c\u{85}d\r\n";
        let shown = super::printable(text);
        assert_eq!(shown.len(), text.len());
        assert_eq!(shown, "a?[31mb?c\u{bf}d\r\n");
    }
}
