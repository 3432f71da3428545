//! The SDK clients' implementations of [`Ec2`] and [`Evaluations`] (feature `sdk`).

use std::collections::BTreeMap;
use std::future::Future;

use aws_sdk_config::types::{ComplianceType, Evaluation};
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::operation::describe_security_group_rules::DescribeSecurityGroupRulesOutput;
use aws_sdk_ec2::operation::describe_security_groups::DescribeSecurityGroupsOutput;
use aws_sdk_ec2::types::{
    Filter, IpPermission, IpRange, Ipv6Range, PrefixListId, SecurityGroup, SecurityGroupRule, UserIdGroupPair,
};

use crate::aws::{
    Answered, AwsError, Ec2, ErrorKind, EvaluationRecord, Evaluations, GroupPage, RulesByGroup, GROUPS_PER_FILTER,
};
use crate::evaluate::GroupState;
use crate::rules::{GroupPeer, ObservedRule, Permission, Rule, RuleError, Source};

impl AwsError {
    /// Classifies an SDK error by its code.
    pub fn from_sdk<E>(operation: &'static str, err: aws_sdk_ec2::error::SdkError<E>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let code = err.code().map(str::to_owned);
        let kind = match code.as_deref() {
            Some("UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException") => ErrorKind::AccessDenied,
            Some("InvalidGroup.NotFound") => ErrorKind::GroupNotFound,
            Some(
                "InvalidPermission.Duplicate" | "InvalidPermission.NotFound" | "InvalidSecurityGroupRuleId.NotFound",
            ) => ErrorKind::AlreadyDone,
            Some("RequestLimitExceeded" | "Throttling" | "ThrottlingException") => ErrorKind::Throttled,
            _ => ErrorKind::Other,
        };
        let message = match (err.code(), err.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.to_owned(),
            _ => aws_smithy_types::error::display::DisplayErrorContext(&err).to_string(),
        };
        AwsError { operation, kind, code, message }
    }
}

impl Ec2 for aws_sdk_ec2::Client {
    async fn describe_groups(&self, group_ids: &[String]) -> Result<GroupPage, AwsError> {
        const OP: &str = "DescribeSecurityGroups";
        let mut read = GroupPage::default();
        // A group-id filter, not GroupIds: a group deleted meanwhile is absent, not an error.
        for chunk in group_ids.chunks(GROUPS_PER_FILTER) {
            let filter = Filter::builder().name("group-id").set_values(Some(chunk.to_vec())).build();
            let fetch = |token| {
                let request =
                    self.describe_security_groups().filters(filter.clone()).max_results(1000).set_next_token(token);
                async move { request.send().await.map_err(|e| AwsError::from_sdk(OP, e)) }
            };
            let complete = all_pages(fetch, |output: DescribeSecurityGroupsOutput| {
                add_groups(OP, output.security_groups(), &mut read, Some(chunk));
                next(output.next_token())
            })
            .await?;
            if !complete {
                return Err(too_many_pages(OP, chunk));
            }
        }
        Ok(read)
    }

    async fn describe_groups_page(&self, next_token: Option<String>) -> Result<GroupPage, AwsError> {
        const OP: &str = "DescribeSecurityGroups";
        let output = self
            .describe_security_groups()
            .max_results(1000)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(OP, e))?;
        let mut page = GroupPage { next_token: next(output.next_token()), ..GroupPage::default() };
        add_groups(OP, output.security_groups(), &mut page, None);
        Ok(page)
    }

    async fn ingress_rules_of(&self, group_ids: &[String]) -> Result<RulesByGroup, AwsError> {
        const OP: &str = "DescribeSecurityGroupRules";
        let mut read: RulesByGroup = group_ids.iter().map(|id| (id.clone(), Ok(Vec::new()))).collect();
        for chunk in group_ids.chunks(GROUPS_PER_FILTER) {
            let filter = Filter::builder().name("group-id").set_values(Some(chunk.to_vec())).build();
            let fetch = |token| {
                let request = self
                    .describe_security_group_rules()
                    .filters(filter.clone())
                    .max_results(1000)
                    .set_next_token(token);
                async move { request.send().await.map_err(|e| AwsError::from_sdk(OP, e)) }
            };
            let complete = all_pages(fetch, |output: DescribeSecurityGroupRulesOutput| {
                for rule in output.security_group_rules() {
                    if rule.is_egress() != Some(false) {
                        continue;
                    }
                    // Only the groups asked for, whatever the endpoint answers.
                    let Some(Ok(rules)) = rule.group_id().and_then(|id| read.get_mut(id)) else { continue };
                    match observed_rule(rule) {
                        Ok(observed) => rules.push(observed),
                        Err(err) => {
                            let id = rule.group_id().unwrap_or_default().to_owned();
                            let err = unreadable(OP, &id, err);
                            read.insert(id, Err(err));
                        }
                    }
                }
                next(output.next_token())
            })
            .await?;
            if !complete {
                // Every group of the chunk may have rules on the pages not read.
                for id in chunk {
                    read.insert(id.clone(), Err(too_many_pages(OP, std::slice::from_ref(id))));
                }
            }
        }
        Ok(read)
    }

    async fn revoke(&self, group_id: &str, rules: &[ObservedRule]) -> Result<Answered<ObservedRule>, AwsError> {
        match revoke_once(self, group_id, rules).await {
            // One vanished rule fails the whole batch (and revokes nothing): the rest one by one.
            Err(err) if err.kind == ErrorKind::AlreadyDone && rules.len() > 1 => {
                let mut answered = Answered::default();
                for rule in rules {
                    answered.merge(revoke_once(self, group_id, std::slice::from_ref(rule)).await?);
                }
                Ok(answered)
            }
            result => result,
        }
    }

    async fn authorize(&self, group_id: &str, rules: &[Rule]) -> Result<Answered<Rule>, AwsError> {
        match authorize_once(self, group_id, rules).await {
            // One existing rule fails the whole batch (and adds nothing): the rest one by one.
            Err(err) if err.kind == ErrorKind::AlreadyDone && rules.len() > 1 => {
                let mut answered = Answered::default();
                for rule in rules {
                    answered.merge(authorize_once(self, group_id, std::slice::from_ref(rule)).await?);
                }
                Ok(answered)
            }
            result => result,
        }
    }

    async fn group_ids_named(&self, names: &[String]) -> Result<Vec<String>, AwsError> {
        const OP: &str = "DescribeSecurityGroups";
        let mut ids = Vec::new();
        // One name per call: a name that does not exist fails the whole call.
        for name in names {
            match self.describe_security_groups().group_names(name).send().await {
                Ok(found) => ids.extend(found.security_groups().iter().filter_map(|g| g.group_id().map(str::to_owned))),
                Err(err) => {
                    let err = AwsError::from_sdk(OP, err);
                    if err.kind != ErrorKind::GroupNotFound {
                        return Err(err);
                    }
                }
            }
        }
        Ok(ids)
    }

    async fn pause(&self, duration: std::time::Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// One RevokeSecurityGroupIngress. By rule id an unknown id fails the call
/// (`InvalidSecurityGroupRuleId.NotFound`); since ids are unique, that rule is gone. By
/// permission, a permission that matches nothing either fails the call
/// (`InvalidPermission.NotFound`, any VPC but the default) or comes back in
/// `UnknownIpPermissions` (default VPC): the rule may still be there, so it is unconfirmed.
async fn revoke_once(
    client: &aws_sdk_ec2::Client,
    group_id: &str,
    rules: &[ObservedRule],
) -> Result<Answered<ObservedRule>, AwsError> {
    const OP: &str = "RevokeSecurityGroupIngress";
    let request = client.revoke_security_group_ingress().group_id(group_id);
    let ids: Option<Vec<String>> = rules.iter().map(|o| o.id.clone()).collect();
    let by_id = ids.is_some();
    let request = match ids {
        Some(ids) => request.set_security_group_rule_ids(Some(ids)),
        None => request.set_ip_permissions(Some(rules.iter().map(observed_permission).collect())),
    };
    let output = match request.send().await {
        Ok(output) => output,
        Err(err) => {
            let err = AwsError::from_sdk(OP, err);
            return match err.kind {
                ErrorKind::AlreadyDone if rules.len() == 1 && by_id => {
                    Ok(Answered { already: rules.to_vec(), ..Answered::default() })
                }
                ErrorKind::AlreadyDone if rules.len() == 1 => Ok(doubt(rules)),
                _ => Err(err),
            };
        }
    };
    if output.r#return() == Some(false) {
        return Ok(doubt(rules));
    }
    let mut unknown = Vec::new();
    for permission in output.unknown_ip_permissions() {
        // A permission EC2 echoes in a form this function cannot read: doubt every rule.
        match permission_of(permission).expand() {
            Ok(expanded) => unknown.extend(expanded),
            Err(_) => return Ok(doubt(rules)),
        }
    }
    // Newer answers also list what was revoked: a rule id asked for and not listed is in doubt.
    let revoked: Vec<&str> =
        output.revoked_security_group_rules().iter().filter_map(|r| r.security_group_rule_id()).collect();
    let unconfirmed = rules
        .iter()
        .filter(|o| {
            unknown.contains(&o.rule)
                || (by_id && !revoked.is_empty() && o.id.as_deref().is_some_and(|id| !revoked.contains(&id)))
        })
        .cloned()
        .collect();
    Ok(Answered { unconfirmed, ..Answered::default() })
}

fn doubt<T: Clone>(rules: &[T]) -> Answered<T> {
    Answered { unconfirmed: rules.to_vec(), ..Answered::default() }
}

/// One AuthorizeSecurityGroupIngress: every rule asked for must come back among the
/// `SecurityGroupRules` added; a single rule answered `InvalidPermission.Duplicate` exists.
async fn authorize_once(
    client: &aws_sdk_ec2::Client,
    group_id: &str,
    rules: &[Rule],
) -> Result<Answered<Rule>, AwsError> {
    const OP: &str = "AuthorizeSecurityGroupIngress";
    let permissions = rules.iter().map(ip_permission).collect();
    let output = match client
        .authorize_security_group_ingress()
        .group_id(group_id)
        .set_ip_permissions(Some(permissions))
        .send()
        .await
    {
        Ok(output) => output,
        Err(err) => {
            let err = AwsError::from_sdk(OP, err);
            return match err.kind {
                ErrorKind::AlreadyDone if rules.len() == 1 => {
                    Ok(Answered { already: rules.to_vec(), ..Answered::default() })
                }
                _ => Err(err),
            };
        }
    };
    if output.r#return() == Some(false) {
        return Ok(doubt(rules));
    }
    let added: Vec<Rule> = output
        .security_group_rules()
        .iter()
        .filter(|r| r.is_egress() != Some(true))
        .filter_map(|r| observed_rule(r).ok().map(|o| o.rule))
        .collect();
    Ok(Answered { unconfirmed: rules.iter().filter(|r| !added.contains(r)).cloned().collect(), ..Answered::default() })
}

impl Evaluations for aws_sdk_config::Client {
    async fn put_evaluations(&self, result_token: &str, evaluations: &[EvaluationRecord]) -> Result<usize, AwsError> {
        const OP: &str = "PutEvaluations";
        let evaluations = evaluations
            .iter()
            .map(|e| {
                Evaluation::builder()
                    .compliance_resource_type(&e.compliance_resource_type)
                    .compliance_resource_id(&e.compliance_resource_id)
                    .compliance_type(ComplianceType::from(e.compliance_type.as_str()))
                    .annotation(&e.annotation)
                    .ordering_timestamp(e.ordering_timestamp)
                    .build()
                    .map_err(|err| {
                        AwsError::new(
                            OP,
                            ErrorKind::Other,
                            format!("evaluation of {}: {err}", e.compliance_resource_id),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output =
            self.put_evaluations().result_token(result_token).set_evaluations(Some(evaluations)).send().await.map_err(
                |err| {
                    let code = aws_sdk_config::error::ProvideErrorMetadata::code(&err).map(str::to_owned);
                    let kind = match code.as_deref() {
                        Some("AccessDeniedException" | "AccessDenied") => ErrorKind::AccessDenied,
                        _ => ErrorKind::Other,
                    };
                    let message = aws_smithy_types::error::display::DisplayErrorContext(&err).to_string();
                    AwsError { operation: OP, kind, code, message }
                },
            )?;
        Ok(output.failed_evaluations().len())
    }
}

/// Pages read per call before the function gives up on reading completely.
const MAX_PAGES: usize = 100;

/// Fetches pages (`fetch` gets each page's token) until the last one, handing each to `page`,
/// which returns the next token. `Ok(false)` when [`MAX_PAGES`] pages left some unread.
async fn all_pages<O, F, Fut>(mut fetch: F, mut page: impl FnMut(O) -> Option<String>) -> Result<bool, AwsError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<O, AwsError>>,
{
    let mut token = None;
    for _ in 0..MAX_PAGES {
        token = page(fetch(token.take()).await?);
        if token.is_none() {
            return Ok(true);
        }
    }
    Ok(false)
}

fn next(token: Option<&str>) -> Option<String> {
    token.filter(|t| !t.is_empty()).map(str::to_owned)
}

fn too_many_pages(operation: &'static str, group_ids: &[String]) -> AwsError {
    AwsError::new(
        operation,
        ErrorKind::Unreadable,
        format!("{}: more than {MAX_PAGES} pages of answers; refusing to act on a partial read", group_ids.join(", ")),
    )
}

/// Adds the groups of one answer to `page`: each read completely, or unreadable. With `asked`,
/// only those groups.
fn add_groups(operation: &'static str, groups: &[SecurityGroup], page: &mut GroupPage, asked: Option<&[String]>) {
    for group in groups {
        let id = group.group_id().unwrap_or_default();
        if asked.is_some_and(|asked| !asked.iter().any(|a| a == id)) {
            continue;
        }
        match group_state(operation, group) {
            Ok(state) => page.groups.push(state),
            Err(err) => page.unreadable.push((id.to_owned(), err)),
        }
    }
}

fn unreadable(operation: &'static str, group_id: &str, err: RuleError) -> AwsError {
    AwsError::new(
        operation,
        ErrorKind::Unreadable,
        format!("{group_id} has a rule this function cannot interpret ({err}); refusing to act on it"),
    )
}

fn group_state(operation: &'static str, group: &SecurityGroup) -> Result<GroupState, AwsError> {
    let group_id = group.group_id().unwrap_or_default().to_owned();
    if group_id.is_empty() {
        return Err(AwsError::new(operation, ErrorKind::Unreadable, "a security group without GroupId"));
    }
    let tags: BTreeMap<String, String> = group
        .tags()
        .iter()
        .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned())))
        .collect();
    let mut ingress = Vec::new();
    for permission in group.ip_permissions() {
        let rules = permission_of(permission).expand().map_err(|e| unreadable(operation, &group_id, e))?;
        ingress.extend(rules.into_iter().map(|rule| {
            let peer = match &rule.source {
                Source::Group(id) => permission
                    .user_id_group_pairs()
                    .iter()
                    .find(|pair| pair.group_id() == Some(id.as_str()))
                    .and_then(|pair| GroupPeer::of(pair.user_id(), pair.vpc_id(), pair.vpc_peering_connection_id())),
                _ => None,
            };
            ObservedRule { peer, ..ObservedRule::from(rule) }
        }));
    }
    Ok(GroupState { group_id, tags, ingress })
}

fn permission_of(p: &IpPermission) -> Permission {
    use crate::rules::{GroupPair, IpRange as R4, Ipv6Range as R6, PrefixListId as Pl};
    Permission {
        ip_protocol: p.ip_protocol().unwrap_or("-1").to_owned(),
        from_port: p.from_port(),
        to_port: p.to_port(),
        ip_ranges: p
            .ip_ranges()
            .iter()
            .filter_map(|r| Some(R4 { cidr_ip: r.cidr_ip()?.to_owned(), description: None }))
            .collect(),
        ipv6_ranges: p
            .ipv6_ranges()
            .iter()
            .filter_map(|r| Some(R6 { cidr_ipv6: r.cidr_ipv6()?.to_owned(), description: None }))
            .collect(),
        prefix_list_ids: p
            .prefix_list_ids()
            .iter()
            .filter_map(|r| Some(Pl { prefix_list_id: r.prefix_list_id()?.to_owned(), description: None }))
            .collect(),
        user_id_group_pairs: p
            .user_id_group_pairs()
            .iter()
            .map(|pair| GroupPair { group_id: pair.group_id().map(str::to_owned), user_id: None, description: None })
            .collect(),
    }
}

fn observed_rule(rule: &SecurityGroupRule) -> Result<ObservedRule, RuleError> {
    let mut peer = None;
    let source = if let Some(cidr) = rule.cidr_ipv4() {
        Source::parse(cidr)?
    } else if let Some(cidr) = rule.cidr_ipv6() {
        Source::parse(cidr)?
    } else if let Some(pl) = rule.prefix_list_id() {
        Source::PrefixList(pl.to_owned())
    } else if let Some(group) = rule.referenced_group_info().and_then(|g| g.group_id()) {
        let info = rule.referenced_group_info();
        peer = info.and_then(|g| GroupPeer::of(g.user_id(), g.vpc_id(), g.vpc_peering_connection_id()));
        Source::Group(group.to_owned())
    } else {
        return Err(RuleError(format!("rule {} has no source", rule.security_group_rule_id().unwrap_or("?"))));
    };
    let rule_id = rule.security_group_rule_id().map(str::to_owned);
    Ok(ObservedRule {
        rule: Rule::new(rule.ip_protocol().unwrap_or("-1"), rule.from_port(), rule.to_port(), source)?,
        id: rule_id,
        peer,
    })
}

/// The SDK form of one observed rule, to revoke it by permission: a referenced group carries the
/// owner and peering EC2 described it with, or EC2 matches nothing (RevokeSecurityGroupIngress:
/// "the values that you specify … must match the existing rule's values exactly").
pub fn observed_permission(observed: &ObservedRule) -> IpPermission {
    let permission = ip_permission(&observed.rule);
    let (Source::Group(id), Some(peer)) = (&observed.rule.source, &observed.peer) else { return permission };
    let pair = UserIdGroupPair::builder()
        .group_id(id)
        .set_user_id(peer.user_id.clone())
        .set_vpc_id(peer.vpc_id.clone())
        .set_vpc_peering_connection_id(peer.vpc_peering_connection_id.clone())
        .build();
    IpPermission::builder()
        .set_ip_protocol(permission.ip_protocol().map(str::to_owned))
        .set_from_port(permission.from_port())
        .set_to_port(permission.to_port())
        .user_id_group_pairs(pair)
        .build()
}

/// The SDK form of one atomic rule.
pub fn ip_permission(rule: &Rule) -> IpPermission {
    let builder = IpPermission::builder()
        .ip_protocol(rule.protocol.api_name())
        .set_from_port(rule.ports.map(|(from, _)| from))
        .set_to_port(rule.ports.map(|(_, to)| to));
    let source = rule.source.to_string();
    match &rule.source {
        Source::Ipv4 { .. } => builder.ip_ranges(IpRange::builder().cidr_ip(source).build()),
        Source::Ipv6 { .. } => builder.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(source).build()),
        Source::PrefixList(id) => builder.prefix_list_ids(PrefixListId::builder().prefix_list_id(id).build()),
        Source::Group(id) => builder.user_id_group_pairs(UserIdGroupPair::builder().group_id(id).build()),
    }
    .build()
}
