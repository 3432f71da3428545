//! The local AWS's EC2 answers as AWS gives them (`localaws/src/ec2.rs`): reads that lag a
//! change to a group's rules, and change calls that say what they did.

use std::time::{Duration, Instant};

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

#[tokio::test(flavor = "multi_thread")]
async fn reads_lag_changes_and_changes_say_what_they_did() {
    let dir = std::env::temp_dir().join(format!("local-aws-test-ec2-{}", std::process::id()));
    let behaviours = localaws::behaviours::Behaviours { ec2_read_lag_ms: 1_000, ..Default::default() };
    let options = localaws::Options { port: 0, moto: deploy::local::moto_program(), data_dir: dir, behaviours };
    let local = localaws::start(options).await.unwrap();
    let ec2 = aws_sdk_ec2::Client::new(&testkit::sdk_config(&local.endpoint).await);
    let groups = ec2.describe_security_groups().group_names("default").send().await.unwrap();
    let group = groups.security_groups()[0].group_id().unwrap().to_owned();

    // Authorize answers every rule it added, not only the last permission's (moto).
    let added = ec2
        .authorize_security_group_ingress()
        .group_id(&group)
        .set_ip_permissions(Some(vec![tcp(465), tcp(993)]))
        .send()
        .await
        .unwrap();
    let mut added_ports: Vec<i32> = added.security_group_rules().iter().filter_map(|r| r.from_port()).collect();
    added_ports.sort();
    assert_eq!(added_ports, [465, 993]);
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
    let revoked = ec2
        .revoke_security_group_ingress()
        .group_id(&group)
        .set_ip_permissions(Some(vec![tcp(465), tcp(8080)]))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.r#return(), Some(true));
    let gone: Vec<Option<i32>> = revoked.revoked_security_group_rules().iter().map(|r| r.from_port()).collect();
    assert_eq!(gone, [Some(465)]);
    let unknown: Vec<Option<i32>> = revoked.unknown_ip_permissions().iter().map(|p| p.from_port()).collect();
    assert_eq!(unknown, [Some(8080)]);
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
