//! `logs` (lab step 5): the function's log events from `/aws/lambda/<function>`, optionally
//! filtered (`--filter revoking`), from `--since` ago, and followed until interrupted.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::error::{code_of, Error, Result};
use crate::lab::Lab;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEvent {
    pub timestamp: i64,
    pub stream: String,
    pub message: String,
}

impl std::fmt::Display for LogEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let time = aws_smithy_types::DateTime::from_millis(self.timestamp)
            .fmt(aws_smithy_types::date_time::Format::DateTime)
            .unwrap_or_else(|_| self.timestamp.to_string());
        write!(f, "{time} {} {}", self.stream, self.message.trim_end())
    }
}

/// Parses `15m`, `2h`, `30s`, `1d`.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("`{text}` is not a duration: use e.g. 30s, 15m, 2h, 1d"))?;
    let seconds = match unit {
        "s" => 1,
        "m" | "" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{text}` has unknown unit `{unit}`: use s, m, h or d")),
    };
    Ok(Duration::from_secs(number.saturating_mul(seconds)))
}

fn now_millis() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

/// Events of the function's log group newer than `start` (epoch milliseconds), all pages.
pub async fn fetch(lab: &Lab, filter: Option<&str>, start: i64) -> Result<Vec<LogEvent>> {
    fetch_from(lab, &lab.log_group(), filter, start).await
}

/// Every event of `group` newer than `start`.
pub async fn fetch_group(lab: &Lab, group: &str, start: i64) -> Result<Vec<LogEvent>> {
    fetch_from(lab, group, None, start).await
}

async fn fetch_from(lab: &Lab, group: &str, filter: Option<&str>, start: i64) -> Result<Vec<LogEvent>> {
    let mut events = Vec::new();
    let mut token = None;
    for _ in 0..1000 {
        let mut request =
            lab.clients.logs.filter_log_events().log_group_name(group).start_time(start).set_next_token(token.take());
        if let Some(filter) = filter {
            // A quoted term matches the text anywhere in the message.
            request = request.filter_pattern(format!("\"{}\"", filter.replace('"', "")));
        }
        let out = match request.send().await {
            Ok(out) => out,
            Err(err) if code_of(&err) == Some("ResourceNotFoundException") => {
                return Err(Error::Usage(format!(
                    "log group {group} does not exist yet: the function has not run; open the ports (`deploy lab open-ports`) and let Config evaluate"
                )))
            }
            Err(err) => return Err(Error::aws(format!("reading log group {group}"), err)),
        };
        for e in out.events() {
            events.push(LogEvent {
                timestamp: e.timestamp().unwrap_or_default(),
                stream: e.log_stream_name().unwrap_or_default().to_owned(),
                message: e.message().unwrap_or_default().to_owned(),
            });
        }
        token = out.next_token().filter(|t| !t.is_empty()).map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    events.sort_by_key(|e| e.timestamp);
    Ok(events)
}

/// Prints matching events; with `follow`, polls every two seconds until Ctrl-C.
pub async fn logs(lab: &Lab, filter: Option<&str>, since: Duration, follow: bool, json: bool) -> Result<()> {
    let mut start = now_millis() - since.as_millis() as i64;
    let print = |events: &[LogEvent]| {
        for e in events {
            if json {
                println!("{}", serde_json::to_string(e).unwrap_or_default());
            } else {
                println!("{e}");
            }
        }
    };
    let events = fetch(lab, filter, start).await?;
    if !follow && json {
        println!("{}", serde_json::to_string_pretty(&events).unwrap_or_default());
        return Ok(());
    }
    print(&events);
    if !follow {
        return Ok(());
    }
    let mut seen: std::collections::HashSet<(i64, String, String)> =
        events.iter().map(|e| (e.timestamp, e.stream.clone(), e.message.clone())).collect();
    if let Some(last) = events.last() {
        start = last.timestamp;
    }
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
        let new: Vec<LogEvent> = fetch(lab, filter, start)
            .await?
            .into_iter()
            .filter(|e| seen.insert((e.timestamp, e.stream.clone(), e.message.clone())))
            .collect();
        if let Some(last) = new.last() {
            start = last.timestamp;
        }
        print(&new);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert!(parse_duration("soon").unwrap_err().contains("not a duration"));
        assert!(parse_duration("5y").unwrap_err().contains("unknown unit `y`"));
    }
}
