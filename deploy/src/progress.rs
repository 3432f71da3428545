//! Progress of a run over many targets, on stderr: each target's current step. On a terminal,
//! one line per target, redrawn in place; otherwise plain lines prefixed with the target.
//!
//! A `tracing` layer: events inside a span named `target` (with a `target` field holding the
//! target's label, see [`crate::fanout`]) update that target's line; other events print as
//! plain lines.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The span name that marks a target.
pub const SPAN: &str = "target";
/// The span field that names the target.
const LABEL: &str = "label";

pub struct Progress {
    terminal: bool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Targets in the order first seen, with their current line.
    lines: Vec<(String, String)>,
    /// Lines drawn by the last redraw (terminal only).
    drawn: usize,
}

struct Label(String);

impl Progress {
    /// `terminal`: redraw one line per target in place (stderr is a terminal).
    pub fn new(terminal: bool) -> Self {
        Progress { terminal, state: Mutex::new(State::default()) }
    }

    fn show(&self, label: Option<String>, level: Level, message: String) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let message = match level {
            Level::ERROR => format!("error: {message}"),
            Level::WARN => format!("warning: {message}"),
            _ => message,
        };
        let mut err = std::io::stderr().lock();
        let Some(label) = label else {
            // Above the block of target lines.
            if self.terminal && state.drawn > 0 {
                let _ = write!(err, "\x1b[{}A\x1b[J", state.drawn);
                state.drawn = 0;
            }
            let _ = writeln!(err, "{message}");
            if self.terminal {
                draw(&mut state, &mut err);
            }
            return;
        };
        if !self.terminal {
            let _ = writeln!(err, "{label}: {message}");
            return;
        }
        match state.lines.iter_mut().find(|(l, _)| *l == label) {
            Some((_, line)) => *line = message,
            None => state.lines.push((label, message)),
        }
        draw(&mut state, &mut err);
    }
}

fn draw(state: &mut State, err: &mut impl std::io::Write) {
    let width = state.lines.iter().map(|(l, _)| l.chars().count()).max().unwrap_or(0);
    let columns = terminal_columns();
    let mut text = String::new();
    if state.drawn > 0 {
        let _ = write!(text, "\x1b[{}A", state.drawn);
    }
    for (label, line) in &state.lines {
        let row = format!("{label:<width$}  {line}");
        let row: String = row.chars().take(columns.saturating_sub(1)).collect();
        let _ = writeln!(text, "\x1b[2K{row}");
    }
    state.drawn = state.lines.len();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

fn terminal_columns() -> usize {
    std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()).filter(|c| *c > 20).unwrap_or(120)
}

#[derive(Default)]
struct Fields {
    message: String,
    label: Option<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_owned(),
            LABEL => self.label = Some(value.to_owned()),
            name => {
                let _ = write!(self.message, " {name}={value}");
            }
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            LABEL => self.label = Some(format!("{value:?}")),
            name => {
                let _ = write!(self.message, " {name}={value:?}");
            }
        }
    }
}

impl<S> Layer<S> for Progress
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != SPAN {
            return;
        }
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let (Some(label), Some(span)) = (fields.label, ctx.span(id)) {
            span.extensions_mut().insert(Label(label));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let label = ctx
            .event_scope(event)
            .and_then(|scope| scope.from_root().find_map(|span| span.extensions().get::<Label>().map(|l| l.0.clone())));
        let mut fields = Fields::default();
        event.record(&mut fields);
        self.show(label, *event.metadata().level(), fields.message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminal_gets_one_line_per_target_redrawn_in_place() {
        let mut state = State::default();
        state.lines.push(("alice".into(), "creating role".into()));
        state.lines.push(("bob/eu-west-1".into(), "connecting".into()));
        let mut first = Vec::new();
        draw(&mut state, &mut first);
        assert_eq!(
            String::from_utf8(first).unwrap(),
            "\x1b[2Kalice          creating role\n\x1b[2Kbob/eu-west-1  connecting\n"
        );
        state.lines[1].1 = "done: 8 created".into();
        let mut second = Vec::new();
        draw(&mut state, &mut second);
        let second = String::from_utf8(second).unwrap();
        assert!(second.starts_with("\x1b[2A"), "back up over the two lines: {second:?}");
        assert!(second.ends_with("\x1b[2Kbob/eu-west-1  done: 8 created\n"), "{second:?}");
    }
}
