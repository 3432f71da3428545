//! EC2's API as the front answers it: every request through [`crate::ec2`]'s answers (read lag,
//! what the change calls did), the default groups given AWS's self-referencing rule, and each
//! security-group change turned into Config's trigger and the CloudTrail-shaped event of
//! [`super::events`].

use std::sync::Arc;

use aws_sdk_ec2::types::{Filter, IpPermission, UserIdGroupPair};

use crate::api::config::Trigger;
use crate::behaviours::Behaviours;
use crate::config::log_error;
use crate::ec2;
use crate::http::{self, Request, Response};
use crate::{lock, Busy, Front};

/// Security-group operations that change what Config records.
pub(crate) const GROUP_CHANGES: [&str; 11] = [
    "CreateSecurityGroup",
    "DeleteSecurityGroup",
    "AuthorizeSecurityGroupIngress",
    "AuthorizeSecurityGroupEgress",
    "RevokeSecurityGroupIngress",
    "RevokeSecurityGroupEgress",
    "ModifySecurityGroupRules",
    "UpdateSecurityGroupRuleDescriptionsIngress",
    "UpdateSecurityGroupRuleDescriptionsEgress",
    "CreateTags",
    "DeleteTags",
];

impl Front {
    pub(crate) async fn ec2(
        self: &Arc<Self>,
        action: &str,
        account: &str,
        region: &str,
        request: &Request,
    ) -> Response {
        let behaviours = self.behaviours();
        if behaviours.ec2_quotas {
            let percent = behaviours.ec2_quota_percent;
            if let Some(throttled) = self.ec2_quotas.admit(percent, account, region, action, &request.form()) {
                return throttled;
            }
        }
        self.fix_default_groups(account, region).await;
        let lag = Behaviours::window(behaviours.ec2_read_lag_ms);
        let answer = self.ec2_answers.carry_out(&self.forwarder, action, account, region, request, lag).await;
        if GROUP_CHANGES.contains(&action) {
            // Buffer the answer: its XML feeds the CloudTrail event.
            let status = answer.status();
            let headers = answer.headers().clone();
            let body = http_body_util::BodyExt::collect(answer).await.map(|c| c.to_bytes()).unwrap_or_default();
            let text = String::from_utf8_lossy(&body).to_string();
            let front = self.clone();
            let (account_owned, region_owned) = (account.to_owned(), region.to_owned());
            let (action_owned, form) = (action.to_owned(), request.form());
            let guard = Busy::new(self.clone(), |front| &front.busy);
            tokio::spawn(async move {
                let _guard = guard;
                // Delivered once reads show the change, as EC2's read lag passes before it.
                ec2::after_read_lag(lag).await;
                let (account, region) = (&account_owned, &region_owned);
                front.deliver_api_call(account, region, &action_owned, &form, status.as_u16(), &text).await
            });
            let mut rebuilt = hyper::Response::new(http_body_util::Full::new(body));
            *rebuilt.status_mut() = status;
            *rebuilt.headers_mut() = headers;
            return self.after_ec2(action, account, region, request, rebuilt).await;
        }
        self.after_ec2(action, account, region, request, answer).await
    }

    pub(crate) async fn after_ec2(
        self: &Arc<Self>,
        action: &str,
        account: &str,
        region: &str,
        request: &Request,
        answer: Response,
    ) -> Response {
        if answer.status() != 200 {
            return answer;
        }
        if action == "CreateVpc" {
            lock(&self.fixed_regions).remove(&(account.to_owned(), region.to_owned()));
        }
        if GROUP_CHANGES.contains(&action) {
            let form = request.form();
            let mut groups: Vec<String> = form
                .iter()
                .filter(|(k, v)| (k == "GroupId" || k.starts_with("ResourceId.")) && v.starts_with("sg-"))
                .map(|(_, v)| v.clone())
                .collect();
            if action == "CreateSecurityGroup" {
                let body = http_body_util::BodyExt::collect(answer).await.map(|c| c.to_bytes()).unwrap_or_default();
                let text = String::from_utf8_lossy(&body).to_string();
                if let Some(id) = text.split("<groupId>").nth(1).and_then(|s| s.split('<').next()) {
                    groups.push(id.to_owned());
                }
                if !groups.is_empty() {
                    let (account, region) = (account.to_owned(), region.to_owned());
                    self.trigger(Trigger::GroupsChanged { account, region, groups });
                }
                return http::response(200, "text/xml", body);
            }
            if groups.is_empty() {
                if let Some((_, name)) = form.iter().find(|(k, _)| k == "GroupName") {
                    let ec2 = self.backend(account, region).ec2;
                    let found = ec2.describe_security_groups().group_names(name).send().await;
                    if let Ok(found) = found {
                        groups.extend(found.security_groups().iter().filter_map(|g| g.group_id().map(str::to_owned)));
                    }
                }
            }
            if !groups.is_empty() {
                let trigger = Trigger::GroupsChanged { account: account.to_owned(), region: region.to_owned(), groups };
                // Config records the change once reads show it: after EC2's read lag.
                match Behaviours::window(self.behaviours().ec2_read_lag_ms) {
                    None => self.trigger(trigger),
                    Some(lag) => {
                        let (front, guard) = (self.clone(), Busy::new(self.clone(), |front| &front.busy));
                        tokio::spawn(async move {
                            let _guard = guard;
                            ec2::after_read_lag(Some(lag)).await;
                            front.trigger(trigger);
                        });
                    }
                }
            }
        }
        answer
    }

    /// Gives every default group of the account's region AWS's self-referencing ingress rule.
    pub(crate) async fn fix_default_groups(&self, account: &str, region: &str) {
        let key = (account.to_owned(), region.to_owned());
        if !lock(&self.fixed_regions).insert(key.clone()) {
            return;
        }
        let ec2 = self.backend(account, region).ec2;
        let Some(groups) = log_error(
            "reading the default security groups",
            ec2.describe_security_groups()
                .filters(Filter::builder().name("group-name").values("default").build())
                .send()
                .await,
        ) else {
            lock(&self.fixed_regions).remove(&key);
            return;
        };
        for group in groups.security_groups() {
            let Some(id) = group.group_id() else { continue };
            let has_self =
                group.ip_permissions().iter().any(|p| p.user_id_group_pairs().iter().any(|u| u.group_id() == Some(id)));
            if !has_self {
                let permission = IpPermission::builder()
                    .ip_protocol("-1")
                    .user_id_group_pairs(UserIdGroupPair::builder().group_id(id).build())
                    .build();
                log_error(
                    "adding the default group's self-referencing rule",
                    ec2.authorize_security_group_ingress().group_id(id).ip_permissions(permission).send().await,
                );
            }
        }
    }
}
