//! One invocation: parse the event, read the group(s), evaluate, remediate, report.
//!
//! The order of things is the safety argument: the event and the rule parameters are parsed
//! completely before the first AWS call, so a malformed event or a bad parameter never changes
//! a group; a group is changed only after it was read completely (from EC2, or the whole
//! configuration item of a change evaluation: [`crate::item`]); after a change EC2's answers
//! to the revoke and the authorize must confirm each rule changed (the group then holds exactly
//! the baseline), else the group is read again, bounded, until it equals the baseline.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_smithy_types::DateTime;
use futures_channel::mpsc;
use futures_util::future::{self, Either};
use futures_util::stream::{self, StreamExt};
use tracing::{info, warn};

use crate::aws::{Answered, AwsError, Ec2, ErrorKind, EvaluationRecord, Evaluations, GroupPage, RulesByGroup};
use crate::evaluate::{
    describe_changes, describe_named, evaluate, plan, truncate, Compliance, GroupState, Plan, COMPLIANT_ANNOTATION,
};
use crate::event::{ApiCall, EventError, Invocation, Message, ResourceRef, SECURITY_GROUP};
use crate::item;
use crate::pace::{Pacer, Rate};
use crate::parameters::{Mode, ParameterError, Parameters};
use crate::rules::{embedded_baseline, permissions_json, ObservedRule, Rule, RuleError};

/// PutEvaluations accepts at most this many evaluations per call.
pub const EVALUATIONS_PER_CALL: usize = 100;

/// Why an invocation failed. Config records the failure and retries the evaluation later.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error(transparent)]
    Event(#[from] EventError),
    #[error("{0}; no security group was read or changed")]
    Parameters(#[from] ParameterError),
    #[error("the built-in baseline policy/required-ingress.json is invalid: {0}")]
    Baseline(RuleError),
    #[error("{source} (security group {group}; {retry})")]
    Aws { group: String, source: AwsError, retry: &'static str },
    #[error("PutEvaluations rejected {failed} of {sent} evaluations; Config will retry the evaluation")]
    EvaluationsRejected { failed: usize, sent: usize },
}

impl HandlerError {
    fn aws(group: &str, source: AwsError) -> Self {
        let retry = match source.kind {
            ErrorKind::AccessDenied => "grant the permission to the function's role; a retry alone will not help",
            ErrorKind::Unreadable => "a retry will not help until the rule is changed",
            _ => "Config retries the evaluation",
        };
        HandlerError::Aws { group: group.to_owned(), source, retry }
    }

    /// A short name for the Lambda error type.
    pub fn error_type(&self) -> &'static str {
        match self {
            HandlerError::Event(_) => "MalformedEvent",
            HandlerError::Parameters(_) => "InvalidRuleParameter",
            HandlerError::Baseline(_) => "InvalidBaseline",
            HandlerError::Aws { .. } => "AwsCallFailed",
            HandlerError::EvaluationsRejected { .. } => "EvaluationsRejected",
        }
    }
}

#[cfg(feature = "sdk")]
impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(err: HandlerError) -> Self {
        lambda_runtime::Diagnostic { error_type: err.error_type().to_owned(), error_message: err.to_string() }
    }
}

/// What an invocation did: the evaluations sent and the changes made.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub evaluations: Vec<EvaluationRecord>,
    pub revoked: Vec<Change>,
    pub authorized: Vec<Change>,
}

/// Rules changed on one group, in compact form.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub group_id: String,
    pub rules: Vec<String>,
}

/// The function: an EC2 client, a Config client and the baseline compiled in.
pub struct Handler<E, C> {
    ec2: E,
    config: C,
    baseline: Vec<Rule>,
    /// Rule parameters for API-call events, which carry none (the function's `RULE_PARAMETERS`).
    api_call_parameters: Option<String>,
    /// DescribeSecurityGroupRules was denied: not asked again for the life of the process (a
    /// warm Lambda execution environment). Each denied call is an `UnauthorizedOperation` in
    /// CloudTrail, which trips the usual "unauthorized API calls" alarms.
    rules_denied: AtomicBool,
    /// The change calls' pacing to EC2's request quota; `None` when the SDK's adaptive retry
    /// mode paces them instead ([`crate::pace`] says why the bucket is the default).
    pacer: Option<Pacer>,
}

/// What the invocation's deadline leaves: the last instant a change may start, and the instant
/// by which unanswered calls and re-reads are given up so that every evaluation is reported.
/// Both follow the evaluations still to report: a sweep reports as it goes ([`Tally`]), and
/// each report sent gives the changes its reserve back.
#[derive(Debug, Clone, Copy, Default)]
pub struct Budget<'a> {
    deadline: Option<Instant>,
    /// Evaluations to report, when no tally counts them.
    fixed: usize,
    tally: Option<&'a Tally>,
}

/// A sweep's evaluations as it reads and reports them, and when its work happened (for the
/// line that closes its log: where the time of a run went).
#[derive(Debug)]
pub struct Tally {
    begun: Instant,
    /// Groups read so far (each one evaluation).
    read: AtomicUsize,
    /// Held for pages not read yet: one page's worth while a next page exists.
    pages_ahead: AtomicUsize,
    /// Evaluations Config accepted.
    sent: AtomicUsize,
    pages: AtomicUsize,
    /// Milliseconds since `begun`: the last page read, the first and last change call made,
    /// the first change given up for want of time, the last report accepted.
    last_read: AtomicU64,
    first_change: AtomicU64,
    last_change: AtomicU64,
    out_of_time: AtomicU64,
    last_report: AtomicU64,
    changes: AtomicUsize,
    reports: AtomicUsize,
}

impl Default for Tally {
    /// A sweep's tally, its clock starting now.
    fn default() -> Self {
        Tally {
            begun: Instant::now(),
            read: AtomicUsize::new(0),
            pages_ahead: AtomicUsize::new(0),
            sent: AtomicUsize::new(0),
            pages: AtomicUsize::new(0),
            last_read: AtomicU64::new(NEVER),
            first_change: AtomicU64::new(NEVER),
            last_change: AtomicU64::new(NEVER),
            out_of_time: AtomicU64::new(NEVER),
            last_report: AtomicU64::new(NEVER),
            changes: AtomicUsize::new(0),
            reports: AtomicUsize::new(0),
        }
    }
}

/// Not yet happened, in a [`Tally`]'s instants.
const NEVER: u64 = u64::MAX;

impl Tally {
    fn unreported(&self) -> usize {
        let held = self.read.load(Ordering::Relaxed) + self.pages_ahead.load(Ordering::Relaxed);
        held.saturating_sub(self.sent.load(Ordering::Relaxed))
    }

    fn page_read(&self, groups: usize, more: bool) {
        self.read.fetch_add(groups, Ordering::Relaxed);
        self.pages_ahead.store(if more { GROUPS_PER_PAGE } else { 0 }, Ordering::Relaxed);
        self.pages.fetch_add(1, Ordering::Relaxed);
        self.last_read.store(self.now(), Ordering::Relaxed);
    }

    fn now(&self) -> u64 {
        u64::try_from(self.begun.elapsed().as_millis()).unwrap_or(NEVER - 1)
    }

    fn change_started(&self) {
        let now = self.now();
        self.changes.fetch_add(1, Ordering::Relaxed);
        self.first_change.fetch_min(now, Ordering::Relaxed);
        self.last_change.store(now, Ordering::Relaxed);
    }

    fn ran_out_of_time(&self) {
        self.out_of_time.fetch_min(self.now(), Ordering::Relaxed);
    }

    fn reported(&self, evaluations: usize) {
        self.sent.fetch_add(evaluations, Ordering::Relaxed);
        self.reports.fetch_add(1, Ordering::Relaxed);
        self.last_report.store(self.now(), Ordering::Relaxed);
    }

    /// One line: where a sweep's time went, and what the deadline left of it.
    fn summary(&self, deadline: Option<Instant>) -> String {
        let at = |ms: &AtomicU64| match ms.load(Ordering::Relaxed) {
            NEVER => "never".to_owned(),
            ms => format!("{:.1} s", ms as f64 / 1000.0),
        };
        let left = match deadline {
            Some(deadline) => {
                format!(
                    "; {:.1} s left before the deadline",
                    deadline.saturating_duration_since(Instant::now()).as_secs_f64()
                )
            }
            None => String::new(),
        };
        format!(
            "sweep: {} groups in {} pages, the last read at {}; {} change calls, the first at {}, the last at {}; first change given up for time at {}; {} evaluations in {} PutEvaluations calls, the last at {}{left}",
            self.read.load(Ordering::Relaxed),
            self.pages.load(Ordering::Relaxed),
            at(&self.last_read),
            self.changes.load(Ordering::Relaxed),
            at(&self.first_change),
            at(&self.last_change),
            at(&self.out_of_time),
            self.sent.load(Ordering::Relaxed),
            self.reports.load(Ordering::Relaxed),
            at(&self.last_report),
        )
    }
}

/// DescribeSecurityGroups answers at most this many groups a page.
const GROUPS_PER_PAGE: usize = 1000;

/// Kept before the deadline for reporting: the answer reaching Lambda and one slow call.
const REPORT_RESERVE: Duration = Duration::from_millis(300);
/// Kept per PutEvaluations call (100 evaluations), made one after another: Config answers in
/// tens of milliseconds; 100 ms leaves room for a retry. 5,000 groups: 5 s of a 60 s timeout,
/// less what a sweep has reported while it changed groups.
const PER_REPORT: Duration = Duration::from_millis(100);
/// Between the last change started and the reports: the changes in flight (at most
/// [`CHANGES_IN_FLIGHT`], one round trip each, tens of milliseconds on AWS) finish, with room
/// for a retry. Short, because nothing depends on it for safety: a call still unanswered at
/// `answer_by` is given up and its group reported as not fixed yet; and every token of the
/// quota refilled meanwhile is one change fewer for the next run.
const DRAIN: Duration = Duration::from_millis(300);

impl Budget<'static> {
    /// The budget of an invocation that reports `evaluations` evaluations before `deadline`.
    pub fn new(deadline: Option<Instant>, evaluations: usize) -> Self {
        Budget { deadline, fixed: evaluations, tally: None }
    }
}

impl<'a> Budget<'a> {
    /// The budget of a sweep whose evaluations `tally` counts.
    pub fn counted(deadline: Option<Instant>, tally: &'a Tally) -> Self {
        Budget { deadline, fixed: 0, tally: Some(tally) }
    }

    /// When unanswered calls and re-reads are given up; `None` without a deadline.
    pub fn answer_by(&self) -> Option<Instant> {
        let deadline = self.deadline?;
        let unreported = self.tally.map_or(self.fixed, Tally::unreported);
        let batches = u32::try_from(unreported.div_ceil(EVALUATIONS_PER_CALL)).unwrap_or(u32::MAX);
        let reserve = REPORT_RESERVE.saturating_add(PER_REPORT.saturating_mul(batches));
        Some(deadline.checked_sub(reserve).unwrap_or_else(Instant::now))
    }

    /// The last instant a change may start; `None` without a deadline.
    pub fn changes_until(&self) -> Option<Instant> {
        self.answer_by().map(|by| by.checked_sub(DRAIN).unwrap_or(by))
    }

    /// Time left until `answer_by`; `None` without a deadline.
    fn left(&self) -> Option<Duration> {
        self.answer_by().map(|by| by.saturating_duration_since(Instant::now()))
    }

    /// A change call is made now.
    fn change_started(&self) {
        if let Some(tally) = self.tally {
            tally.change_started();
        }
    }

    /// A change was given up for want of time.
    fn ran_out_of_time(&self) {
        if let Some(tally) = self.tally {
            tally.ran_out_of_time();
        }
    }
}

impl<E: Ec2, C: Evaluations> Handler<E, C> {
    /// A handler using the baseline compiled from `policy/required-ingress.json`.
    pub fn new(ec2: E, config: C) -> Result<Self, HandlerError> {
        let baseline = embedded_baseline().map_err(HandlerError::Baseline)?;
        if baseline.is_empty() {
            return Err(HandlerError::Baseline(RuleError(
                "it holds no rule; an empty baseline would strip every group".into(),
            )));
        }
        Ok(Handler {
            ec2,
            config,
            baseline,
            api_call_parameters: None,
            rules_denied: AtomicBool::new(false),
            pacer: Some(Pacer::new(Rate::EC2_DEFAULT)),
        })
    }

    /// Paces the change calls to this rate per API (`None`: not at all, the SDK's adaptive
    /// retry mode does). Default: EC2's, [`Rate::EC2_DEFAULT`].
    pub fn with_pacing(mut self, rate: Option<Rate>) -> Self {
        self.pacer = rate.map(Pacer::new);
        self
    }

    /// The rule parameters applied to API-call events (JSON, as Config passes them).
    pub fn with_api_call_parameters(mut self, parameters: Option<String>) -> Self {
        self.api_call_parameters = parameters;
        self
    }

    /// The EC2 client.
    pub fn ec2(&self) -> &E {
        &self.ec2
    }

    /// The Config client.
    pub fn config(&self) -> &C {
        &self.config
    }

    /// Handles one event: from Config, or an EC2 API call from EventBridge.
    pub async fn handle(&self, event: serde_json::Value) -> Result<Outcome, HandlerError> {
        self.handle_until(event, None).await
    }

    /// Handles one event, answering before `deadline` (the Lambda context's): no change starts
    /// within the margin kept for reporting ([`Budget`]), and a drifted group left unchanged is
    /// reported `NON_COMPLIANT` saying the next evaluation fixes it.
    pub async fn handle_until(
        &self,
        event: serde_json::Value,
        deadline: Option<Instant>,
    ) -> Result<Outcome, HandlerError> {
        let parsed = match Invocation::parse(&event)? {
            Invocation::Config(parsed) => parsed,
            Invocation::ApiCall(call) => return self.handle_api_call(&event, call, deadline).await,
        };
        let parameters = Parameters::parse(parsed.rule_parameters.as_deref())?;
        if parameters.debug {
            info!("event: {event}");
        }
        let required = parameters.required_ingress.clone().unwrap_or_else(|| self.baseline.clone());
        let mut outcome = Outcome::default();
        match &parsed.message {
            Message::ItemChange(resource) | Message::OversizedItemChange(resource) => {
                let (compliance, annotation) = match not_applicable(resource, parsed.event_left_scope) {
                    Some(annotation) => (Compliance::NotApplicable, annotation),
                    None => {
                        let budget = Budget::new(deadline, 1);
                        match recorded_group(&parsed.message) {
                            Some(group) => self.check_item(group, &required, &parameters, &mut outcome, budget).await?,
                            None => {
                                let id = &resource.resource_id;
                                self.check_group(id, &required, &parameters, &mut outcome, budget).await?
                            }
                        }
                    }
                };
                let record = EvaluationRecord {
                    compliance_resource_type: resource.resource_type.clone(),
                    compliance_resource_id: resource.resource_id.clone(),
                    compliance_type: compliance,
                    annotation,
                    ordering_timestamp: resource.capture_time,
                };
                outcome.evaluations.push(record);
                self.report(&parsed.result_token, &outcome.evaluations).await?;
            }
            Message::Scheduled { notification_time } => {
                let token = &parsed.result_token;
                self.sweep(*notification_time, token, &required, &parameters, &mut outcome, deadline).await?;
            }
        }
        Ok(outcome)
    }

    /// The fast path: remediates the groups an API call changed, exactly as for a Config event,
    /// and reports nothing (there is no result token; Config's own evaluation follows).
    async fn handle_api_call(
        &self,
        event: &serde_json::Value,
        call: ApiCall,
        deadline: Option<Instant>,
    ) -> Result<Outcome, HandlerError> {
        let parameters = Parameters::parse(self.api_call_parameters.as_deref())?;
        if parameters.debug {
            info!("event: {event}");
        }
        let mut outcome = Outcome::default();
        if let Some(code) = &call.error_code {
            info!("ignoring the failed call {} ({code}): it changed nothing", call.event_name);
            return Ok(outcome);
        }
        let required = parameters.required_ingress.clone().unwrap_or_else(|| self.baseline.clone());
        let mut groups = call.groups.clone();
        if groups.is_empty() && !call.group_names.is_empty() {
            // A change by group name (default VPC) whose answer names no group id.
            let names = call.group_names.join(", ");
            groups = self
                .ec2
                .group_ids_named(&call.group_names)
                .await
                .map_err(|e| HandlerError::aws(&format!("(named {names})"), e))?;
            if groups.is_empty() {
                info!("{}: no security group is named {names} any more; nothing to check", call.event_name);
            }
        }
        let budget = Budget::new(deadline, 0);
        for group in &groups {
            let (compliance, annotation) =
                self.check_group(group, &required, &parameters, &mut outcome, budget).await?;
            info!("{} on {group}: {compliance} {annotation}", call.event_name);
        }
        Ok(outcome)
    }

    /// Evaluates every group of the region, read a page of 1,000 groups a call. The drifted
    /// groups of the first page are changed while the other pages are read, those of the other
    /// pages after; groups that need no change are reported once a hundred are ready, the
    /// changed ones at the end: every group read is reported, in as many batches of 100 as at
    /// the end. What is left to report is what the changes leave time for ([`Budget`]), so
    /// a report sent early is time given back to the changes.
    async fn sweep(
        &self,
        time: DateTime,
        token: &str,
        required: &[Rule],
        parameters: &Parameters,
        outcome: &mut Outcome,
        deadline: Option<Instant>,
    ) -> Result<(), HandlerError> {
        let tally = Tally::default();
        let budget = Budget::counted(deadline, &tally);
        let record = |(group_id, compliance, annotation): &Evaluated| EvaluationRecord {
            compliance_resource_type: SECURITY_GROUP.to_owned(),
            compliance_resource_id: group_id.clone(),
            compliance_type: *compliance,
            annotation: annotation.clone(),
            ordering_timestamp: time,
        };
        // Every group read, in read order; `ready`: those whose result is final and not yet sent.
        let mut results: Vec<Evaluated> = Vec::new();
        let mut ready: Vec<usize> = Vec::new();
        let mut report_failure = None;

        let first = self.ec2.describe_groups_page(None).await.map_err(all_groups)?;
        let next_token = first.next_token.clone();
        let (first, more) = self.split(first, required, parameters, &mut results, &mut ready);
        tally.page_read(results.len(), more);
        // Each page's drifted groups are changed while the pages after it are read, evaluated
        // and their unchanged groups reported (a hundred at a time): the changes wait for no
        // page but their own, and EC2's quota refills into changes rather than into a full bucket.
        let (pages, drifted_pages) = mpsc::unbounded::<Drifted>();
        let read_and_report = async {
            // Moved in: the changes end once the last page read is sent, or a read failed.
            let pages = pages;
            let mut next_token = next_token;
            for _ in 1..MAX_PAGES {
                // What the last page read holds that needs no change, while its drift is changed.
                if report_failure.is_none() {
                    let early: Vec<EvaluationRecord> =
                        take_batches(&mut ready).iter().map(|i| record(&results[*i])).collect();
                    if let Err(err) = self.report_batches(token, &early, &tally).await {
                        report_failure = Some(err);
                    }
                }
                let Some(page_token) = next_token.take() else { break };
                let page = self.ec2.describe_groups_page(Some(page_token)).await.map_err(all_groups)?;
                next_token = page.next_token.clone();
                let before = results.len();
                let (drifted, more) = self.split(page, required, parameters, &mut results, &mut ready);
                tally.page_read(results.len() - before, more);
                // Refused only when the changes already ended on an error, which the sweep returns.
                let _ = pages.unbounded_send(drifted);
            }
            match next_token {
                None => Ok(()),
                Some(_) => Err(all_groups(AwsError::new(
                    "DescribeSecurityGroups",
                    ErrorKind::Other,
                    "more than 1,000 pages of security groups",
                ))),
            }
        };
        let change_pages = async {
            let mut finished = Vec::new();
            let mut drifted = stream::iter([first]).chain(drifted_pages);
            while let Some(page) = drifted.next().await {
                finished.extend(self.change_drifted(page, required, parameters, outcome, budget).await?);
            }
            Ok::<_, HandlerError>(finished)
        };
        let (read, changed) = future::join(read_and_report, change_pages).await;
        let finished = place(&mut results, changed?);
        let read_failure = read.err();

        let later = results.iter().filter(|(_, _, a)| a.starts_with(NOT_YET)).count();
        if later > 0 {
            info!("{later} drifted groups left for the next evaluation: no time for their changes within EC2's request quota before the deadline");
        }
        ready.extend(finished);
        ready.sort_unstable();
        outcome.evaluations = results.iter().map(record).collect();
        if report_failure.is_none() {
            let last: Vec<EvaluationRecord> = ready.iter().map(|i| record(&results[*i])).collect();
            if let Err(err) = self.report_batches(token, &last, &tally).await {
                report_failure = Some(err);
            }
        }
        info!("{}", tally.summary(deadline));
        match (read_failure, report_failure) {
            (Some(err), _) | (None, Some(err)) => Err(err),
            (None, None) => Ok(()),
        }
    }

    /// Evaluates a page of groups into `results` (in order), putting the index of each group
    /// whose result is final — no change needed, or unreadable and never changed — in `ready`.
    /// Returns the drifted groups to change, and whether the page says more follow.
    fn split(
        &self,
        page: GroupPage,
        required: &[Rule],
        parameters: &Parameters,
        results: &mut Vec<Evaluated>,
        ready: &mut Vec<usize>,
    ) -> (Drifted, bool) {
        let mut drifted = Drifted::default();
        for (group_id, err) in page.unreadable {
            warn!("{err}");
            if !group_id.is_empty() {
                ready.push(results.len());
                results.push((group_id, Compliance::NonCompliant, truncate(format!("Not changed: {}", err.message))));
            }
        }
        let (evaluated, changes) = self.evaluate_all(page.groups, required, parameters);
        let offset = results.len();
        let mut changes = changes.into_iter().peekable();
        for (k, result) in evaluated.into_iter().enumerate() {
            match changes.next_if(|(at, _)| *at == k) {
                Some((_, group)) => {
                    drifted.groups.push((drifted.results.len(), group));
                    drifted.at.push(offset + k);
                    drifted.results.push(result.clone());
                }
                None => ready.push(offset + k),
            }
            results.push(result);
        }
        (drifted, page.next_token.is_some())
    }

    /// Changes the drifted groups of a sweep: their final results, with where they belong.
    async fn change_drifted(
        &self,
        drifted: Drifted,
        required: &[Rule],
        parameters: &Parameters,
        outcome: &mut Outcome,
        budget: Budget<'_>,
    ) -> Result<Vec<(usize, Evaluated)>, HandlerError> {
        if drifted.groups.is_empty() {
            return Ok(Vec::new());
        }
        let results = self.change(drifted.results, drifted.groups, None, required, parameters, outcome, budget).await?;
        Ok(drifted.at.into_iter().zip(results).collect())
    }

    /// Reports evaluations in batches of 100, counting each batch Config accepted.
    async fn report_batches(
        &self,
        token: &str,
        evaluations: &[EvaluationRecord],
        tally: &Tally,
    ) -> Result<(), HandlerError> {
        for batch in evaluations.chunks(EVALUATIONS_PER_CALL) {
            self.report(token, batch).await?;
            tally.reported(batch.len());
        }
        Ok(())
    }

    /// Enforces the baseline on the group as the configuration item recorded it: the change
    /// is made from the item, with no read first (one round trip and the report: two). EC2's
    /// answers say whether the item was still the group's state; when they say it was not (a
    /// rule to revoke is not there, one to add already is, or an answer leaves a rule in doubt)
    /// the group is read from EC2 and checked as for an item without configuration. A later
    /// change of the group brings a later item, so acting on this one is what Config asks of a
    /// change-triggered rule; rules the item does not show are left to that evaluation.
    async fn check_item(
        &self,
        group: GroupState,
        required: &[Rule],
        parameters: &Parameters,
        outcome: &mut Outcome,
        budget: Budget<'_>,
    ) -> Result<(Compliance, String), HandlerError> {
        if parameters.debug {
            info!(
                "security group as the configuration item records it: {}, tags {:?}, ip_permissions {}",
                group.group_id,
                group.tags,
                permissions_json(group.ingress.iter().map(|o| &o.rule))
            );
        }
        let decision = evaluate(&group, required, parameters);
        if decision.plan.is_empty() {
            return Ok((decision.compliance, decision.annotation));
        }
        let id = group.group_id;
        let (before_revoked, before_authorized) = (outcome.revoked.len(), outcome.authorized.len());
        let (revoked, authorized) = self.apply(&id, &decision.plan, budget).await;
        let Settled { done, left, failed, .. } = settle(&id, &decision.plan, revoked, authorized, outcome);
        if let Some(err) = failed {
            return failed_change(&id, err, &left);
        }
        if done == decision.plan {
            return Ok((Compliance::NonCompliant, describe_changes("Revoked", "authorized", &decision.plan)));
        }
        info!("{id}: EC2's answers show the configuration item is older than the group; reading the group");
        let (compliance, annotation) = self.check_group(&id, required, parameters, outcome, budget).await?;
        let changed_now = matches!(compliance, Compliance::Compliant)
            || annotation.starts_with("Revoked ")
            || annotation.starts_with("Authorized ");
        if done.is_empty() || !changed_now {
            return Ok((compliance, annotation));
        }
        // What this invocation changed, from the item and after the read.
        let named = |changes: &[Change]| -> Vec<String> {
            changes.iter().filter(|c| c.group_id == id).flat_map(|c| c.rules.iter().cloned()).collect()
        };
        let revoke = named(&outcome.revoked[before_revoked..]);
        let authorize = named(&outcome.authorized[before_authorized..]);
        Ok((Compliance::NonCompliant, describe_named("Revoked", "authorized", &revoke, &authorize)))
    }

    /// Reads one group and enforces the baseline on it.
    async fn check_group(
        &self,
        group_id: &str,
        required: &[Rule],
        parameters: &Parameters,
        outcome: &mut Outcome,
        budget: Budget<'_>,
    ) -> Result<(Compliance, String), HandlerError> {
        // The rule ids are read at the same time as the group: one round trip, not two, when
        // the group needs a change. In report mode nothing changes and the ids are not needed.
        let ids = [group_id.to_owned()];
        let (group, with_ids) = match parameters.mode {
            Mode::Report => (self.ec2.describe_group(group_id).await, None),
            // Denied before in this process: revoke by permission without asking again.
            Mode::Remediate if self.rules_denied.load(Ordering::Relaxed) => {
                (self.ec2.describe_group(group_id).await, None)
            }
            Mode::Remediate => {
                let (group, ids) =
                    future::join(self.ec2.describe_group(group_id), self.ec2.ingress_rules_of(&ids)).await;
                if matches!(&ids, Err(err) if err.kind == ErrorKind::AccessDenied) {
                    self.rules_denied.store(true, Ordering::Relaxed);
                }
                (group, Some(ids))
            }
        };
        match group {
            Ok(Some(group)) => {
                let mut results =
                    self.enforce_all(vec![group], with_ids, required, parameters, outcome, budget).await?;
                match results.pop() {
                    Some((_, compliance, annotation)) => Ok((compliance, annotation)),
                    None => Ok((Compliance::NotApplicable, gone(group_id))),
                }
            }
            Ok(None) => Ok((Compliance::NotApplicable, gone(group_id))),
            Err(err) if err.kind == ErrorKind::Unreadable => {
                warn!("{err}");
                Ok((Compliance::NonCompliant, truncate(format!("Not changed: {}", err.message))))
            }
            Err(err) => denied(group_id, err),
        }
    }

    /// Evaluates groups read completely and, in remediate mode, changes the drifted ones to the
    /// baseline — by rule id when `with_ids` holds their rule ids, else by permission — a few
    /// groups at a time. A change is verified from EC2's answers; only the groups whose answers
    /// leave a rule in doubt are read again. Returns one result per group, in order.
    async fn enforce_all(
        &self,
        groups: Vec<GroupState>,
        with_ids: Option<Result<RulesByGroup, AwsError>>,
        required: &[Rule],
        parameters: &Parameters,
        outcome: &mut Outcome,
        budget: Budget<'_>,
    ) -> Result<Vec<Evaluated>, HandlerError> {
        let (results, drifted) = self.evaluate_all(groups, required, parameters);
        self.change(results, drifted, with_ids, required, parameters, outcome, budget).await
    }

    /// Evaluates groups read completely: one result per group, in order, and the drifted ones
    /// with the index of their result.
    fn evaluate_all(
        &self,
        groups: Vec<GroupState>,
        required: &[Rule],
        parameters: &Parameters,
    ) -> (Vec<Evaluated>, Vec<(usize, GroupState)>) {
        let mut results: Vec<Evaluated> = Vec::with_capacity(groups.len());
        let mut drifted = Vec::new();
        for group in groups {
            if parameters.debug {
                info!(
                    "security group definition: {}, tags {:?}, ip_permissions {}",
                    group.group_id,
                    group.tags,
                    permissions_json(group.ingress.iter().map(|o| &o.rule))
                );
            }
            let decision = evaluate(&group, required, parameters);
            results.push((group.group_id.clone(), decision.compliance, decision.annotation));
            if !decision.plan.is_empty() {
                drifted.push((results.len() - 1, group));
            }
        }
        (results, drifted)
    }

    /// Changes the drifted groups to the baseline (see [`Self::enforce_all`]); `results` holds
    /// every group's result as evaluated, `drifted` the groups to change with their index there.
    #[allow(clippy::too_many_arguments)]
    async fn change(
        &self,
        mut results: Vec<Evaluated>,
        drifted: Vec<(usize, GroupState)>,
        with_ids: Option<Result<RulesByGroup, AwsError>>,
        required: &[Rule],
        parameters: &Parameters,
        outcome: &mut Outcome,
        budget: Budget<'_>,
    ) -> Result<Vec<Evaluated>, HandlerError> {
        if drifted.is_empty() {
            return Ok(results);
        }

        // A single group is revoked by rule id (its ids were read with it). A sweep revokes by
        // permission, from the page it read: the rules are atomic, so a permission names
        // exactly one rule, and the verifying read catches anything missed. Reading the ids too
        // would cost a call per 200 groups that scans the region's rules.
        let ids: Vec<String> = drifted.iter().map(|(_, g)| g.group_id.clone()).collect();
        let mut with_ids = match with_ids {
            None => None,
            Some(Ok(read)) => Some(read),
            Some(Err(err)) if err.kind == ErrorKind::AccessDenied => {
                warn!(
                    "{} is not allowed ({}); revoking by permission instead of by rule id, and not asking again while this process lives",
                    err.iam_action(),
                    err.message
                );
                None
            }
            Some(Err(err)) => return Err(HandlerError::aws(&batch_name(&ids), err)),
        };
        let mut work = Vec::new();
        for (index, group) in drifted {
            let current = match with_ids.as_mut().map(|read| read.remove(&group.group_id)) {
                None => group,
                Some(Some(Ok(ingress))) => GroupState { ingress, ..group },
                Some(None) => GroupState { ingress: Vec::new(), ..group },
                Some(Some(Err(err))) => {
                    warn!("{err}");
                    results[index].1 = Compliance::NonCompliant;
                    results[index].2 = truncate(format!("Not changed: {}", err.message));
                    continue;
                }
            };
            let decision = evaluate(&current, required, parameters);
            results[index].1 = decision.compliance;
            results[index].2 = decision.annotation;
            if !decision.plan.is_empty() {
                work.push((index, current.group_id, decision.plan));
            }
        }

        // Apply, a few groups at a time, in order.
        let applied: Vec<_> = stream::iter(work)
            .map(|(index, id, plan)| async move {
                let result = self.apply(&id, &plan, budget).await;
                (index, id, plan, result)
            })
            .buffered(CHANGES_IN_FLIGHT)
            .collect()
            .await;
        let mut changed = Vec::new();
        let mut failure = None;
        for (index, id, plan, (revoked, authorized)) in applied {
            let Settled { done, doubt, left, failed } = settle(&id, &plan, revoked, authorized, outcome);
            match failed {
                None => {
                    // The group was read completely and the plan turns what was read into the
                    // baseline: with every rule confirmed changed (or already so), it holds
                    // exactly the baseline. Nothing changed: the read was older than the group.
                    (results[index].1, results[index].2) = if done.is_empty() {
                        (Compliance::Compliant, COMPLIANT_ANNOTATION.to_owned())
                    } else {
                        (Compliance::NonCompliant, describe_changes("Revoked", "authorized", &done))
                    };
                    if !doubt.is_empty() {
                        info!("{id}: EC2's answers do not confirm {}; reading the group again", doubt_text(&doubt));
                        changed.push((index, id));
                    }
                }
                Some(err) => match failed_change(&id, err, &left) {
                    Ok(result) => (results[index].1, results[index].2) = result,
                    Err(err) => {
                        failure.get_or_insert(err);
                    }
                },
            }
        }
        if let Some(err) = failure {
            return Err(err);
        }
        if !changed.is_empty() {
            self.verify(changed, required, &mut results, budget).await?;
        }
        Ok(results)
    }

    /// Reads the groups whose change EC2's answers left in doubt until each holds exactly the
    /// baseline, bounded: EC2's reads lag its writes ("Eventual consistency in the Amazon EC2
    /// API"), so a read right after the change may still show the rules before it.
    async fn verify(
        &self,
        mut pending: Vec<(usize, String)>,
        required: &[Rule],
        results: &mut [(String, Compliance, String)],
        budget: Budget<'_>,
    ) -> Result<(), HandlerError> {
        let mut wait = VERIFY_FIRST_WAIT;
        for attempt in 1..=VERIFY_READS {
            let ids: Vec<String> = pending.iter().map(|(_, id)| id.clone()).collect();
            let after = match self.ec2.describe_groups(&ids).await {
                Ok(after) => after,
                Err(err) => {
                    let (compliance, annotation) = denied(&batch_name(&ids), err)?;
                    for (index, _) in &pending {
                        results[*index].1 = compliance;
                        results[*index].2 = annotation.clone();
                    }
                    return Ok(());
                }
            };
            let mut unverified: BTreeMap<String, AwsError> = after.unreadable.into_iter().collect();
            let mut after: BTreeMap<String, GroupState> =
                after.groups.into_iter().map(|g| (g.group_id.clone(), g)).collect();
            let last = attempt == VERIFY_READS;
            let mut still = Vec::new();
            for (index, id) in pending {
                match after.remove(&id) {
                    // Changed, then read back with a rule this function cannot interpret.
                    None if unverified.contains_key(&id) => {
                        let message = unverified.remove(&id).map(|e| e.message).unwrap_or_default();
                        warn!("{id} could not be verified: {message}");
                        results[index].1 = Compliance::NonCompliant;
                        results[index].2 = truncate(format!("Not verified: {message}"));
                    }
                    None => {
                        results[index].1 = Compliance::NotApplicable;
                        results[index].2 = gone(&id);
                    }
                    Some(group) => {
                        let left = plan(&group.ingress, required);
                        if left.is_empty() {
                            continue;
                        }
                        if !last {
                            still.push((index, id));
                            continue;
                        }
                        warn!("{id} still differs from the baseline after remediation");
                        results[index].1 = Compliance::NonCompliant;
                        results[index].2 =
                            describe_changes("Remediation incomplete: still extra", "still missing", &left);
                    }
                }
            }
            if still.is_empty() {
                return Ok(());
            }
            pending = still;
            if budget.left().is_some_and(|left| left <= wait) {
                for (index, id) in &pending {
                    info!("{id}: no time left to read the change again; the next evaluation checks it");
                    results[*index].1 = Compliance::NonCompliant;
                    results[*index].2 = truncate(format!(
                        "{NOT_YET} the change is not confirmed yet (out of time); the next evaluation checks it: {}",
                        results[*index].2
                    ));
                }
                return Ok(());
            }
            info!(
                "waiting for EC2's reads to show the change to {} ({wait:?}, read {attempt} of {VERIFY_READS})",
                batch_name(&pending.iter().map(|(_, id)| id.clone()).collect::<Vec<_>>())
            );
            self.ec2.pause(wait).await;
            wait = wait.saturating_mul(2);
        }
        Ok(())
    }

    /// Revokes the extra rules and authorizes the missing ones, at once: the two touch
    /// disjoint rules. Each is `None` when there was nothing to do.
    async fn apply(&self, id: &str, changes: &Plan, budget: Budget<'_>) -> (Applied<ObservedRule>, Applied<Rule>) {
        let revoke = async {
            if changes.revoke.is_empty() {
                return None;
            }
            Some(
                self.paced(REVOKE, budget, move || {
                    let rules = permissions_json(changes.revoke.iter().map(|o| &o.rule));
                    info!("revoking for {id}, ip_permissions {rules}");
                    self.ec2.revoke(id, &changes.revoke)
                })
                .await,
            )
        };
        let authorize = async {
            if changes.authorize.is_empty() {
                return None;
            }
            Some(
                self.paced(AUTHORIZE, budget, move || {
                    info!("authorizing for {id}, ip_permissions {}", permissions_json(&changes.authorize));
                    self.ec2.authorize(id, &changes.authorize)
                })
                .await,
            )
        };
        future::join(revoke, authorize).await
    }

    /// One change call, paced to EC2's quota for `api`, started only while the budget allows it
    /// and given up (as `OutOfTime`) when unanswered at `answer_by`. A call EC2 throttled through
    /// all of the SDK's retries is made again, paced from an empty bucket, while time remains.
    async fn paced<T, F, Fut>(&self, api: &'static str, budget: Budget<'_>, call: F) -> Result<T, AwsError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, AwsError>>,
    {
        let out_of_time = |why: &str| {
            budget.ran_out_of_time();
            AwsError::new(api, ErrorKind::OutOfTime, why)
        };
        loop {
            let now = Instant::now();
            match &self.pacer {
                Some(pacer) => match pacer.book(&[api], now, budget.changes_until()) {
                    None => {
                        return Err(out_of_time("no token of EC2's request quota before the invocation's deadline"))
                    }
                    Some(wait) if !wait.is_zero() => self.ec2.pause(wait).await,
                    Some(_) => {}
                },
                None if budget.changes_until().is_some_and(|until| now >= until) => {
                    return Err(out_of_time("not started: the invocation's deadline is near"))
                }
                None => {}
            }
            budget.change_started();
            let result = match budget.left() {
                None => call().await,
                Some(left) => match future::select(pin!(call()), pin!(self.ec2.pause(left))).await {
                    Either::Left((result, _)) => result,
                    Either::Right(_) => return Err(out_of_time("not answered before the invocation's deadline")),
                },
            };
            match result {
                Err(err) if err.kind == ErrorKind::Throttled => {
                    if let Some(pacer) = &self.pacer {
                        pacer.drained(api, Instant::now());
                    }
                    if budget.changes_until().is_none_or(|until| Instant::now() >= until) {
                        return Err(err);
                    }
                    warn!("{err}; trying again once EC2's request quota allows");
                }
                other => return other,
            }
        }
    }

    async fn report(&self, token: &str, evaluations: &[EvaluationRecord]) -> Result<(), HandlerError> {
        for batch in evaluations.chunks(EVALUATIONS_PER_CALL) {
            for e in batch {
                info!("evaluation {} {}: {}", e.compliance_resource_id, e.compliance_type, e.annotation);
            }
            let failed = self.config.put_evaluations(token, batch).await.map_err(|e| {
                let group = match batch {
                    [one] => one.compliance_resource_id.clone(),
                    _ => format!("{} groups", batch.len()),
                };
                HandlerError::aws(&group, e)
            })?;
            if failed > 0 {
                return Err(HandlerError::EvaluationsRejected { failed, sent: batch.len() });
            }
        }
        Ok(())
    }
}

/// The annotation when the rule does not apply, or `None` when it does.
/// The group the message's configuration item records, when it has one this function can act
/// on; else `None` (the group is read from EC2), saying why when the item has a configuration.
fn recorded_group(message: &Message) -> Option<GroupState> {
    let Message::ItemChange(resource) = message else { return None };
    let configuration = resource.configuration.as_ref()?;
    match item::group_of(&resource.resource_id, configuration) {
        Ok(group) => Some(group),
        Err(why) => {
            info!("{}: {why}; reading the group from EC2 instead", resource.resource_id);
            None
        }
    }
}

fn not_applicable(resource: &ResourceRef, left_scope: bool) -> Option<String> {
    if resource.resource_type != SECURITY_GROUP {
        return Some(format!("The rule doesn't apply to resources of type {}.", resource.resource_type));
    }
    if resource.is_deleted() {
        return Some("The configuration item was deleted and therefore cannot be validated.".to_owned());
    }
    if left_scope {
        return Some("The resource left the rule's scope.".to_owned());
    }
    None
}

/// The answer to one of the two change calls of a group, if it was made.
type Applied<T> = Option<Result<Answered<T>, AwsError>>;

/// What one group's change calls did, from their answers; what they did is recorded in
/// `outcome`.
struct Settled {
    /// The plan less what the answers say was already so or do not confirm.
    done: Plan,
    /// What the answers do not confirm.
    doubt: Plan,
    /// The part of the plan whose call failed, and the first failure.
    left: Plan,
    failed: Option<AwsError>,
}

fn settle(
    id: &str,
    plan: &Plan,
    revoked: Applied<ObservedRule>,
    authorized: Applied<Rule>,
    outcome: &mut Outcome,
) -> Settled {
    let mut settled = Settled { done: Plan::default(), doubt: Plan::default(), left: Plan::default(), failed: None };
    match revoked {
        Some(Ok(answer)) => {
            settled.done.revoke = plan
                .revoke
                .iter()
                .filter(|o| !answer.already.contains(o) && !answer.unconfirmed.contains(o))
                .cloned()
                .collect();
            settled.doubt.revoke = answer.unconfirmed;
        }
        Some(Err(err)) => {
            settled.left.revoke = plan.revoke.clone();
            settled.failed = Some(err);
        }
        None => {}
    }
    match authorized {
        Some(Ok(answer)) => {
            settled.done.authorize = plan
                .authorize
                .iter()
                .filter(|r| !answer.already.contains(r) && !answer.unconfirmed.contains(r))
                .cloned()
                .collect();
            settled.doubt.authorize = answer.unconfirmed;
        }
        Some(Err(err)) => {
            settled.left.authorize = plan.authorize.clone();
            settled.failed.get_or_insert(err);
        }
        None => {}
    }
    if !settled.done.revoke.is_empty() {
        outcome.revoked.push(Change {
            group_id: id.to_owned(),
            rules: settled.done.revoke.iter().map(|o| o.rule.to_string()).collect(),
        });
    }
    if !settled.done.authorize.is_empty() {
        outcome.authorized.push(Change {
            group_id: id.to_owned(),
            rules: settled.done.authorize.iter().map(ToString::to_string).collect(),
        });
    }
    settled
}

/// Reads of a group whose change EC2's answers left in doubt, and the wait before the second
/// (doubling): 0.25 + 0.5 + 1 s, inside the few seconds EC2's reads usually lag its writes.
pub const VERIFY_READS: u32 = 4;
const VERIFY_FIRST_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

/// The result of a group whose change call failed with `err`; `left` is what it did not change.
fn failed_change(id: &str, err: AwsError, left: &Plan) -> Result<(Compliance, String), HandlerError> {
    match err.kind {
        ErrorKind::GroupNotFound => Ok((Compliance::NotApplicable, gone(id))),
        // Out of time, or throttled until the time ran out: the next evaluation fixes it.
        ErrorKind::OutOfTime | ErrorKind::Throttled => {
            info!("{id}: {err}");
            Ok((Compliance::NonCompliant, not_yet(left)))
        }
        _ => denied(id, err),
    }
}

fn doubt_text(doubt: &Plan) -> String {
    describe_changes("the revoke of", "the authorize of", doubt)
}

/// The change calls' APIs, as EC2 names them (and meters them: a bucket each).
const REVOKE: &str = "RevokeSecurityGroupIngress";
const AUTHORIZE: &str = "AuthorizeSecurityGroupIngress";

/// How the annotation of a drifted group left for the next evaluation begins.
pub const NOT_YET: &str = "Not fixed yet:";

/// The annotation of a drifted group whose change did not fit in this invocation: the drift,
/// and that the next evaluation fixes it (Config keeps at most 256 characters).
fn not_yet(left: &Plan) -> String {
    truncate(format!(
        "{NOT_YET} out of time within EC2's request quota; the next evaluation fixes it. {}",
        describe_changes("Extra", "missing", left)
    ))
}

/// At most this many groups are being changed at once: enough to hide the latency of one call,
/// few enough to stay clear of EC2's request-rate limits for mutating calls.
pub const CHANGES_IN_FLIGHT: usize = 4;

fn gone(group_id: &str) -> String {
    format!("The security group {group_id} no longer exists.")
}

fn batch_name(ids: &[String]) -> String {
    match ids {
        [one] => one.clone(),
        _ => format!("{} groups", ids.len()),
    }
}

/// AccessDenied becomes NON_COMPLIANT naming the missing permission; anything else fails the
/// invocation so that Config retries.
fn denied(group_id: &str, err: AwsError) -> Result<(Compliance, String), HandlerError> {
    if err.kind == ErrorKind::AccessDenied {
        warn!("{err} on {group_id}");
        return Ok((
            Compliance::NonCompliant,
            truncate(format!(
                "Could not check {group_id}: {} was denied; grant it to the function's role.",
                err.iam_action()
            )),
        ));
    }
    Err(HandlerError::aws(group_id, err))
}

/// A group's result: its id, compliance and annotation.
type Evaluated = (String, Compliance, String);

/// DescribeSecurityGroups pages a sweep reads at most.
const MAX_PAGES: usize = 1000;

/// A page's drifted groups: each one's result as evaluated and its index among all results.
#[derive(Default)]
struct Drifted {
    /// Index `k` of `results` and `groups` is the group at `at[k]` of the sweep's results.
    at: Vec<usize>,
    results: Vec<Evaluated>,
    groups: Vec<(usize, GroupState)>,
}

fn all_groups(err: AwsError) -> HandlerError {
    HandlerError::aws("(all groups of the region)", err)
}

/// The whole hundreds of `ready` (in order), taken out of it.
fn take_batches(ready: &mut Vec<usize>) -> Vec<usize> {
    let whole = ready.len() / EVALUATIONS_PER_CALL * EVALUATIONS_PER_CALL;
    ready.drain(..whole).collect()
}

/// Puts changed groups' final results in place; returns their indices.
fn place(results: &mut [Evaluated], changed: Vec<(usize, Evaluated)>) -> Vec<usize> {
    changed
        .into_iter()
        .map(|(at, result)| {
            results[at] = result;
            at
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweeps_budget_keeps_time_for_what_is_left_to_report_and_gets_it_back_per_report() {
        let deadline = Instant::now() + Duration::from_secs(60);
        let kept = |budget: &Budget<'_>| budget.answer_by().map(|by| deadline - by);
        let tally = Tally::default();
        let budget = Budget::counted(Some(deadline), &tally);
        // A first page of 1,000 with more to come: a page's worth is held for the next.
        tally.page_read(1000, true);
        assert_eq!(kept(&budget), Some(REPORT_RESERVE + PER_REPORT * 20));
        tally.page_read(450, false);
        assert_eq!(kept(&budget), Some(REPORT_RESERVE + PER_REPORT * 15));
        for _ in 0..10 {
            tally.reported(100);
        }
        assert_eq!(kept(&budget), Some(REPORT_RESERVE + PER_REPORT * 5));
        assert_eq!(budget.changes_until().zip(budget.answer_by()).map(|(c, a)| a - c), Some(DRAIN));
        // One evaluation; no deadline, no limit.
        assert_eq!(kept(&Budget::new(Some(deadline), 1)), Some(REPORT_RESERVE + PER_REPORT));
        assert_eq!(Budget::new(None, 1).changes_until(), None);
    }

    #[test]
    fn a_sweeps_closing_line_says_where_its_time_went() {
        let tally = Tally::default();
        assert!(tally.summary(None).contains("0 change calls, the first at never"), "{}", tally.summary(None));
        tally.page_read(1000, true);
        tally.page_read(5, false);
        tally.change_started();
        tally.change_started();
        tally.reported(100);
        let line = tally.summary(Some(Instant::now() + Duration::from_secs(10)));
        assert!(
            line.starts_with(
                "sweep: 1005 groups in 2 pages, the last read at 0.0 s; 2 change calls, the first at 0.0 s"
            ),
            "{line}"
        );
        assert!(
            line.contains("first change given up for time at never; 100 evaluations in 1 PutEvaluations calls"),
            "{line}"
        );
        assert!(line.ends_with(" s left before the deadline"), "{line}");
        tally.ran_out_of_time();
        assert!(!tally.summary(None).contains("given up for time at never"));
    }
}
