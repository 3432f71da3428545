//! Safe in a real account (issue 15): `up` previews what the rule's first evaluation changes,
//! asks before it changes groups besides the lab's, and `down` puts the groups back. Run with
//! the real binary against the local AWS, in a region holding groups besides the default one.

mod common;

use std::collections::BTreeMap;
use std::process::Stdio;

use aws_sdk_ec2::types::{IpPermission, IpRange};
use common::Local;
use deploy::cli::Cli;
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
        // EC2's reads lag its writes (the local AWS's `ec2ReadLagMs`): the groups are read as
        // "before" once reads show every rule (bounded: 5 s).
        let mut shown = 0;
        for _ in 0..50 {
            shown = ec2.ingress_rules(&id).await.unwrap().len();
            if shown == rules.len() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(shown, rules.len(), "{name}: reads never showed its {} rules", rules.len());
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

/// Waits (bounded) until the rule has put every group but `skip` at the baseline.
fn wait_for_baseline(local: &Local, ids: &BTreeMap<String, String>) {
    let web = vec!["tcp/443@0.0.0.0/0".to_owned(), "tcp/80@0.0.0.0/0".to_owned()];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        let now = local.block_on(ingress(&local.lab, ids));
        if now.values().all(|rules| *rules == web) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "the rule did not bring every group to the baseline: {now:?}");
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

fn steps_of(run: &common::Run) -> Vec<Value> {
    let json: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout));
    json["steps"].as_array().unwrap().clone()
}

#[test]
fn down_puts_every_group_back_as_it_was_before_up() {
    let local = Local::start("restore-cycle");
    let ids = local.block_on(create_groups(&local.lab));
    let before = local.block_on(ingress(&local.lab, &ids));
    // A group deleted while the lab runs: reported by `down`, not an error.
    let scratch = local.block_on(async {
        let made = local.lab.clients.ec2.create_security_group().group_name("scratch").description("s").send().await;
        made.unwrap().group_id().unwrap().to_owned()
    });
    local.up();
    wait_for_baseline(&local, &ids);
    let open = local.deploy(&["lab", "open-ports"]);
    assert_eq!(open.code, 0, "{}", open.stderr);
    wait_for_baseline(&local, &ids);
    local.block_on(async {
        assert!(local.local.settle(std::time::Duration::from_secs(30)).await);
        local.lab.clients.ec2.delete_security_group().group_id(&scratch).send().await.unwrap();
    });

    let down = local.deploy(&["down", "--output", "json"]);
    assert_eq!(down.code, 0, "{}\n{}", down.stderr, down.stdout);
    assert_eq!(local.block_on(ingress(&local.lab, &ids)), before, "{}", down.stdout);
    let steps = steps_of(&down);
    let row = |id: &str| steps.iter().find(|s| s["resource"] == "group" && s["name"] == id).cloned();
    for name in ["database", "empty", "default"] {
        assert_eq!(row(&ids[name]).unwrap_or_default()["action"], "update", "{name}: {steps:?}");
    }
    assert!(row(&ids["baseline"]).is_none(), "the baseline group needs no restore: {steps:?}");
    assert_eq!(row(&scratch).unwrap_or_default()["action"], "absent", "{steps:?}");
    assert_eq!(local.leftovers(), Vec::<String>::new());
}

#[test]
fn keep_groups_leaves_them_as_the_lab_left_them_and_a_garbled_record_restores_nothing() {
    let local = Local::start("restore-keep");
    let ids = local.block_on(create_groups(&local.lab));
    let web = vec!["tcp/443@0.0.0.0/0".to_owned(), "tcp/80@0.0.0.0/0".to_owned()];

    local.up();
    wait_for_baseline(&local, &ids);
    local.block_on(async { assert!(local.local.settle(std::time::Duration::from_secs(30)).await) });
    let down = local.deploy(&["down", "--keep-groups", "--output", "json"]);
    assert_eq!(down.code, 0, "{}", down.stderr);
    assert!(local.block_on(ingress(&local.lab, &ids)).values().all(|r| *r == web));
    assert_eq!(local.leftovers(), Vec::<String>::new());

    // A garbled record: `down` says so, tears the rest down, restores nothing, exits 1.
    local.up();
    local.block_on(async { assert!(local.local.settle(std::time::Duration::from_secs(30)).await) });
    let lab = local.block_on(deploy::bucket::in_region(&local.lab)).unwrap();
    local.block_on(async {
        let body = aws_sdk_s3::primitives::ByteStream::from_static(b"{\"version\":1,\"groups\":{\"sg-1\":[\"oops\"]}}");
        let put = lab.clients.s3.put_object().bucket(&lab.names.bucket).key(deploy::snapshot::KEY).body(body);
        put.send().await.unwrap();
    });
    let down = local.deploy(&["down"]);
    assert_eq!(down.code, 1, "{}\n{}", down.stderr, down.stdout);
    assert!(down.stderr.contains("could not restore the security groups"), "{}", down.stderr);
    assert!(down.stderr.contains(deploy::snapshot::KEY), "{}", down.stderr);
    assert!(local.block_on(ingress(&local.lab, &ids)).values().all(|r| *r == web));
    assert_eq!(local.leftovers(), Vec::<String>::new());
}

/// Two student accounts reached by AssumeRole, each with a database group: `up --accounts` asks
/// once for both, and `down` restores each account's groups.
#[test]
fn with_a_target_list_up_asks_once_and_down_restores_every_account() {
    use clap::Parser;
    const STUDENTS: [(&str, &str); 2] = [("111111111111", "alice"), ("222222222222", "bob")];
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = std::env::temp_dir().join(format!("sg-lab-restore-accounts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let options = localaws::Options {
        port: 0,
        moto: deploy::local::moto_program(),
        data_dir: dir.join("local"),
        behaviours: localaws::behaviours::Behaviours::aws_like(),
    };
    let local = rt.block_on(localaws::start(options)).unwrap();
    let zip = testkit::bootstrap_zip(&dir);
    std::fs::write(dir.join("config"), "").unwrap();
    std::fs::write(dir.join("credentials"), "").unwrap();
    let accounts = dir.join("accounts.txt");
    let lines: Vec<String> = STUDENTS.iter().map(|(id, alias)| format!("{id} {alias}")).collect();
    std::fs::write(&accounts, lines.join("\n")).unwrap();
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_deploy"))
            .current_dir(&dir)
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_REGION")
            .env_remove("AWS_DEFAULT_REGION")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", dir.join("config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("credentials"))
            .args(args)
            .args(["--accounts", accounts.to_str().unwrap(), "--local", "--endpoint-url", &local.endpoint])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    let cli =
        Cli::parse_from(["deploy", "--local", "--endpoint-url", &local.endpoint, "--region", "us-west-2", "status"]);
    let mut database = Vec::new();
    for (account, _) in STUDENTS {
        let sdk = rt
            .block_on(deploy::connect::assumed_sdk_config(&cli.global, account, "OrganizationAccountAccessRole"))
            .unwrap();
        let ec2 = aws_sdk_ec2::Client::new(&sdk);
        let id = rt.block_on(async {
            let made = ec2.create_security_group().group_name("database").description("db").send().await.unwrap();
            let id = made.group_id().unwrap().to_owned();
            let permission = IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(5432)
                .to_port(5432)
                .ip_ranges(IpRange::builder().cidr_ip("10.1.0.0/16").build())
                .build();
            ec2.authorize_security_group_ingress().group_id(&id).ip_permissions(permission).send().await.unwrap();
            id
        });
        database.push((ec2, id));
    }
    let rules_of = |ec2: &aws_sdk_ec2::Client, id: &str| {
        let mut rules: Vec<String> =
            rt.block_on(ec2.ingress_rules(id)).unwrap().into_iter().map(|o| o.rule.to_string()).collect();
        rules.sort();
        rules
    };

    let zip = zip.to_str().unwrap();
    let (code, stderr) = run(&["up", "--zip", zip]);
    assert_eq!(code, 4, "{stderr}");
    assert_eq!(stderr.matches("refusing to create the rule").count(), 1, "asked once: {stderr}");
    for (account, alias) in STUDENTS {
        assert!(stderr.contains(&format!("{alias}: account {account}, region us-west-2")), "{stderr}");
    }
    assert!(stderr.contains("changes 4 security groups (2 besides the lab's default group)"), "{stderr}");

    let (code, stderr) = run(&["up", "--zip", zip, "--yes"]);
    assert_eq!(code, 0, "{stderr}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    for (ec2, id) in &database {
        while rules_of(ec2, id) != ["tcp/443@0.0.0.0/0", "tcp/80@0.0.0.0/0"] {
            assert!(std::time::Instant::now() < deadline, "{id} not at the baseline: {:?}", rules_of(ec2, id));
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }
    rt.block_on(async { assert!(local.settle(std::time::Duration::from_secs(30)).await) });
    let (code, stderr) = run(&["down", "--yes"]);
    assert_eq!(code, 0, "{stderr}");
    for (ec2, id) in &database {
        assert_eq!(rules_of(ec2, id), ["tcp/5432@10.1.0.0/16"]);
    }
}
