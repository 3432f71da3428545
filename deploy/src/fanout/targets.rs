//! Who and where a run over many targets goes: the target list of the command line
//! (`--profiles`, `--accounts` with `--assume-role`, `--regions`, `--only-failed`).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::results::{Outcome, Run};
use crate::cli::Global;
use crate::error::{Error, Result};

/// One target: where the credentials come from, and the region (`None`: the configured one).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assume_role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

impl Target {
    /// Who: the alias, profile or account, else `default` (the configured credentials).
    pub fn name(&self) -> String {
        self.alias
            .clone()
            .or_else(|| self.profile.clone())
            .or_else(|| self.account.clone())
            .unwrap_or_else(|| "default".into())
    }

    /// How the target is named in progress lines: who, and the region if given.
    pub fn label(&self) -> String {
        match &self.region {
            Some(region) => format!("{}/{region}", self.name()),
            None => self.name(),
        }
    }
}

/// The target list of the command line, or `None` for the single target of the usual flags.
pub fn targets(global: &Global) -> Result<Option<Vec<Target>>> {
    let args = &global.targets;
    let mut bases: Vec<Target> = Vec::new();
    if let Some(file) = &args.only_failed {
        let failed = failed_targets(file)?;
        if failed.is_empty() {
            return Err(Error::Usage(format!("{}: no target failed in that run; nothing to do", file.display())));
        }
        return Ok(Some(failed));
    }
    if let Some(file) = &args.accounts {
        let text = std::fs::read_to_string(file)
            .map_err(|e| Error::Usage(format!("cannot read --accounts {}: {e}", file.display())))?;
        for (account, alias) in parse_accounts(&text).map_err(|e| Error::Usage(format!("{}: {e}", file.display())))? {
            bases.push(Target {
                account: Some(account),
                alias,
                assume_role: Some(args.assume_role.clone()),
                ..Target::default()
            });
        }
    } else if !args.profiles.is_empty() {
        for profile in &args.profiles {
            let profile = profile.trim();
            if profile.is_empty() {
                return Err(Error::Usage("--profiles has an empty name; write e.g. --profiles alice,bob".into()));
            }
            bases.push(Target { profile: Some(profile.to_owned()), ..Target::default() });
        }
    } else if !args.regions.is_empty() {
        bases.push(Target { profile: global.profile.clone(), ..Target::default() });
    } else {
        return Ok(None);
    }
    let regions: Vec<Option<String>> = if args.regions.is_empty() {
        vec![global.region.clone()]
    } else {
        args.regions.iter().map(|r| r.trim()).filter(|r| !r.is_empty()).map(|r| Some(r.to_owned())).collect()
    };
    let mut targets = Vec::new();
    for base in &bases {
        for region in &regions {
            targets.push(Target { region: region.clone(), ..base.clone() });
        }
    }
    Ok(Some(targets))
}

/// `--accounts` lines: a 12-digit account id, optionally an alias; `#` starts a comment.
pub fn parse_accounts(text: &str) -> Result<Vec<(String, Option<String>)>, String> {
    let mut accounts: Vec<(String, Option<String>)> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let mut fields = line.split(|c: char| c.is_whitespace() || c == ',').filter(|f| !f.is_empty());
        let account = fields.next().unwrap_or_default();
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "line {}: `{account}` is not a 12-digit account id; write one account per line: ACCOUNT_ID [ALIAS]",
                number + 1
            ));
        }
        let alias = fields.next().map(str::to_owned);
        if let Some(extra) = fields.next() {
            return Err(format!("line {}: unexpected `{extra}` after the alias; write ACCOUNT_ID [ALIAS]", number + 1));
        }
        if accounts.iter().any(|(a, _)| a == account) {
            return Err(format!("line {}: account {account} is listed twice", number + 1));
        }
        accounts.push((account.to_owned(), alias));
    }
    if accounts.is_empty() {
        return Err("no account listed; write one account per line: ACCOUNT_ID [ALIAS]".into());
    }
    Ok(accounts)
}

/// The targets that failed in an earlier run, from its JSON.
fn failed_targets(file: &Path) -> Result<Vec<Target>> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::Usage(format!("cannot read --only-failed {}: {e}", file.display())))?;
    let run: Run = serde_json::from_str(&text).map_err(|e| {
        Error::Usage(format!(
            "{} is not the JSON of a run over targets ({e}); save one with `--output json > FILE`",
            file.display()
        ))
    })?;
    Ok(run.targets.into_iter().filter(|t| t.outcome == Outcome::Failed).map(|t| t.target).collect())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::super::results::retry_hint;
    use super::*;
    use crate::cli::Cli;
    use crate::fanout::results::tests::row;

    fn global(args: &[&str]) -> Global {
        Cli::parse_from([&["deploy"], args, &["status"]].concat()).global
    }

    #[test]
    fn account_files_take_ids_aliases_and_comments() {
        let parsed = parse_accounts("# class of 2026\n111111111111 alice\n\n222222222222,bob # late\n333333333333\n");
        assert_eq!(
            parsed.unwrap(),
            [
                ("111111111111".into(), Some("alice".into())),
                ("222222222222".into(), Some("bob".into())),
                ("333333333333".into(), None)
            ]
        );
    }

    #[test]
    fn bad_account_files_name_the_line_and_the_fix() {
        let cases = [
            ("11111111111 alice", "line 1: `11111111111` is not a 12-digit account id"),
            ("111111111111 alice\nalice 111111111111", "line 2: `alice` is not a 12-digit account id"),
            ("111111111111 alice extra", "line 1: unexpected `extra` after the alias"),
            ("111111111111\n111111111111", "line 2: account 111111111111 is listed twice"),
            ("# nobody\n", "no account listed"),
        ];
        for (text, expected) in cases {
            let err = parse_accounts(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn targets_are_each_profile_in_each_region() {
        let listed = targets(&global(&["--profiles", "a,b", "--regions", "us-west-2,eu-west-1"])).unwrap().unwrap();
        let labels: Vec<String> = listed.iter().map(Target::label).collect();
        assert_eq!(labels, ["a/us-west-2", "a/eu-west-1", "b/us-west-2", "b/eu-west-1"]);
        assert!(targets(&global(&["--region", "us-west-2"])).unwrap().is_none(), "no target list");
        let regions = targets(&global(&["--profile", "p", "--regions", "us-east-1,us-west-2"])).unwrap().unwrap();
        assert!(regions.iter().all(|t| t.profile.as_deref() == Some("p")));
    }

    #[test]
    fn conflicting_target_flags_are_usage_errors() {
        for args in [
            &["deploy", "--profiles", "a", "--profile", "b", "status"][..],
            &["deploy", "--regions", "us-west-2", "--region", "eu-west-1", "status"],
            &["deploy", "--assume-role", "Admin", "status"],
            &["deploy", "--concurrency", "0", "status"],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn only_failed_reads_the_failed_targets_of_a_run() {
        let alice = Target { profile: Some("alice".into()), ..Target::default() };
        let bob = Target { profile: Some("bob".into()), region: Some("eu-west-1".into()), ..Target::default() };
        let run = Run {
            command: "up".into(),
            targets: vec![row(alice, Outcome::Ok, 0), row(bob.clone(), Outcome::Failed, 3)],
        };
        let file = std::env::temp_dir().join(format!("fanout-only-failed-{}.json", std::process::id()));
        std::fs::write(&file, serde_json::to_string(&run).unwrap()).unwrap();
        let path = file.display().to_string();
        assert_eq!(targets(&global(&["--only-failed", &path])).unwrap().unwrap(), [bob]);
        assert_eq!(run.exit_code(), 3);
        assert_eq!(retry_hint(&run).unwrap(), "deploy up --profiles bob --regions eu-west-1");

        std::fs::write(&file, "{}").unwrap();
        let err = targets(&global(&["--only-failed", &path])).unwrap_err().to_string();
        assert!(err.contains("is not the JSON of a run over targets"), "{err}");
        let _ = std::fs::remove_file(file);
    }
}
