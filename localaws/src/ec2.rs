//! EC2's security-group answers as AWS gives them, on top of moto's.
//!
//! - **Reads lag writes** ([`Behaviours::ec2_read_lag_ms`]): for that long after a change to a
//!   group's rules, DescribeSecurityGroups and DescribeSecurityGroupRules answer the group as it
//!   was before the change. EC2 Developer Guide, "Eventual consistency in the Amazon EC2 API":
//!   "the result of an API command you run that affects your Amazon EC2 resources might not be
//!   immediately visible to all subsequent commands you run". The front keeps, per group, the
//!   answer from just before its latest change, and splices it into later answers until the
//!   window after that change has passed (reads move forward, never back).
//! - **The change calls say what they did** (always on: they are answer shapes, not timing).
//!   AuthorizeSecurityGroupIngress/Egress answer every rule they added in `SecurityGroupRules`
//!   (moto lists only the last permission's); RevokeSecurityGroupIngress/Egress answer the rules
//!   they removed in `RevokedSecurityGroupRules` (moto: nothing). In a default VPC a revoke by
//!   permission that matches no rule is not an error: "no error is returned, and the output
//!   describes the security group rules that were not revoked" (`UnknownIpPermissions`); only
//!   other VPCs answer `InvalidPermission.NotFound` (EC2 API reference,
//!   RevokeSecurityGroupIngress). moto answers the error everywhere. With moto's change calls
//!   patched to answer what they changed (`moto/server.py`) and no read lag, a change is one
//!   moto call; otherwise the front lists the group's rules before and after it.
//!
//! [`Behaviours::ec2_read_lag_ms`]: crate::behaviours::Behaviours::ec2_read_lag_ms

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::http::{self, Forwarder, Request, Response};

/// Waits out EC2's read lag (if on): what AWS delivers about a change (Config's configuration
/// item, CloudTrail's event) reflects the change, so the front delivers it once reads show it.
pub async fn after_read_lag(lag: Option<Duration>) {
    if let Some(lag) = lag {
        tokio::time::sleep(lag + Duration::from_millis(20)).await;
    }
}

/// The calls that change a group's rules.
const RULE_CHANGES: [&str; 7] = [
    "AuthorizeSecurityGroupIngress",
    "AuthorizeSecurityGroupEgress",
    "RevokeSecurityGroupIngress",
    "RevokeSecurityGroupEgress",
    "ModifySecurityGroupRules",
    "UpdateSecurityGroupRuleDescriptionsIngress",
    "UpdateSecurityGroupRuleDescriptionsEgress",
];

/// (account, region, group id).
type Key = (String, String, String);

/// A group as reads answered it before its first change in the window.
struct Before {
    /// Its `<item>` in DescribeSecurityGroups.
    group: Option<String>,
    /// Its rules' `<item>`s in DescribeSecurityGroupRules.
    rules: Vec<String>,
    until: Instant,
}

/// The line moto's server writes to moto.log when its Authorize and Revoke are all-or-nothing
/// and answer every rule they changed (`moto/server.py`).
pub const MOTO_ANSWERS_CHANGES: &str = "Authorize and Revoke are all-or-nothing and answer every rule they changed";

/// The front's EC2 state: the groups whose reads lag.
#[derive(Default)]
pub struct Ec2Answers {
    lagging: Mutex<HashMap<Key, Before>>,
    /// moto's Authorize and Revoke answer as AWS's do ([`MOTO_ANSWERS_CHANGES`]): with no read
    /// lag, a change is then one moto call, not a rule listing before and after it.
    moto_answers_changes: bool,
}

impl Ec2Answers {
    /// The front's EC2 state for a moto whose change calls answer as AWS's
    /// (`moto_answers_changes`) or as moto 5.2.1's.
    pub fn new(moto_answers_changes: bool) -> Self {
        Ec2Answers { lagging: Default::default(), moto_answers_changes }
    }

    /// Forgets every lagging read (moto's reset).
    pub fn reset(&self) {
        self.lagging().clear();
    }

    fn lagging(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Before>> {
        self.lagging.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Carries out one EC2 query-protocol request against moto, answering as AWS does: reads of
    /// groups changed within `lag` show them as before; changes say what they did.
    pub async fn carry_out(
        &self,
        moto: &Forwarder,
        action: &str,
        account: &str,
        region: &str,
        request: &Request,
        lag: Option<Duration>,
    ) -> Response {
        if !RULE_CHANGES.contains(&action) {
            let answer = moto.forward(request).await;
            if lag.is_none() || !matches!(action, "DescribeSecurityGroups" | "DescribeSecurityGroupRules") {
                return answer;
            }
            return self.lagged(action, account, region, request, answer).await;
        }
        let form = request.form();
        let by_permission = form.iter().any(|(k, _)| k.starts_with("IpPermissions."));
        if lag.is_none() && self.moto_answers_changes {
            // Nothing to lag, and moto's answer is AWS's: the change is one moto call. Only a
            // revoke by permission that moto did not find needs more (a default VPC's answer),
            // and moto, all-or-nothing, has then changed nothing.
            let answer = moto.forward(request).await;
            if answer.status() != 400 || !(action.starts_with("Revoke") && by_permission) {
                return answer;
            }
            let body = text(answer).await;
            if !body.contains("<Code>InvalidPermission.NotFound</Code>") {
                return http::response(400, "text/xml;charset=UTF-8", body);
            }
        }
        let Some(group) = group_of(moto, request, &form).await else { return moto.forward(request).await };
        let sub = |body: String| query(request, body);
        // The group's own item is needed only to answer lagging reads with it; the rules are
        // what the answer is made of. (Each is a moto call per change: the sweep's cost.)
        let read_group =
            || async { first_item(&text(moto.forward(&sub(describe_group(&group))).await).await, "securityGroupInfo") };
        let before_group = if lag.is_some() { read_group().await } else { None };
        let before_rules = items(&text(moto.forward(&sub(describe_rules(&group))).await).await, "securityGroupRuleSet");

        let answer = moto.forward(request).await;
        let (status, mut body) = (answer.status().as_u16(), text(answer).await);
        let mut unknown = Vec::new();
        let not_found = status == 400
            && body.contains("<Code>InvalidPermission.NotFound</Code>")
            && action.starts_with("Revoke")
            && by_permission;
        let in_default = not_found
            && match before_group.as_deref() {
                Some(item) => in_default_vpc(moto, request, Some(item)).await,
                None => in_default_vpc(moto, request, read_group().await.as_deref()).await,
            };
        if in_default {
            // A default VPC revokes what matches and answers the rest back. (moto's batch may
            // have revoked the permissions before the one it did not find: revoking those again
            // fails, harmlessly.)
            let egress = action.ends_with("Egress");
            for atomic in atomic_permissions(&form) {
                let known = before_rules.iter().any(|rule| atomic.matches(rule, egress));
                if known {
                    moto.forward(&sub(atomic.form)).await;
                } else {
                    unknown.push(atomic.xml);
                }
            }
            body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{action}Response xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>{}</requestId><return>true</return></{action}Response>",
                request_id()
            );
        } else if status != 200 {
            return http::response(status, "text/xml;charset=UTF-8", body);
        }

        let after_rules = items(&text(moto.forward(&sub(describe_rules(&group))).await).await, "securityGroupRuleSet");
        let egress = action.ends_with("Egress");
        let id_of = |item: &String| child(item, "securityGroupRuleId");
        let kept = |item: &String| child(item, "isEgress").as_deref() == Some(if egress { "true" } else { "false" });
        let before_ids: Vec<Option<String>> = before_rules.iter().map(id_of).collect();
        let after_ids: Vec<Option<String>> = after_rules.iter().map(id_of).collect();
        if action.starts_with("Authorize") {
            let added: Vec<&String> =
                after_rules.iter().filter(|r| kept(r) && !before_ids.contains(&id_of(r))).collect();
            body = with_set(&body, "securityGroupRuleSet", &added.iter().map(|r| r.as_str()).collect::<Vec<_>>());
        } else if action.starts_with("Revoke") {
            let revoked: Vec<String> = before_rules
                .iter()
                .filter(|r| kept(r) && !after_ids.contains(&id_of(r)))
                .map(|r| revoked_rule(r))
                .collect();
            body =
                with_set(&body, "revokedSecurityGroupRuleSet", &revoked.iter().map(String::as_str).collect::<Vec<_>>());
            if !unknown.is_empty() {
                body =
                    with_set(&body, "unknownIpPermissionSet", &unknown.iter().map(String::as_str).collect::<Vec<_>>());
            }
        }
        let changed = before_rules != after_rules;
        if let (Some(lag), true) = (lag, changed) {
            let key = (account.to_owned(), region.to_owned(), group);
            let until = Instant::now() + lag;
            let mut lagging = self.lagging();
            lagging.retain(|_, before| before.until > Instant::now());
            lagging.insert(key, Before { group: before_group, rules: before_rules, until });
        }
        http::response(200, "text/xml;charset=UTF-8", body)
    }

    /// A read's answer with the groups changed within the window as they were before.
    async fn lagged(&self, action: &str, account: &str, region: &str, request: &Request, answer: Response) -> Response {
        if answer.status() != 200 {
            return answer;
        }
        let body = text(answer).await;
        let now = Instant::now();
        let rewritten = {
            let mut lagging = self.lagging();
            lagging.retain(|_, before| before.until > now);
            let here: BTreeMap<&str, &Before> = lagging
                .iter()
                .filter(|((a, r, _), _)| a == account && r == region)
                .map(|((_, _, g), before)| (g.as_str(), before))
                .collect();
            if here.is_empty() {
                None
            } else if action == "DescribeSecurityGroups" {
                Some(lag_groups(&body, &here))
            } else {
                Some(lag_rules(&body, &here, &request.form()))
            }
        };
        http::response(200, "text/xml;charset=UTF-8", rewritten.unwrap_or(body))
    }
}

fn lag_groups(body: &str, lagging: &BTreeMap<&str, &Before>) -> String {
    let mut out = body.to_owned();
    // From the last item back, so that earlier ranges stay valid.
    for range in top_items(body, "securityGroupInfo").into_iter().rev() {
        let id = child(&body[range.clone()], "groupId").unwrap_or_default();
        if let Some(old) = lagging.get(id.as_str()).and_then(|b| b.group.as_ref()) {
            out.replace_range(range, old);
        }
    }
    out
}

fn lag_rules(body: &str, lagging: &BTreeMap<&str, &Before>, form: &[(String, String)]) -> String {
    let ranges = top_items(body, "securityGroupRuleSet");
    let answered: Vec<String> = ranges.iter().filter_map(|r| child(&body[r.clone()], "groupId")).collect();
    let filtered: Vec<&str> = form
        .iter()
        .filter(|(k, _)| k.starts_with("Filter.") && k.contains(".Value."))
        .filter(|(k, _)| {
            let n = k.split('.').nth(1).unwrap_or_default();
            form.iter().any(|(name, v)| name == &format!("Filter.{n}.Name") && v == "group-id")
        })
        .map(|(_, v)| v.as_str())
        .collect();
    let rule_ids: Vec<&str> =
        form.iter().filter(|(k, _)| k.starts_with("SecurityGroupRuleId.")).map(|(_, v)| v.as_str()).collect();
    let unfiltered = rule_ids.is_empty() && !form.iter().any(|(k, _)| k.starts_with("Filter."));
    let mut kept: Vec<String> = ranges
        .iter()
        .map(|r| body[r.clone()].to_owned())
        .filter(|item| !lagging.contains_key(child(item, "groupId").unwrap_or_default().as_str()))
        .collect();
    for (group, before) in lagging {
        if !(answered.iter().any(|g| g == group) || filtered.contains(group) || unfiltered) {
            continue;
        }
        kept.extend(
            before
                .rules
                .iter()
                .filter(|r| {
                    rule_ids.is_empty()
                        || rule_ids.contains(&child(r, "securityGroupRuleId").unwrap_or_default().as_str())
                })
                .cloned(),
        );
    }
    with_set(body, "securityGroupRuleSet", &kept.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The group a change names: `GroupId`, or `GroupName` (default VPC) resolved with moto.
async fn group_of(moto: &Forwarder, request: &Request, form: &[(String, String)]) -> Option<String> {
    if let Some((_, id)) = form.iter().find(|(k, _)| k == "GroupId") {
        return Some(id.clone());
    }
    let (_, name) = form.iter().find(|(k, _)| k == "GroupName")?;
    let body = format!("Action=DescribeSecurityGroups&Version=2016-11-15&GroupName.1={}", encode(name));
    let item = first_item(&text(moto.forward(&query(request, body)).await).await, "securityGroupInfo")?;
    child(&item, "groupId")
}

async fn in_default_vpc(moto: &Forwarder, request: &Request, group: Option<&str>) -> bool {
    let Some(vpc) = group.and_then(|g| child(g, "vpcId")) else { return false };
    let body = format!("Action=DescribeVpcs&Version=2016-11-15&VpcId.1={}", encode(&vpc));
    text(moto.forward(&query(request, body)).await).await.contains("<isDefault>true</isDefault>")
}

fn describe_group(group: &str) -> String {
    format!("Action=DescribeSecurityGroups&Version=2016-11-15&GroupId.1={}", encode(group))
}

fn describe_rules(group: &str) -> String {
    format!(
        "Action=DescribeSecurityGroupRules&Version=2016-11-15&MaxResults=1000&Filter.1.Name=group-id&Filter.1.Value.1={}",
        encode(group)
    )
}

/// A query-protocol request of the front's own, in the account and region of `like`.
fn query(like: &Request, body: String) -> Request {
    let mut headers = hyper::HeaderMap::new();
    for name in [hyper::header::AUTHORIZATION, hyper::header::CONTENT_TYPE] {
        if let Some(value) = like.headers.get(&name) {
            headers.insert(name, value.clone());
        }
    }
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
    );
    Request { method: hyper::Method::POST, uri: hyper::Uri::from_static("/"), headers, body: Bytes::from(body) }
}

async fn text(answer: Response) -> String {
    let body = http_body_util::BodyExt::collect(answer.into_body()).await.map(|c| c.to_bytes()).unwrap_or_default();
    String::from_utf8_lossy(&body).into_owned()
}

fn request_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{nanos:032x}")
}

/// One permission with one source, from a request's form.
struct Atomic {
    /// As EC2 echoes an unknown permission.
    xml: String,
    /// The form of a revoke of it alone.
    form: String,
    protocol: String,
    from: Option<String>,
    to: Option<String>,
    /// (`cidrIpv4` | `cidrIpv6` | `prefixListId` | `referencedGroupInfo`, value).
    source: (&'static str, String),
}

impl Atomic {
    /// Whether a DescribeSecurityGroupRules item is this rule.
    fn matches(&self, rule: &str, egress: bool) -> bool {
        let protocol = |p: &str| match p.to_ascii_lowercase().as_str() {
            "6" => "tcp".to_owned(),
            "17" => "udp".to_owned(),
            "1" => "icmp".to_owned(),
            "all" => "-1".to_owned(),
            other => other.to_owned(),
        };
        let Some(rule_protocol) = child(rule, "ipProtocol") else { return false };
        if child(rule, "isEgress").as_deref() != Some(if egress { "true" } else { "false" })
            || protocol(&rule_protocol) != protocol(&self.protocol)
        {
            return false;
        }
        let ports_matter = !matches!(protocol(&self.protocol).as_str(), "-1");
        if ports_matter && (child(rule, "fromPort") != self.from || child(rule, "toPort") != self.to) {
            return false;
        }
        let (kind, value) = &self.source;
        let found = if *kind == "referencedGroupInfo" {
            rule.split("<referencedGroupInfo>")
                .nth(1)
                .and_then(|r| r.split("<groupId>").nth(1))
                .and_then(|r| r.split('<').next())
                .map(str::to_owned)
        } else {
            child(rule, kind)
        };
        found.as_deref() == Some(escape(value).as_str())
    }
}

/// The revoke by permission split into atomic permissions (one source each).
fn atomic_permissions(form: &[(String, String)]) -> Vec<Atomic> {
    // permission number -> (base fields, source (kind, number) -> fields)
    type Sources = BTreeMap<(String, u32), Vec<(String, String)>>;
    let mut permissions: BTreeMap<u32, (Vec<(String, String)>, Sources)> = BTreeMap::new();
    for (key, value) in form {
        let parts: Vec<&str> = key.split('.').collect();
        let Some(n) = parts.get(1).and_then(|n| n.parse::<u32>().ok()) else { continue };
        if parts[0] != "IpPermissions" {
            continue;
        }
        let entry = permissions.entry(n).or_default();
        match parts.as_slice() {
            [_, _, field] => entry.0.push(((*field).to_owned(), value.clone())),
            [_, _, kind, m, field] => {
                let Ok(m) = m.parse::<u32>() else { continue };
                entry.1.entry(((*kind).to_owned(), m)).or_default().push(((*field).to_owned(), value.clone()));
            }
            _ => {}
        }
    }
    let common: Vec<(String, String)> =
        form.iter().filter(|(k, _)| matches!(k.as_str(), "GroupId" | "GroupName")).cloned().collect();
    let action = form.iter().find(|(k, _)| k == "Action").map(|(_, v)| v.clone()).unwrap_or_default();
    let mut out = Vec::new();
    for (base, sources) in permissions.values() {
        for ((kind, _), fields) in sources {
            let mut one = format!("Action={action}&Version=2016-11-15");
            for (k, v) in &common {
                one.push_str(&format!("&{k}={}", encode(v)));
            }
            for (k, v) in base {
                one.push_str(&format!("&IpPermissions.1.{k}={}", encode(v)));
            }
            for (k, v) in fields {
                one.push_str(&format!("&IpPermissions.1.{kind}.1.{k}={}", encode(v)));
            }
            let mut xml = String::from("<item>");
            for (k, v) in base {
                xml.push_str(&element(&lower_first(k), v));
            }
            for set in ["Groups", "IpRanges", "Ipv6Ranges", "PrefixListIds"] {
                let tag = lower_first(set);
                if set == kind {
                    let inner: String = fields.iter().map(|(k, v)| element(&lower_first(k), v)).collect();
                    xml.push_str(&format!("<{tag}><item>{inner}</item></{tag}>"));
                } else {
                    xml.push_str(&format!("<{tag}/>"));
                }
            }
            xml.push_str("</item>");
            let field = |name: &str| base.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
            let value = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
            let source = match kind.as_str() {
                "IpRanges" => ("cidrIpv4", value("CidrIp")),
                "Ipv6Ranges" => ("cidrIpv6", value("CidrIpv6")),
                "PrefixListIds" => ("prefixListId", value("PrefixListId")),
                _ => ("referencedGroupInfo", value("GroupId")),
            };
            out.push(Atomic {
                xml,
                form: one,
                protocol: field("IpProtocol").unwrap_or_else(|| "-1".to_owned()),
                from: field("FromPort"),
                to: field("ToPort"),
                source,
            });
        }
    }
    out
}

/// A DescribeSecurityGroupRules item in the shape of a `RevokedSecurityGroupRule`.
fn revoked_rule(item: &str) -> String {
    let mut out = String::from("<item>");
    for tag in [
        "securityGroupRuleId",
        "groupId",
        "isEgress",
        "ipProtocol",
        "fromPort",
        "toPort",
        "cidrIpv4",
        "cidrIpv6",
        "prefixListId",
        "description",
    ] {
        if let Some(value) = child(item, tag) {
            out.push_str(&format!("<{tag}>{value}</{tag}>"));
        }
    }
    let referenced = item.split("<referencedGroupInfo>").nth(1).and_then(|s| s.split("</referencedGroupInfo>").next());
    if let Some(group) = referenced.and_then(|r| r.split("<groupId>").nth(1)).and_then(|s| s.split('<').next()) {
        out.push_str(&format!("<referencedGroupId>{group}</referencedGroupId>"));
    }
    out.push_str("</item>");
    out
}

fn element(tag: &str, value: &str) -> String {
    format!("<{tag}>{}</{tag}>", escape(value))
}

fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_ascii_lowercase().to_string() + chars.as_str()).unwrap_or_default()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The ranges of the `<item>`s directly inside `<container>` (tags included).
fn top_items(body: &str, container: &str) -> Vec<Range<usize>> {
    let open = format!("<{container}>");
    let Some(start) = body.find(&open).map(|p| p + open.len()) else { return Vec::new() };
    let end = body[start..].find(&format!("</{container}>")).map_or(body.len(), |p| start + p);
    let mut ranges = Vec::new();
    let (mut depth, mut from, mut at) = (0usize, 0usize, start);
    while at < end {
        let rest = &body[at..end];
        let next_open = rest.find("<item>");
        let next_close = rest.find("</item>");
        match (next_open, next_close) {
            (Some(o), Some(c)) if o < c => {
                if depth == 0 {
                    from = at + o;
                }
                depth += 1;
                at += o + "<item>".len();
            }
            (_, Some(c)) => {
                depth = depth.saturating_sub(1);
                at += c + "</item>".len();
                if depth == 0 {
                    ranges.push(from..at);
                }
            }
            _ => break,
        }
    }
    ranges
}

fn items(body: &str, container: &str) -> Vec<String> {
    top_items(body, container).into_iter().map(|r| body[r].to_owned()).collect()
}

fn first_item(body: &str, container: &str) -> Option<String> {
    items(body, container).into_iter().next()
}

/// The text of an element directly inside an item (not inside its nested items).
fn child(item: &str, tag: &str) -> Option<String> {
    let inner = item.strip_prefix("<item>").and_then(|s| s.strip_suffix("</item>")).unwrap_or(item);
    // Drop nested items: what is left are the item's own elements.
    let mut flat = String::new();
    let mut rest = inner;
    while let Some(o) = rest.find("<item>") {
        flat.push_str(&rest[..o]);
        let nested = top_items(&format!("<x>{}</x>", &rest[o..]), "x");
        let len = nested.first().map_or(rest.len() - o, |r| r.end - r.start);
        rest = &rest[(o + len).min(rest.len())..];
    }
    flat.push_str(rest);
    let open = format!("<{tag}>");
    let value = flat.split(&open).nth(1)?.split(&format!("</{tag}>")).next()?;
    Some(value.to_owned())
}

/// The answer with `<set>` holding exactly these items (added when absent).
fn with_set(body: &str, set: &str, items: &[&str]) -> String {
    let filled = if items.is_empty() { format!("<{set}/>") } else { format!("<{set}>{}</{set}>", items.concat()) };
    let (open, close, empty) = (format!("<{set}>"), format!("</{set}>"), format!("<{set}/>"));
    if let Some(start) = body.find(&open) {
        if let Some(end) = body[start..].find(&close).map(|p| start + p + close.len()) {
            // The set's own closing tag: the first one after its last top-level item.
            let end = top_items(body, set)
                .last()
                .map_or(end, |r| body[r.end..].find(&close).map_or(end, |p| r.end + p + close.len()));
            return format!("{}{filled}{}", &body[..start], &body[end..]);
        }
    }
    if let Some(start) = body.find(&empty) {
        return format!("{}{filled}{}", &body[..start], &body[start + empty.len()..]);
    }
    // Absent: before the root's closing tag.
    match body.rfind("</") {
        Some(at) => format!("{}{filled}{}", &body[..at], &body[at..]),
        None => body.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GROUPS: &str = "<R><securityGroupInfo><item><groupId>sg-1</groupId><ipPermissions><item><groups><item><groupId>sg-9</groupId></item></groups></item></ipPermissions></item><item><groupId>sg-2</groupId><ipPermissions/></item></securityGroupInfo><requestId>x</requestId></R>";

    #[test]
    fn items_and_their_own_elements_are_found_past_nested_items() {
        let items = items(GROUPS, "securityGroupInfo");
        assert_eq!(items.len(), 2);
        assert_eq!(child(&items[0], "groupId").as_deref(), Some("sg-1"));
        assert_eq!(child(&items[1], "groupId").as_deref(), Some("sg-2"));
    }

    #[test]
    fn a_lagging_group_reads_as_before_and_the_others_as_now() {
        let before = Before {
            group: Some("<item><groupId>sg-2</groupId><old/></item>".into()),
            rules: vec![],
            until: Instant::now(),
        };
        let lagging = BTreeMap::from([("sg-2", &before)]);
        let out = lag_groups(GROUPS, &lagging);
        assert!(out.contains("<item><groupId>sg-2</groupId><old/></item>"), "{out}");
        assert!(out.contains("<groupId>sg-9</groupId>"), "{out}");
    }

    #[test]
    fn lagging_rules_replace_the_groups_rules() {
        let body = "<R><securityGroupRuleSet><item><securityGroupRuleId>sgr-new</securityGroupRuleId><groupId>sg-1</groupId></item><item><securityGroupRuleId>sgr-o</securityGroupRuleId><groupId>sg-3</groupId></item></securityGroupRuleSet></R>";
        let old = "<item><securityGroupRuleId>sgr-old</securityGroupRuleId><groupId>sg-1</groupId></item>".to_owned();
        let before = Before { group: None, rules: vec![old], until: Instant::now() };
        let lagging = BTreeMap::from([("sg-1", &before)]);
        let out = lag_rules(body, &lagging, &[]);
        assert!(out.contains("sgr-old") && out.contains("sgr-o<") && !out.contains("sgr-new"), "{out}");
        // All of a group's rules revoked: the old ones come back for a read filtered on it.
        let empty = "<R><securityGroupRuleSet/></R>";
        let form = vec![("Filter.1.Name".into(), "group-id".into()), ("Filter.1.Value.1".into(), "sg-1".into())];
        assert!(lag_rules(empty, &lagging, &form).contains("sgr-old"));
    }

    #[test]
    fn a_revoke_by_permission_splits_into_one_source_each() {
        let form = http::form_decode("Action=RevokeSecurityGroupIngress&GroupId=sg-1&IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=465&IpPermissions.1.ToPort=465&IpPermissions.1.IpRanges.1.CidrIp=0.0.0.0%2F0&IpPermissions.1.IpRanges.2.CidrIp=10.0.0.0%2F8&IpPermissions.2.IpProtocol=-1&IpPermissions.2.Groups.1.GroupId=sg-2&IpPermissions.2.Groups.1.UserId=111122223333");
        let atomic = atomic_permissions(&form);
        assert_eq!(atomic.len(), 3);
        assert!(atomic[1].form.contains("IpPermissions.1.IpRanges.1.CidrIp=10.0.0.0%2F8"), "{}", atomic[1].form);
        assert!(
            atomic[2]
                .xml
                .contains("<groups><item><groupId>sg-2</groupId><userId>111122223333</userId></item></groups>"),
            "{}",
            atomic[2].xml
        );
        let rule = "<item><groupId>sg-1</groupId><isEgress>false</isEgress><ipProtocol>tcp</ipProtocol><fromPort>465</fromPort><toPort>465</toPort><cidrIpv4>0.0.0.0/0</cidrIpv4></item>";
        assert!(atomic[0].matches(rule, false) && !atomic[1].matches(rule, false) && !atomic[0].matches(rule, true));
    }

    #[test]
    fn sets_are_filled_replaced_or_added() {
        let body = "<R><return>true</return><securityGroupRuleSet><item><a/></item></securityGroupRuleSet><requestId>x</requestId></R>";
        assert_eq!(with_set(body, "securityGroupRuleSet", &["<item><b/></item>"]), "<R><return>true</return><securityGroupRuleSet><item><b/></item></securityGroupRuleSet><requestId>x</requestId></R>");
        let bare = "<R><return>true</return></R>";
        assert_eq!(
            with_set(bare, "unknownIpPermissionSet", &["<item/>"]),
            "<R><return>true</return><unknownIpPermissionSet><item/></unknownIpPermissionSet></R>"
        );
    }
}
