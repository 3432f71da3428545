//! Progress on stderr, drawn with `indicatif`. On a terminal: a spinner with what is awaited and
//! the time so far for every wait ([`Wait`]), and in a run over many targets one line per target,
//! redrawn in place ([`Progress`]); log lines print above them ([`stderr`], [`eprint`]), never
//! through them. Otherwise plain lines: a wait says what it waits for on each attempt, and a run
//! over many targets prefixes each line with the target.
//!
//! [`finish`] ends the drawing before a result goes to stdout, so a table never shares the
//! screen with a redrawn line.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
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
/// How often a spinner turns (and its time so far is redrawn).
const TICK: Duration = Duration::from_millis(120);

/// Where progress is drawn: stderr, as a terminal or as plain lines.
#[derive(Clone)]
pub struct Screen {
    multi: MultiProgress,
    terminal: bool,
    /// Waits show on their target's line ([`Progress`]), not as spinners of their own.
    targets: bool,
}

impl Screen {
    /// `terminal`: stderr is a terminal; `targets`: a run over many targets ([`Progress`]).
    pub fn new(terminal: bool, targets: bool) -> Self {
        let draw = if terminal { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        Self::with_draw_target(draw, terminal, targets)
    }

    fn with_draw_target(draw: ProgressDrawTarget, terminal: bool, targets: bool) -> Self {
        Screen { multi: MultiProgress::with_draw_target(draw), terminal, targets }
    }

    /// Writes `bytes` to stderr above whatever is drawn.
    fn write(&self, bytes: &[u8]) -> std::io::Result<()> {
        let write = || {
            let mut err = std::io::stderr().lock();
            err.write_all(bytes)?;
            err.flush()
        };
        if self.terminal {
            self.multi.suspend(write)
        } else {
            write()
        }
    }
}

static SCREEN: OnceLock<Screen> = OnceLock::new();

/// Sets the process's screen (once; later calls return the first). Without it — a library
/// caller, a test — waits log plain lines.
pub fn init(terminal: bool, targets: bool) -> Screen {
    SCREEN.get_or_init(|| Screen::new(terminal, targets)).clone()
}

/// Prints `text` to stderr above what is drawn.
pub fn eprint(text: &str) {
    let _ = match SCREEN.get() {
        Some(screen) => screen.write(text.as_bytes()),
        None => std::io::stderr().lock().write_all(text.as_bytes()),
    };
}

/// Runs `f` (a question on the terminal) with nothing drawn meanwhile.
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    match SCREEN.get() {
        Some(screen) if screen.terminal => screen.multi.suspend(f),
        _ => f(),
    }
}

/// Ends the drawing: every target's line is left on the screen as it last read, as plain text,
/// and nothing is redrawn after; called before the result goes to stdout.
pub fn finish() {
    if let Some(lines) = TARGETS.get() {
        lines.finish();
    }
}

/// A writer to stderr that prints above what is drawn: `fmt().with_writer(progress::stderr)`.
pub fn stderr() -> Stderr {
    Stderr
}

pub struct Stderr;

impl std::io::Write for Stderr {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match SCREEN.get() {
            Some(screen) => screen.write(bytes).map(|()| bytes.len()),
            None => std::io::stderr().write(bytes),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner())
}

/// A spinner turning, the time so far, and the line.
fn active() -> ProgressStyle {
    style("{prefix}{spinner} {elapsed:>3} {wide_msg}")
}

/// The line alone, where the spinner and time were (a target between its steps, or done).
fn idle() -> ProgressStyle {
    style("{prefix}      {wide_msg}")
}

/// A wait the user sees: on a terminal, a spinner reading `waiting for WHAT (DETAIL)` and the
/// time so far, cleared when the wait ends (then one line says how long it took). Elsewhere — not
/// a terminal, or inside a run over many targets, whose target line shows the wait — nothing is
/// drawn and the caller logs its lines as before ([`Wait::spinning`] is false).
pub struct Wait {
    shown: Option<(Screen, ProgressBar)>,
    what: String,
}

impl Wait {
    pub fn start(what: impl Into<String>) -> Wait {
        Wait::on(SCREEN.get(), what.into())
    }

    fn on(screen: Option<&Screen>, what: String) -> Wait {
        let shown = screen.filter(|s| s.terminal && !s.targets).map(|screen| (screen.clone(), spinner(screen, &what)));
        Wait { shown, what }
    }

    /// Whether a spinner shows the wait (else the caller's log lines do).
    pub fn spinning(&self) -> bool {
        self.shown.is_some()
    }

    /// What the wait is at, e.g. `attempt 3/12`.
    pub fn detail(&self, detail: &str) {
        if let Some((_, bar)) = &self.shown {
            bar.set_message(format!("waiting for {} ({detail})", self.what));
        }
    }
}

fn spinner(screen: &Screen, what: &str) -> ProgressBar {
    let bar =
        screen.multi.add(ProgressBar::new_spinner().with_style(active()).with_message(format!("waiting for {what}")));
    bar.enable_steady_tick(TICK);
    bar
}

impl Drop for Wait {
    fn drop(&mut self) {
        if let Some((screen, bar)) = self.shown.take() {
            let took = bar.elapsed();
            bar.finish_and_clear();
            screen.multi.remove(&bar);
            drop(screen);
            tracing::info!("waited {:.1} s for {}", took.as_secs_f64(), self.what);
        }
    }
}

/// The lines of a run over many targets, for [`finish`].
static TARGETS: OnceLock<std::sync::Arc<Lines>> = OnceLock::new();

/// A `tracing` layer for a run over many targets: events inside a span named `target` (with a
/// `label` field naming the target, see [`crate::fanout`]) set that target's line; other events
/// print as plain lines. On a terminal a target's line turns a spinner and counts its time
/// while one of its spans is open.
pub struct Progress {
    lines: std::sync::Arc<Lines>,
}

struct Lines {
    screen: Screen,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Targets in the order first seen, with their line (terminal only).
    bars: Vec<(String, ProgressBar)>,
    width: usize,
}

struct Label(String);

impl Progress {
    pub fn new(screen: Screen) -> Self {
        let lines = std::sync::Arc::new(Lines { screen, state: Mutex::new(State::default()) });
        let _ = TARGETS.set(lines.clone());
        Progress { lines }
    }
}

impl Lines {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn show(&self, label: Option<String>, level: Level, message: String) {
        let message = match level {
            Level::ERROR => format!("error: {message}"),
            Level::WARN => format!("warning: {message}"),
            _ => message,
        };
        match label {
            Some(label) if self.screen.terminal => self.bar(&label).set_message(message),
            Some(label) => {
                let _ = self.screen.write(format!("{label}: {message}\n").as_bytes());
            }
            None => {
                let _ = self.screen.write(format!("{message}\n").as_bytes());
            }
        }
    }

    /// The target's line, added below the others when first seen.
    fn bar(&self, label: &str) -> ProgressBar {
        let mut state = self.state();
        if let Some((_, bar)) = state.bars.iter().find(|(l, _)| l == label) {
            return bar.clone();
        }
        let bar = self.screen.multi.add(ProgressBar::new_spinner().with_style(idle()));
        state.bars.push((label.to_owned(), bar.clone()));
        let width = label.chars().count();
        if width > state.width {
            state.width = width;
            for (label, bar) in &state.bars {
                bar.set_prefix(format!("{label:<width$}  "));
            }
        } else {
            bar.set_prefix(format!("{label:<w$}  ", w = state.width));
        }
        bar
    }

    /// A step of the target starts: the spinner turns and the time counts from now.
    fn open(&self, label: &str) {
        if self.screen.terminal {
            let bar = self.bar(label);
            bar.reset_elapsed();
            bar.set_style(active());
            bar.enable_steady_tick(TICK);
        }
    }

    /// The step ends: the line stays, still.
    fn close(&self, label: &str) {
        if self.screen.terminal {
            let bar = self.bar(label);
            bar.disable_steady_tick();
            bar.set_style(idle());
            // Drawn again now: a line is only redrawn when it changes.
            bar.tick();
        }
    }

    fn finish(&self) {
        let bars = std::mem::take(&mut self.state().bars);
        if bars.is_empty() {
            return;
        }
        let mut text = String::new();
        for (_, bar) in &bars {
            bar.disable_steady_tick();
            let _ = writeln!(text, "{}{}", bar.prefix(), bar.message());
        }
        // Wiped and written again as plain text: nothing redraws or clears it later.
        let _ = self.screen.multi.clear();
        for (_, bar) in &bars {
            self.screen.multi.remove(bar);
        }
        let _ = self.screen.write(text.as_bytes());
    }
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
            self.lines.open(&label);
            span.extensions_mut().insert(Label(label));
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let label = ctx.span(&id).and_then(|span| span.extensions().get::<Label>().map(|l| l.0.clone()));
        if let Some(label) = label {
            self.lines.close(&label);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let label = ctx
            .event_scope(event)
            .and_then(|scope| scope.from_root().find_map(|span| span.extensions().get::<Label>().map(|l| l.0.clone())));
        let mut fields = Fields::default();
        event.record(&mut fields);
        self.lines.show(label, *event.metadata().level(), fields.message);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use indicatif::TermLike;

    use super::*;

    /// A terminal 80 columns wide that keeps what is on its screen: rows, and the cursor (a
    /// character written past the last column wraps to the next row).
    #[derive(Debug, Clone, Default)]
    struct Term(Arc<Mutex<Cells>>);

    /// The rows of characters, and the cursor's row and column.
    type Cells = (Vec<Vec<char>>, usize, usize);

    const WIDTH: usize = 80;

    impl Term {
        fn screen(&self) -> Vec<String> {
            let rows: Vec<String> = self.0.lock().unwrap().0.iter().map(|r| r.iter().collect::<String>()).collect();
            let mut rows: Vec<String> = rows.iter().map(|r| r.trim_end().to_owned()).collect();
            while rows.last().is_some_and(String::is_empty) {
                rows.pop();
            }
            rows
        }
    }

    impl TermLike for Term {
        fn width(&self) -> u16 {
            WIDTH as u16
        }
        fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
            let mut t = self.0.lock().unwrap();
            t.1 = t.1.saturating_sub(n);
            t.2 = t.2.min(WIDTH - 1);
            Ok(())
        }
        fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
            self.0.lock().unwrap().1 += n;
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.write_str(s)?;
            let mut t = self.0.lock().unwrap();
            t.1 += 1;
            t.2 = 0;
            Ok(())
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            let mut guard = self.0.lock().unwrap();
            let (rows, row, col) = &mut *guard;
            for c in s.chars() {
                if c == '\r' {
                    *col = 0;
                    continue;
                }
                if *col >= WIDTH {
                    *row += 1;
                    *col = 0;
                }
                while rows.len() <= *row {
                    rows.push(vec![' '; WIDTH]);
                }
                rows[*row][*col] = c;
                *col += 1;
            }
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            let mut guard = self.0.lock().unwrap();
            let (rows, row, col) = &mut *guard;
            if let Some(line) = rows.get_mut(*row) {
                line.fill(' ');
            }
            *col = 0;
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_terminal_gets_one_line_per_target_redrawn_in_place() {
        let term = Term::default();
        let screen = Screen::with_draw_target(ProgressDrawTarget::term_like(Box::new(term.clone())), true, true);
        let lines = Lines { screen, state: Mutex::new(State::default()) };
        lines.open("alice");
        lines.show(Some("alice".into()), Level::INFO, "creating role".into());
        lines.open("bob/eu-west-1");
        lines.show(Some("bob/eu-west-1".into()), Level::INFO, "connecting".into());
        lines.close("alice");
        lines.show(Some("alice".into()), Level::INFO, "done: 8 created".into());
        for (_, bar) in &lines.state().bars {
            bar.force_draw();
        }
        let shown = term.screen();
        assert_eq!(shown.len(), 2, "one line per target, drawn over the last: {shown:#?}");
        // The labels padded to the longest, then the spinner's and the time's columns.
        assert_eq!(shown[0], format!("{:<15}      done: 8 created", "alice"), "{shown:#?}");
        assert!(shown[1].starts_with("bob/eu-west-1  "), "{shown:#?}");
        assert!(shown[1].ends_with(" connecting") && shown[1].contains("0s"), "spinner, time so far: {shown:#?}");

        lines.finish();
        assert!(lines.state().bars.is_empty());
    }

    #[test]
    fn a_wait_on_a_terminal_is_a_spinner_with_the_time_so_far_and_goes_when_done() {
        let term = Term::default();
        let screen = Screen::with_draw_target(ProgressDrawTarget::term_like(Box::new(term.clone())), true, false);
        let wait = Wait::on(Some(&screen), "IAM to accept role r".into());
        assert!(wait.spinning());
        wait.detail("attempt 2/12");
        if let Some((_, bar)) = &wait.shown {
            bar.force_draw();
        }
        let shown = term.screen();
        assert_eq!(shown.len(), 1, "{shown:#?}");
        assert!(shown[0].ends_with("0s waiting for IAM to accept role r (attempt 2/12)"), "{shown:#?}");
        drop(wait);
        assert!(term.screen().is_empty(), "cleared: {:#?}", term.screen());

        // Not a terminal, or a run over many targets (the target's line shows it): no spinner.
        for (terminal, targets) in [(false, false), (true, true)] {
            let screen = Screen::with_draw_target(ProgressDrawTarget::hidden(), terminal, targets);
            assert!(!Wait::on(Some(&screen), "x".into()).spinning());
        }
        assert!(!Wait::on(None, "x".into()).spinning());
    }
}
