//! The local AWS's EC2 answers as AWS gives them (`localaws/src/ec2.rs`): reads that lag a
//! change to a group's rules, and change calls that say what they did.

use std::time::{Duration, Instant};

use aws_sdk_ec2::error::SdkError;
use aws_sdk_ec2::operation::authorize_security_group_ingress::{
    AuthorizeSecurityGroupIngressError, AuthorizeSecurityGroupIngressOutput,
};
use aws_sdk_ec2::operation::revoke_security_group_ingress::{
    RevokeSecurityGroupIngressError, RevokeSecurityGroupIngressOutput,
};
use aws_sdk_ec2::types::{IpPermission, IpRange};

fn tcp(port: i32) -> IpPermission {
    IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(port)
        .to_port(port)
        .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
        .build()
}

async fn ports(ec2: &aws_sdk_ec2::Client, group: &str) -> Vec<i32> {
    let out = ec2.describe_security_groups().group_ids(group).send().await.unwrap();
    let mut ports: Vec<i32> =
        out.security_groups()[0].ip_permissions().iter().filter_map(|p| p.from_port()).filter(|p| *p > 0).collect();
    ports.sort();
    ports
}

/// AuthorizeSecurityGroupIngress of `permissions` on `group`.
async fn authorize(
    ec2: &aws_sdk_ec2::Client,
    group: &str,
    permissions: Vec<IpPermission>,
) -> Result<AuthorizeSecurityGroupIngressOutput, SdkError<AuthorizeSecurityGroupIngressError>> {
    ec2.authorize_security_group_ingress().group_id(group).set_ip_permissions(Some(permissions)).send().await
}

/// RevokeSecurityGroupIngress of `permissions` on `group`.
async fn revoke(
    ec2: &aws_sdk_ec2::Client,
    group: &str,
    permissions: Vec<IpPermission>,
) -> Result<RevokeSecurityGroupIngressOutput, SdkError<RevokeSecurityGroupIngressError>> {
    ec2.revoke_security_group_ingress().group_id(group).set_ip_permissions(Some(permissions)).send().await
}

/// The ports of the rules an answer names, sorted.
fn sorted<T>(rules: &[T], port: impl Fn(&T) -> Option<i32>) -> Vec<i32> {
    let mut ports: Vec<i32> = rules.iter().filter_map(port).collect();
    ports.sort();
    ports
}

/// A local AWS with these behaviours, and its data directory (moto.log).
async fn start(name: &str, behaviours: localaws::behaviours::Behaviours) -> (localaws::LocalAws, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("local-aws-test-{name}-{}", std::process::id()));
    let options = localaws::Options { port: 0, moto: deploy::local::moto_program(), data_dir: dir.clone(), behaviours };
    (localaws::start(options).await.unwrap(), dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_lag_changes_and_changes_say_what_they_did() {
    let behaviours = localaws::behaviours::Behaviours { ec2_read_lag_ms: 1_000, ..Default::default() };
    let (local, _) = start("ec2", behaviours).await;
    let ec2 = aws_sdk_ec2::Client::new(&testkit::sdk_config(&local.endpoint).await);
    let groups = ec2.describe_security_groups().group_names("default").send().await.unwrap();
    let group = groups.security_groups()[0].group_id().unwrap().to_owned();

    // Authorize answers every rule it added, not only the last permission's (moto).
    let added = authorize(&ec2, &group, vec![tcp(465), tcp(993)]).await.unwrap();
    assert_eq!(sorted(added.security_group_rules(), |r| r.from_port()), [465, 993]);
    // Right after the change, reads answer the group as it was before it.
    let changed = Instant::now();
    assert_eq!(ports(&ec2, &group).await, Vec::<i32>::new());
    while ports(&ec2, &group).await.is_empty() && changed.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(changed.elapsed() >= Duration::from_millis(900), "{:?}", changed.elapsed());
    assert_eq!(ports(&ec2, &group).await, [465, 993]);

    // Revoke answers the rules it removed; in the default VPC a permission that matches
    // nothing is no error but comes back in UnknownIpPermissions.
    let revoked = revoke(&ec2, &group, vec![tcp(465), tcp(8080)]).await.unwrap();
    assert_eq!(revoked.r#return(), Some(true));
    assert_eq!(sorted(revoked.revoked_security_group_rules(), |r| r.from_port()), [465]);
    assert_eq!(sorted(revoked.unknown_ip_permissions(), |p| p.from_port()), [8080]);
    // Reads lag this change too, and the rule listing with them.
    assert_eq!(ports(&ec2, &group).await, [465, 993]);
    let rules = ec2
        .describe_security_group_rules()
        .filters(aws_sdk_ec2::types::Filter::builder().name("group-id").values(&group).build())
        .send()
        .await
        .unwrap();
    assert!(rules.security_group_rules().iter().any(|r| r.from_port() == Some(465)));
}

/// The requests moto has served so far (its request log, `moto.log`).
fn moto_requests(dir: &std::path::Path) -> usize {
    std::fs::read_to_string(dir.join("moto.log")).unwrap_or_default().matches("\"POST / HTTP/1.1").count()
}

/// Without read lag a change is one moto call (`localaws/src/moto/server.py` makes moto's
/// Authorize and Revoke answer what they changed, all-or-nothing, as EC2's do), and the answers
/// are the same as with the lag: every rule added, every rule revoked (a referenced group by
/// id), a default VPC's unknown permissions; elsewhere a permission not found fails the whole
/// call and changes nothing, as does a duplicate in an Authorize.
#[tokio::test(flavor = "multi_thread")]
async fn without_read_lag_a_change_is_one_moto_call_and_changes_all_or_nothing() {
    use aws_sdk_ec2::error::ProvideErrorMetadata;
    use aws_sdk_ec2::types::UserIdGroupPair;
    let (local, dir) = start("one-call", Default::default()).await;
    let ec2 = aws_sdk_ec2::Client::new(&testkit::sdk_config(&local.endpoint).await);
    let log = std::fs::read_to_string(dir.join("moto.log")).unwrap();
    assert!(log.contains(localaws::ec2::MOTO_ANSWERS_CHANGES), "{log}");
    let groups = ec2.describe_security_groups().group_names("default").send().await.unwrap();
    let group = groups.security_groups()[0].group_id().unwrap().to_owned();

    let before = moto_requests(&dir);
    let added = authorize(&ec2, &group, vec![tcp(465), tcp(993)]).await.unwrap();
    // One for the change; the configuration worker the change triggers may have read once
    // by now too. The front's listings around a change made it three and more.
    let calls = moto_requests(&dir) - before;
    assert!(calls < 3, "an Authorize took {calls} moto calls");
    assert_eq!(sorted(added.security_group_rules(), |r| r.from_port()), [465, 993]);
    assert!(added.security_group_rules().iter().all(|r| r.security_group_rule_id().is_some()));

    // A duplicate fails the whole Authorize: 22 is not added next to it.
    let duplicate = authorize(&ec2, &group, vec![tcp(22), tcp(465)]).await.expect_err("465 is there already");
    assert_eq!(duplicate.code(), Some("InvalidPermission.Duplicate"));
    assert_eq!(ports(&ec2, &group).await, [465, 993]);

    // The self-referencing rule comes back by the group it references.
    let itself = IpPermission::builder()
        .ip_protocol("-1")
        .user_id_group_pairs(UserIdGroupPair::builder().group_id(&group).build())
        .build();
    let before = moto_requests(&dir);
    let revoked = revoke(&ec2, &group, vec![tcp(993), itself]).await.unwrap();
    // One for the change; the configuration worker the change triggers may have read once
    // by now too. The front's listings around a change made it three and more.
    let calls = moto_requests(&dir) - before;
    assert!(calls < 3, "a Revoke took {calls} moto calls");
    let mut gone: Vec<(Option<i32>, Option<String>)> = revoked
        .revoked_security_group_rules()
        .iter()
        .map(|r| (r.from_port(), r.referenced_group_id().map(str::to_owned)))
        .collect();
    gone.sort();
    assert_eq!(gone, [(Some(-1), Some(group.clone())), (Some(993), None)]);

    // In the default VPC a permission that matches nothing comes back as unknown.
    let revoked = revoke(&ec2, &group, vec![tcp(465), tcp(8080)]).await.unwrap();
    assert_eq!(sorted(revoked.revoked_security_group_rules(), |r| r.from_port()), [465]);
    assert_eq!(sorted(revoked.unknown_ip_permissions(), |p| p.from_port()), [8080]);
    assert_eq!(ports(&ec2, &group).await, Vec::<i32>::new());

    // Elsewhere it fails the whole revoke.
    let vpc = ec2.create_vpc().cidr_block("10.20.0.0/16").send().await.unwrap();
    let vpc = vpc.vpc().and_then(|v| v.vpc_id()).unwrap().to_owned();
    let other = ec2.create_security_group().group_name("elsewhere").description("d").vpc_id(&vpc).send().await;
    let other = other.unwrap().group_id().unwrap().to_owned();
    authorize(&ec2, &other, vec![tcp(443)]).await.unwrap();
    let missing =
        revoke(&ec2, &other, vec![tcp(443), tcp(8080)]).await.expect_err("8080 is not in a group of a non-default VPC");
    assert_eq!(missing.code(), Some("InvalidPermission.NotFound"));
    assert_eq!(ports(&ec2, &other).await, [443]);
}

/// moto runs with its rule listing by group id reading only those groups
/// (`localaws/src/moto/server.py`): the same answer as the region-wide listing, in its order.
#[tokio::test(flavor = "multi_thread")]
async fn a_rule_listing_by_group_answers_what_the_region_wide_one_holds_for_those_groups() {
    use aws_sdk_ec2::types::Filter;
    let (local, dir) = start("rules", Default::default()).await;
    let ec2 = aws_sdk_ec2::Client::new(&testkit::sdk_config(&local.endpoint).await);
    let mut groups = Vec::new();
    for (k, ports) in [[80, 443], [465, 993], [22, 3389]].iter().enumerate() {
        let group =
            ec2.create_security_group().group_name(format!("listed-{k}")).description("d").send().await.unwrap();
        let id = group.group_id().unwrap().to_owned();
        authorize(&ec2, &id, ports.iter().map(|p| tcp(*p)).collect()).await.unwrap();
        groups.push(id);
    }
    let listed = |filters: Vec<Filter>| {
        let ec2 = ec2.clone();
        async move {
            let out = ec2.describe_security_group_rules().set_filters(Some(filters)).max_results(1000).send().await;
            out.unwrap()
                .security_group_rules()
                .iter()
                .map(|r| {
                    (
                        r.group_id().unwrap().to_owned(),
                        r.security_group_rule_id().unwrap().to_owned(),
                        r.is_egress(),
                        r.from_port(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let all = listed(vec![]).await;
    let wanted = [groups[2].clone(), groups[0].clone()];
    let expected: Vec<_> = all.iter().filter(|r| wanted.contains(&r.0)).cloned().collect();
    // Two ingress rules and the default egress rule of each named group, in moto's order.
    assert_eq!(expected.len(), 6, "{all:?}");
    let by_group = listed(vec![Filter::builder().name("group-id").set_values(Some(wanted.to_vec())).build()]).await;
    assert_eq!(by_group, expected);
    // With a second filter, both apply.
    let one = expected[1].1.clone();
    let both = listed(vec![
        Filter::builder().name("group-id").set_values(Some(wanted.to_vec())).build(),
        Filter::builder().name("security-group-rule-id").values(&one).build(),
    ])
    .await;
    assert_eq!(both, [expected[1].clone()]);
    // A malformed group id is refused as moto refuses it.
    let bad = ec2
        .describe_security_group_rules()
        .filters(Filter::builder().name("group-id").values("not-a-group").build())
        .send()
        .await;
    let err = bad.expect_err("a malformed group id is an error");
    assert_eq!(aws_sdk_ec2::error::ProvideErrorMetadata::code(&err), Some("InvalidGroupId.Malformed"));
    // And the listing was the patched one.
    let log = std::fs::read_to_string(dir.join("moto.log")).unwrap();
    assert!(log.contains("DescribeSecurityGroupRules by group id reads only the named groups"), "{log}");
}

/// Security-group reads answer in pages of `MaxResults` with a `NextToken`, as AWS does (moto
/// answers everything at once): the function's paging is exercised, and a sweep of more than
/// 1,000 groups reads them a page at a time (`localaws/src/moto/server.py`).
#[tokio::test(flavor = "multi_thread")]
async fn security_group_reads_answer_in_pages_of_max_results() {
    use aws_sdk_ec2::error::ProvideErrorMetadata;
    let (local, dir) = start("pages", Default::default()).await;
    let ec2 = aws_sdk_ec2::Client::new(&testkit::sdk_config(&local.endpoint).await);
    for k in 0..11 {
        ec2.create_security_group().group_name(format!("paged-{k}")).description("d").send().await.unwrap();
    }
    let ids = |out: &aws_sdk_ec2::operation::describe_security_groups::DescribeSecurityGroupsOutput| {
        out.security_groups().iter().map(|g| g.group_id().unwrap().to_owned()).collect::<Vec<_>>()
    };
    // Without MaxResults: every group at once (the default group too), and no token.
    let all = ec2.describe_security_groups().send().await.unwrap();
    assert_eq!(all.security_groups().len(), 12);
    assert_eq!(all.next_token(), None);
    // With it: pages of 5, 5 and 2, together the same groups in the same order.
    let mut paged = Vec::new();
    let mut sizes = Vec::new();
    let mut token = None;
    loop {
        let out = ec2.describe_security_groups().max_results(5).set_next_token(token).send().await.unwrap();
        sizes.push(out.security_groups().len());
        paged.extend(ids(&out));
        token = out.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(sizes, [5, 5, 2]);
    assert_eq!(paged, ids(&all));
    // The rule listing pages too: 12 default egress rules.
    let rules = ec2.describe_security_group_rules().max_results(5).send().await.unwrap();
    assert_eq!(rules.security_group_rules().len(), 5);
    assert!(rules.next_token().is_some());
    // Out of AWS's range, and a token never handed out: refused as AWS refuses them.
    let big = ec2.describe_security_groups().max_results(1001).send().await.expect_err("1001 is over the limit");
    assert_eq!(big.code(), Some("InvalidParameterValue"), "{big:?}");
    let forged =
        ec2.describe_security_groups().max_results(5).next_token("forged").send().await.expect_err("a forged token");
    assert_eq!(forged.code(), Some("InvalidNextToken"), "{forged:?}");
    let log = std::fs::read_to_string(dir.join("moto.log")).unwrap();
    assert!(
        log.contains("DescribeSecurityGroups and DescribeSecurityGroupRules answer in pages of MaxResults"),
        "{log}"
    );
}
