//! The function's log lines, as Lambda's log settings ask (`AWS_LAMBDA_LOG_LEVEL`,
//! `AWS_LAMBDA_LOG_FORMAT`), without terminal colours: CloudWatch Logs shows escape codes
//! verbatim.
//!
//! The runtime runs each invocation inside a span, `Lambda runtime invoke{requestId=…
//! xrayTraceId=…}` (lambda_runtime's `layers::trace::request_span`). In text format a line is
//! the event alone — `revoking for sg-…, ip_permissions […]`, as the lab's steps show it — and
//! CloudWatch Logs already ties every line to its invocation (the `START RequestId:` and
//! `END RequestId:` lines around it). Lines of another level than INFO start with the level. In
//! JSON format a line keeps the span, so the request id stays a field (`span.requestId`).

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// Logs to stdout (Lambda ships it to CloudWatch Logs), as the environment asks.
pub fn init() {
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    subscriber(filter(), json, std::io::stdout).init();
}

/// `AWS_LAMBDA_LOG_LEVEL` (else `RUST_LOG`), INFO when unset or unreadable.
pub fn filter() -> EnvFilter {
    // An empty level would parse as ERROR.
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .filter(|l| !l.trim().is_empty())
        .and_then(|l| l.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    EnvFilter::builder().with_default_directive(level.into()).from_env_lossy()
}

/// The subscriber writing the function's lines to `writer`: text ([`Lines`]) or JSON.
pub fn subscriber<W>(filter: EnvFilter, json: bool, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let logs = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_target(false)
        .without_time()
        .with_ansi(false)
        .with_env_filter(filter);
    if json {
        Box::new(logs.json().finish())
    } else {
        Box::new(logs.event_format(Lines).finish())
    }
}

/// A text line: the event's message and fields, without the spans it happened in; the level
/// first unless it is INFO.
pub struct Lines;

impl<S, N> FormatEvent<S, N> for Lines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let level = *event.metadata().level();
        if level != Level::INFO {
            write!(writer, "{level} ")?;
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'w self) -> Buffer {
            self.clone()
        }
    }

    /// What the function logs inside an invocation, as the runtime wraps it.
    fn lines(json: bool) -> Vec<String> {
        let buffer = Buffer::default();
        let subscriber = subscriber(EnvFilter::new("info"), json, buffer.clone());
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "Lambda runtime invoke",
                requestId = "8f5a1c2e-0000-4000-8000-000000000001",
                xrayTraceId = "Root=1-00000000-000000000000000000000001"
            );
            let _entered = span.enter();
            tracing::info!("revoking for sg-0123, ip_permissions [{{\"FromPort\":465}}]");
            tracing::warn!(group = "sg-0123", "not found");
            tracing::debug!("filtered out");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn text_lines_are_the_events_without_the_runtimes_span() {
        assert_eq!(
            lines(false),
            ["revoking for sg-0123, ip_permissions [{\"FromPort\":465}]", "WARN not found group=\"sg-0123\""]
        );
    }

    #[test]
    fn json_lines_keep_the_request_id_as_a_field() {
        let lines = lines(true);
        assert_eq!(lines.len(), 2, "{lines:#?}");
        let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(first["fields"]["message"], "revoking for sg-0123, ip_permissions [{\"FromPort\":465}]");
        assert_eq!(first["level"], "INFO");
        assert_eq!(first["span"]["requestId"], "8f5a1c2e-0000-4000-8000-000000000001");
        assert_eq!(first["span"]["name"], "Lambda runtime invoke");
    }
}
