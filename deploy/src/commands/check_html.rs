//! `lab check --html FILE`: one self-contained page (no external script, style or font) for an
//! instructor to open or project: a grid of students by steps, each status in words and
//! colour, each hint on hover (`title`) and in text, and the time of the check.
//!
//! Its one inline script only counts the cells it finds and marks the page as rendered
//! (`#rendered`), which is how the browser test knows the page loaded and ran without errors.

use std::path::Path;

use crate::check::{Check, Status, STEPS};
use crate::error::{Error, Result};
use crate::fanout::{Outcome, Run};

/// One student's row: who, and either the check or why it could not be made.
#[derive(Debug, Clone)]
pub struct Row {
    pub student: String,
    pub account: String,
    pub region: String,
    pub check: std::result::Result<Check, String>,
}

/// The rows of a class run (`lab check` over a target list).
pub fn rows_of_run(run: &Run) -> Vec<Row> {
    run.targets
        .iter()
        .map(|t| {
            let check =
                t.result.as_ref().and_then(|r| serde_json::from_value::<Check>(r.clone()).ok()).ok_or_else(|| match t
                    .outcome
                {
                    Outcome::Failed => t.detail.clone(),
                    Outcome::Ok => "no check result".to_owned(),
                });
            Row {
                student: t.target.name(),
                account: t.account.clone().or_else(|| t.target.account.clone()).unwrap_or_else(|| "-".into()),
                region: t.region.clone().or_else(|| t.target.region.clone()).unwrap_or_else(|| "-".into()),
                check,
            }
        })
        .collect()
}

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #1b1b1b; background: #fff; }
h1 { font-size: 1.4rem; margin: 0 0 .3rem; }
p.meta { margin: 0 0 1rem; color: #444; }
table { border-collapse: collapse; }
th, td { border: 1px solid #bbb; padding: .35rem .5rem; vertical-align: top; }
th { background: #eee; text-align: left; }
td.status { min-width: 6.5rem; font-weight: 600; }
td.status small { display: block; font-weight: 400; font-size: .75rem; max-width: 14rem; }
td.done { background: #d9f2d9; color: #0b4d0b; }
td.missing { background: #fbdcdc; color: #7a0b0b; }
td.unknown { background: #e6e6e6; color: #333; }
td.error { background: #fff1cc; color: #5c4100; }
.legend span { display: inline-block; padding: .1rem .5rem; margin-right: .5rem; border: 1px solid #bbb; }
"#;

/// The page for these rows, checked at `checked_at`.
pub fn page(rows: &[Row], checked_at: &str) -> String {
    let mut html = String::new();
    html.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    html.push_str("<title>Lab progress: Monitoring Security Groups with AWS Config</title>\n");
    html.push_str(&format!("<style>{STYLE}</style>\n</head>\n<body>\n"));
    html.push_str("<h1>Lab progress: Monitoring Security Groups with AWS Config</h1>\n");
    let complete = rows.iter().filter(|r| r.check.as_ref().is_ok_and(Check::all_done)).count();
    html.push_str(&format!(
        "<p class=\"meta\">Checked at <time id=\"checked-at\" datetime=\"{0}\">{0}</time> — {complete} of {1} students done with every step.</p>\n",
        escape(checked_at),
        rows.len()
    ));
    html.push_str(
        "<p class=\"legend\"><span class=\"done\" style=\"background:#d9f2d9\">done</span><span style=\"background:#fbdcdc\">missing</span><span style=\"background:#e6e6e6\">unknown (could not be read)</span></p>\n",
    );
    html.push_str("<table id=\"grid\">\n<thead><tr><th>Student</th><th>Account</th><th>Region</th>");
    for step in STEPS {
        html.push_str(&format!("<th scope=\"col\">{}</th>", escape(step)));
    }
    html.push_str("</tr></thead>\n<tbody>\n");
    for row in rows {
        html.push_str(&format!(
            "<tr data-student=\"{0}\"><th scope=\"row\">{0}</th><td>{1}</td><td>{2}</td>",
            escape(&row.student),
            escape(&row.account),
            escape(&row.region)
        ));
        match &row.check {
            Ok(check) => {
                for id in STEPS {
                    let (status, hint) = check
                        .steps
                        .iter()
                        .find(|s| s.id == id)
                        .map(|s| (s.status, s.hint.as_str()))
                        .unwrap_or((Status::Unknown, "not checked"));
                    html.push_str(&format!(
                        "<td class=\"status {0}\" data-step=\"{1}\" title=\"{2}\">{0}<small>{2}</small></td>",
                        status.word(),
                        escape(id),
                        escape(hint)
                    ));
                }
            }
            Err(why) => {
                html.push_str(&format!(
                    "<td class=\"status error\" colspan=\"{}\" title=\"{1}\">could not check<small>{1}</small></td>",
                    STEPS.len(),
                    escape(why)
                ));
            }
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</tbody>\n</table>\n");
    html.push_str("<p id=\"rendered\" hidden></p>\n");
    // Runs after the table is parsed: marks the page rendered with the number of cells found.
    html.push_str(
        "<script>\n(function () {\n  var cells = document.querySelectorAll('#grid td.status').length;\n  var marker = document.getElementById('rendered');\n  marker.setAttribute('data-cells', String(cells));\n  marker.textContent = 'rendered ' + cells + ' cells';\n})();\n</script>\n",
    );
    html.push_str("</body>\n</html>\n");
    html
}

/// Writes the page to `path`.
pub fn write(path: &Path, rows: &[Row], checked_at: &str) -> Result<()> {
    std::fs::write(path, page(rows, checked_at))
        .map_err(|e| Error::Usage(format!("cannot write --html {}: {e}", path.display())))
}

/// The time of a class's check: the earliest of its rows', else now.
pub fn checked_at(rows: &[Row]) -> String {
    rows.iter()
        .filter_map(|r| r.check.as_ref().ok().map(|c| c.checked_at.clone()))
        .min()
        .unwrap_or_else(crate::check::now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::StepCheck;

    #[test]
    fn the_page_is_self_contained_and_escapes_what_it_shows() {
        let steps = STEPS
            .iter()
            .map(|id| StepCheck { id: (*id).into(), status: Status::Missing, hint: "needs <rule> & \"more\"".into() })
            .collect();
        let check = Check { account: "1".into(), region: "r".into(), checked_at: "2026-01-01T00:00:00Z".into(), steps };
        let rows = vec![
            Row { student: "alice<b>".into(), account: "1".into(), region: "r".into(), check: Ok(check) },
            Row { student: "bob".into(), account: "-".into(), region: "-".into(), check: Err("access denied".into()) },
        ];
        let html = page(&rows, "2026-01-01T00:00:00Z");
        assert!(html.contains("alice&lt;b&gt;") && !html.contains("alice<b>"));
        assert!(html.contains("title=\"needs &lt;rule&gt; &amp; &quot;more&quot;\""));
        assert!(html.contains("could not check<small>access denied</small>"));
        assert_eq!(html.matches("data-step=").count(), STEPS.len());
        for external in ["src=", "href=", "@import", "url("] {
            assert!(!html.contains(external), "{external}");
        }
    }
}
