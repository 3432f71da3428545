//! Safe in a real account (issue 15): `up` previews what the rule's first evaluation changes,
//! asks before it changes groups besides the lab's, and `down` puts the groups back. Run with
//! the real binary against the local AWS, in a region holding groups besides the default one.

mod common;

use std::collections::BTreeMap;
use std::process::Stdio;

use aws_sdk_ec2::types::{IpPermission, IpRange};
use common::Local;
use deploy::lab::Lab;
use serde_json::Value;
use sg_function::aws::Ec2;

/// The groups of the issue besides the default one: name → ingress (port, CIDR).
const GROUPS: [(&str, &[(i32, &str)]); 3] = [
    ("database", &[(22, "10.0.0.0/8"), (5432, "10.1.0.0/16")]),
    ("baseline", &[(80, "0.0.0.0/0"), (443, "0.0.0.0/0")]),
    ("empty", &[]),
];

/// Creates the groups; returns name → id (with `default`).
async fn create_groups(lab: &Lab) -> BTreeMap<String, String> {
    let ec2 = &lab.clients.ec2;
    let mut ids = BTreeMap::new();
    for (name, rules) in GROUPS {
        let created = ec2.create_security_group().group_name(name).description(name).send().await.unwrap();
        let id = created.group_id().unwrap().to_owned();
        // moto gives a new group an egress rule only; no ingress.
        for (port, cidr) in rules {
            let permission = IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(*port)
                .to_port(*port)
                .ip_ranges(IpRange::builder().cidr_ip(*cidr).build())
                .build();
            ec2.authorize_security_group_ingress().group_id(&id).ip_permissions(permission).send().await.unwrap();
        }
        ids.insert(name.to_owned(), id);
    }
    let default = deploy::status::default_group_id(lab).await.unwrap().unwrap();
    ids.insert("default".into(), default);
    ids
}

/// Each group's ingress in compact form, sorted.
async fn ingress(lab: &Lab, ids: &BTreeMap<String, String>) -> BTreeMap<String, Vec<String>> {
    let mut all = BTreeMap::new();
    for (name, id) in ids {
        let mut rules: Vec<String> =
            lab.clients.ec2.ingress_rules(id).await.unwrap().into_iter().map(|o| o.rule.to_string()).collect();
        rules.sort();
        all.insert(name.clone(), rules);
    }
    all
}

fn strings(value: &Value) -> Vec<String> {
    value.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
}

#[test]
fn the_preview_lists_exactly_the_groups_that_change_and_up_without_yes_refuses() {
    let local = Local::with_stub("restore-preview");
    let ids = local.block_on(create_groups(&local.lab));
    let before = local.block_on(ingress(&local.lab, &ids));
    let default = &ids["default"];
    assert!(
        before["default"].iter().any(|r| r.ends_with(&format!("@{default}"))),
        "the default group references itself: {before:?}"
    );
    let zip = local.zip.display().to_string();

    // The preview, in JSON: one entry per group that changes.
    let run = local.deploy(&["up", "--dry-run", "--zip", &zip, "--output", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    let impact: BTreeMap<String, (Vec<String>, Vec<String>)> = json["impact"]
        .as_array()
        .unwrap_or_else(|| panic!("no impact list: {json}"))
        .iter()
        .map(|g| (g["groupId"].as_str().unwrap().to_owned(), (strings(&g["revoke"]), strings(&g["authorize"]))))
        .collect();
    let web = vec!["tcp/80@0.0.0.0/0".to_owned(), "tcp/443@0.0.0.0/0".to_owned()];
    let expected: BTreeMap<String, (Vec<String>, Vec<String>)> = [
        (ids["database"].clone(), (vec!["tcp/22@10.0.0.0/8".into(), "tcp/5432@10.1.0.0/16".into()], web.clone())),
        (ids["empty"].clone(), (vec![], web.clone())),
        (default.clone(), (vec![format!("all@{default}")], web.clone())),
    ]
    .into();
    assert_eq!(impact, expected, "{json}");

    // The same preview as text, with the count of groups that stay.
    let run = local.deploy(&["up", "--dry-run", "--zip", &zip]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("3 security groups (6 rules opened to 0.0.0.0/0)"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains(&format!("  {}: revoke tcp/22@10.0.0.0/8, tcp/5432@10.1.0.0/16; authorize", ids["database"])),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("  1 group stay as they are"), "{}", run.stdout);

    // Without --yes on a non-terminal stdin: refused, exit 4, nothing created or changed.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_deploy"))
        .current_dir(&local.dir)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .args(["up", "--zip", &zip, "--local", "--endpoint-url", &local.local.endpoint, "--region", "us-west-2"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("changes 3 security groups (2 besides the lab's default group) and opens 6 rules to 0.0.0.0/0"),
        "{stderr}"
    );
    assert!(stderr.contains("pass --yes"), "{stderr}");
    assert_eq!(local.leftovers(), Vec::<String>::new());
    assert_eq!(local.block_on(ingress(&local.lab, &ids)), before);
}
