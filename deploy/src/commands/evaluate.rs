//! `evaluate`: asks Config to re-run the rule now (StartConfigRulesEvaluation); `--wait` waits,
//! bounded, for an evaluation newer than the request and prints the results.

use std::time::Duration;

use aws_smithy_types::DateTime;

use crate::error::{code_of, Error, Result};
use crate::lab::Lab;
use crate::retry::{retry, Backoff};
use crate::status::Compliance;

/// How long `--wait` waits for Config (the lab saw minutes).
pub const WAIT: Backoff = Backoff { attempts: 40, first: Duration::from_secs(1), max: Duration::from_secs(10) };

pub async fn evaluate(lab: &Lab, wait: bool) -> Result<Option<Compliance>> {
    let name = &lab.names.rule;
    let requested = start(lab).await?;
    tracing::info!("evaluation of {name} requested");
    if !wait {
        return Ok(None);
    }
    retry(
        &format!("an evaluation of {name} newer than the request"),
        WAIT,
        |e: &Error| e.code() == Some("Pending"),
        || async {
            let status = lab
                .clients
                .config
                .describe_config_rule_evaluation_status()
                .config_rule_names(name)
                .send()
                .await
                .map_err(|e| Error::aws(format!("reading the evaluation status of {name}"), e))?;
            let done = status.config_rules_evaluation_status().iter().any(|s| {
                s.last_successful_evaluation_time().is_some_and(|t| t.secs() >= requested.secs())
                    || s.last_failed_evaluation_time().is_some_and(|t| t.secs() >= requested.secs())
            });
            if done {
                Ok(())
            } else {
                Err(Error::Aws {
                    what: format!("waiting for {name}"),
                    code: Some("Pending".into()),
                    message: "no newer evaluation".into(),
                })
            }
        },
    )
    .await
    .map_err(|e| match e.code() {
        Some("Pending") => Error::Failed(format!("no evaluation of {name} arrived within {:?}", WAIT.bound())),
        _ => e,
    })?;
    Ok(Some(crate::status::status(lab).await?.compliance))
}

/// StartConfigRulesEvaluation, retried while Config answers LimitExceededException (an
/// evaluation in progress — a rule just put is evaluated at once — or one started less than
/// about a minute ago), bounded by [`Backoff::EVALUATION_LIMIT`]. Returns when the accepted
/// request was made.
async fn start(lab: &Lab) -> Result<DateTime> {
    let name = &lab.names.rule;
    let started = retry(
        &format!("Config to accept another evaluation of {name} (it allows about one a minute per rule)"),
        Backoff::EVALUATION_LIMIT,
        |e: &Error| e.code() == Some("LimitExceededException"),
        || async {
            let requested = DateTime::from(std::time::SystemTime::now());
            let what = format!("starting an evaluation of Config rule {name}");
            match lab.clients.config.start_config_rules_evaluation().config_rule_names(name).send().await {
                Ok(_) => Ok(requested),
                Err(err) if code_of(&err) == Some("ResourceInUseException") => Err(Error::Failed(format!(
                    "{what}: Config is deleting the rule (DELETING); run `up` to put it back, then `evaluate`"
                ))),
                Err(err) if code_of(&err) == Some("NoSuchConfigRuleException") => {
                    Err(Error::Failed(format!("{what}: there is no such rule; run `up` first")))
                }
                Err(err) => Err(Error::aws(what, err)),
            }
        },
    )
    .await;
    started.map_err(|e| match e.code() {
        Some("LimitExceededException") => Error::Failed(format!(
            "Config still refuses another evaluation of {name} after {:?} (LimitExceededException: an evaluation is in progress or was started less than a minute ago); try again in a few minutes",
            Backoff::EVALUATION_LIMIT.bound()
        )),
        _ => e,
    })
}
