//! `lab open-ports` (lab step 2): the default VPC group's inbound becomes exactly HTTP, HTTPS,
//! SMTPS and IMAPS from anywhere — 80 and 443 are what the rule requires, 465 and 993 the
//! violations it must remove. Idempotent: a second run changes nothing.

use sg_function::aws::Ec2;
use sg_function::evaluate::{plan, GroupState};
use sg_function::rules::Rule;

use crate::error::{Error, Result};
use crate::lab::Lab;
use crate::report::{Action, Report, Step};
use crate::status::default_group_id;

/// The student's four inbound rows.
pub const LAB_INGRESS: [&str; 4] = ["tcp/80@0.0.0.0/0", "tcp/443@0.0.0.0/0", "tcp/465@0.0.0.0/0", "tcp/993@0.0.0.0/0"];

pub async fn open_ports(lab: &Lab) -> Result<Report> {
    let group = default_group_id(lab)
        .await?
        .ok_or_else(|| Error::Usage(format!("region {} has no default VPC, so there is no default security group to open; create one with `aws ec2 create-default-vpc`", lab.region)))?;
    let wanted: Vec<Rule> = LAB_INGRESS
        .iter()
        .map(|r| r.parse::<Rule>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::Failed(e.to_string()))?;
    let ec2 = &lab.clients.ec2;
    let fail = |e: sg_function::aws::AwsError| Error::Failed(format!("{group}: {e}"));
    let current = ec2.ingress_rules(&group).await.map_err(fail)?;
    let changes = plan(&current, &wanted);
    let mut steps = Vec::new();
    if !changes.is_empty() {
        // The default group as it was before the lab, for `down` (crate::snapshot); only where
        // the lab's bucket is, and never over an earlier record of it.
        // An unreadable record stays as it is (`down` reports it); the exercise goes on.
        let here = crate::bucket::in_region(lab).await?;
        let state = GroupState { group_id: group.clone(), ingress: current.clone(), ..GroupState::default() };
        let recorded = match crate::snapshot::read(&here).await {
            Ok(crate::snapshot::Stored::NoBucket) => None,
            Ok(_) => Some(crate::snapshot::record(&here, &[state], false).await),
            Err(err) => Some(Err(err)),
        };
        match recorded {
            Some(Ok(step)) if step.action != Action::Unchanged => steps.push(step),
            Some(Err(err)) => tracing::warn!("{err}; `down` will not restore {group} from before this change"),
            _ => {}
        }
    }
    if !changes.revoke.is_empty() {
        ec2.revoke(&group, &changes.revoke).await.map_err(fail)?;
        let rules: Vec<String> = changes.revoke.iter().map(|o| o.rule.to_string()).collect();
        steps.push(Step::new("inbound", &group, Action::Update).detail(format!("revoked {}", rules.join(", "))));
    }
    if !changes.authorize.is_empty() {
        ec2.authorize(&group, &changes.authorize).await.map_err(fail)?;
        let rules: Vec<String> = changes.authorize.iter().map(ToString::to_string).collect();
        steps.push(Step::new("inbound", &group, Action::Update).detail(format!("authorized {}", rules.join(", "))));
    }
    if steps.is_empty() {
        steps.push(Step::new("inbound", &group, Action::Unchanged).detail(LAB_INGRESS.join(", ")));
    }
    Ok(Report {
        command: "lab open-ports",
        account: lab.account.clone(),
        region: lab.region.clone(),
        dry_run: false,
        steps,
        desired: None,
        impact: None,
    })
}
