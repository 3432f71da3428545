//! The record of every in-scope group's ingress before the rule first changed it, and the
//! restore `down` runs from it.
//!
//! # Where the record lives
//!
//! An object, [`KEY`], in the lab's bucket of the region ([`crate::bucket::in_region`]): it is in
//! AWS, so `down` from any machine finds it; the bucket is the lab's alone (tagged, deleted by
//! `down`), so the record goes with the lab and needs no resource of its own; and S3 holds a
//! document of any size, where a tag on each group holds 256 characters. `down` restores
//! before it deletes the bucket, and keeps the bucket while a group it should restore could
//! not be, so that `down` again can still restore it.
//!
//! # What is recorded, and when
//!
//! `up` records, after the bucket exists and before the rule does, each group of the region's
//! ingress in compact form (`tcp/22@10.0.0.0/8`, `all@sg-…`); `lab open-ports` records the
//! default group before it changes it. A group already in the record is never recorded again,
//! so a later `up` (or `open-ports`) never overwrites what the account was before the lab.
//! Rule descriptions are not recorded (the function's rules carry none), nor groups holding a
//! rule the function cannot read (the function never changes those).
//!
//! # What `down` puts back
//!
//! A group is restored when it holds exactly the baseline, that is what the lab left; a group
//! changed since by someone else is left as it is and reported; a group deleted meanwhile is
//! reported. A missing or unreadable record restores nothing and fails `down` (exit 1).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sg_function::aws::Ec2;
use sg_function::evaluate::{plan, GroupState};
use sg_function::rules::Rule;
use tracing::info;

use crate::error::{code_of, Error, Result};
use crate::lab::Lab;
use crate::report::{Action, Step};

/// The record's key in the lab's bucket.
pub const KEY: &str = "sg-monitoring-lab/ingress-before-up.json";
const KIND: &str = "group-record";
const VERSION: u32 = 1;

/// Each group's ingress before the lab changed it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub version: u32,
    /// Group id → its ingress rules in compact form, sorted.
    pub groups: BTreeMap<String, Vec<String>>,
}

/// What the bucket holds.
#[derive(Debug)]
pub enum Stored {
    /// No bucket: the lab is not deployed in this region.
    NoBucket,
    NoRecord,
    Record(Record),
}

fn unreadable(why: impl std::fmt::Display) -> Error {
    Error::Failed(format!(
        "the record of the groups' ingress (s3 object {KEY}) is unreadable: {why}; nothing was restored from it"
    ))
}

/// Parses a record; every rule must parse.
pub fn parse(body: &[u8]) -> Result<Record> {
    let record: Record = serde_json::from_slice(body).map_err(unreadable)?;
    if record.version != VERSION {
        return Err(unreadable(format!("version {} (this deploy reads version {VERSION})", record.version)));
    }
    for (group, rules) in &record.groups {
        for rule in rules {
            rule.parse::<Rule>().map_err(|e| unreadable(format!("{group}: {e}")))?;
        }
    }
    Ok(record)
}

/// Reads the record from the lab's bucket.
pub async fn read(lab: &Lab) -> Result<Stored> {
    let bucket = &lab.names.bucket;
    let got = lab.clients.s3.get_object().bucket(bucket).key(KEY).send().await;
    let object = match got {
        Ok(object) => object,
        Err(err) => {
            return match code_of(&err) {
                Some("NoSuchBucket") => Ok(Stored::NoBucket),
                Some("NoSuchKey") => Ok(Stored::NoRecord),
                _ => Err(Error::aws(format!("reading s3://{bucket}/{KEY}"), err)),
            }
        }
    };
    let body = object.body.collect().await.map_err(|e| unreadable(format!("reading its body: {e}")))?;
    parse(&body.into_bytes()).map(Stored::Record)
}

/// Adds to the record the groups it does not hold yet; never changes a group already there.
pub async fn record(lab: &Lab, groups: &[GroupState], dry_run: bool) -> Result<Step> {
    let name = format!("s3://{}/{KEY}", lab.names.bucket);
    let mut record = match if dry_run { Ok(Stored::NoRecord) } else { read(lab).await } {
        Ok(Stored::Record(record)) => record,
        Ok(Stored::NoRecord | Stored::NoBucket) => Record { version: VERSION, groups: BTreeMap::new() },
        Err(err) => {
            return Err(Error::Failed(format!(
                "{err}; `up` never overwrites it: delete it (`aws s3 rm {name}`) only if you know each group's ingress before the lab, then run `deploy up` again"
            )))
        }
    };
    let existed = !record.groups.is_empty();
    let mut added = 0;
    for group in groups {
        record.groups.entry(group.group_id.clone()).or_insert_with(|| {
            added += 1;
            let mut rules: Vec<String> = group.ingress.iter().map(|o| o.rule.to_string()).collect();
            rules.sort();
            rules.dedup();
            rules
        });
    }
    if added == 0 {
        return Ok(Step::new(KIND, name, Action::Unchanged).detail(format!("{} groups recorded", record.groups.len())));
    }
    let action = if existed { Action::Update } else { Action::Create };
    let detail = format!("ingress of {added} group{} before the lab", if added == 1 { "" } else { "s" });
    if dry_run {
        return Ok(Step::new(KIND, name, action).detail(detail));
    }
    info!("recording the ingress of {added} groups in {name}");
    let body = serde_json::to_vec_pretty(&record).map_err(|e| Error::Failed(format!("encoding {name}: {e}")))?;
    lab.clients
        .s3
        .put_object()
        .bucket(&lab.names.bucket)
        .key(KEY)
        .content_type("application/json")
        .body(body.into())
        .send()
        .await
        .map_err(|e| Error::aws(format!("writing {name}"), e))?;
    Ok(Step::new(KIND, name, action).detail(detail))
}

/// What `down` did with the groups; `keep_bucket`: a group could not be restored now, and the
/// bucket holds its record.
#[derive(Debug, Default)]
pub struct Restored {
    pub steps: Vec<Step>,
    pub keep_bucket: bool,
}

fn rules(list: &[String]) -> Vec<Rule> {
    // Parsed by `parse` already.
    let mut rules: Vec<Rule> = list.iter().filter_map(|r| r.parse().ok()).collect();
    rules.sort();
    rules.dedup();
    rules
}

fn compact<'a>(rules: impl IntoIterator<Item = &'a Rule>) -> String {
    let list: Vec<String> = rules.into_iter().map(ToString::to_string).collect();
    if list.is_empty() {
        "nothing".into()
    } else {
        list.join(", ")
    }
}

/// Puts each recorded group back when it holds what the lab left (`baseline`). `deployed`: the
/// lab was there when `down` began, so a missing record is an error.
pub async fn restore(lab: &Lab, baseline: &[Rule], deployed: bool, dry_run: bool) -> Restored {
    let name = format!("s3://{}/{KEY}", lab.names.bucket);
    // The record is only ever in the lab's own bucket: a bucket of the same name that is not
    // the lab's (another region's, another owner's) holds none, and is never read.
    let stored = match crate::bucket::ownership(lab).await {
        Ok(crate::bucket::Ownership::Ours) => read(lab).await,
        Ok(crate::bucket::Ownership::Absent | crate::bucket::Ownership::Foreign(_)) => Ok(Stored::NoBucket),
        Err(err) => Err(err),
    };
    let record = match stored {
        Ok(Stored::Record(record)) => record,
        Ok(Stored::NoBucket) if !deployed => return Restored::default(),
        Ok(Stored::NoRecord) if !deployed => return Restored::default(),
        Ok(Stored::NoBucket | Stored::NoRecord) => {
            let step = Step::new(KIND, name, Action::Failed).detail(
                "missing: the groups' ingress before the lab is unknown, so no group was restored; check each group by hand",
            );
            return Restored { steps: vec![step], keep_bucket: false };
        }
        Err(err) => {
            let detail = format!("{err}; check each group by hand");
            return Restored { steps: vec![Step::new(KIND, name, Action::Failed).detail(detail)], keep_bucket: false };
        }
    };
    let baseline: BTreeSet<&Rule> = baseline.iter().collect();
    let ec2 = &lab.clients.ec2;
    let mut restored = Restored::default();
    for (group, recorded) in &record.groups {
        let recorded = rules(recorded);
        let step = |action| Step::new("group", group.as_str(), action);
        let fail = |e: sg_function::aws::AwsError| step(Action::Failed).detail(format!("not restored: {e}"));
        match ec2.describe_group(group).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                restored.steps.push(step(Action::Absent).detail("deleted since `up`: nothing to restore"));
                continue;
            }
            Err(err) => {
                restored.keep_bucket = true;
                restored.steps.push(fail(err));
                continue;
            }
        }
        let current = match ec2.ingress_rules(group).await {
            Ok(current) => current,
            Err(err) => {
                restored.keep_bucket = true;
                restored.steps.push(fail(err));
                continue;
            }
        };
        let now: BTreeSet<&Rule> = current.iter().map(|o| &o.rule).collect();
        if now == recorded.iter().collect::<BTreeSet<_>>() {
            continue; // as before the lab: nothing to do, nothing to report
        }
        if now != baseline {
            let detail = format!(
                "left as it is: changed since the lab left it (now {}; before the lab {})",
                compact(now.iter().copied()),
                compact(&recorded)
            );
            restored.steps.push(step(Action::Kept).detail(detail));
            continue;
        }
        let changes = plan(&current, &recorded);
        let detail = format!("restored to {}", compact(&recorded));
        if dry_run {
            restored.steps.push(step(Action::Update).detail(detail));
            continue;
        }
        info!("restoring the ingress of {group}");
        let mut result = Ok(());
        if !changes.authorize.is_empty() {
            result = ec2.authorize(group, &changes.authorize).await.map(|_| ());
        }
        if result.is_ok() && !changes.revoke.is_empty() {
            result = ec2.revoke(group, &changes.revoke).await.map(|_| ());
        }
        match result {
            Ok(()) => restored.steps.push(step(Action::Update).detail(detail)),
            Err(err) => {
                restored.keep_bucket = true;
                restored.steps.push(fail(err));
            }
        }
    }
    restored
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_parses_only_when_every_rule_does() {
        let good = br#"{"version":1,"groups":{"sg-1":["tcp/22@10.0.0.0/8","all@sg-1"]}}"#;
        assert_eq!(parse(good).unwrap().groups["sg-1"].len(), 2);
        let garbled = parse(b"{\"version\":1,\"groups\":{\"sg-1\":[\"tcp/22@nowhere\"]}}").unwrap_err();
        assert!(garbled.to_string().contains("unreadable: sg-1"), "{garbled}");
        assert!(parse(b"not json").unwrap_err().to_string().contains(KEY));
        assert!(parse(br#"{"version":9,"groups":{}}"#).unwrap_err().to_string().contains("version 9"));
    }
}
