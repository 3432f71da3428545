"""moto's server, with its security-group calls made to cost and answer what they do on AWS.

Started by the local AWS (localaws/src/moto/mod.rs) with the interpreter moto is installed for:
`python -c <this file> -H 127.0.0.1 -p PORT`. It changes the work behind two reads and the
answers of the change calls, where moto 5.2.1's fall short of EC2's:

- DescribeSecurityGroupRules filtered by `group-id`: moto 5.2.1 copies every rule of the region
  and then filters, so one group's rules cost a region-wide scan (1.5 s at 5,000 groups and
  20,000 rules, against 5 ms for the revoke that follows). On AWS the filtered read is one
  group's work. Here only the named groups' rules are copied; the same filters then decide, in
  moto's own order (VPC, group, egress before ingress), so the answer is moto's to the byte.

- DescribeSecurityGroups and DescribeSecurityGroupRules with `MaxResults` or `NextToken`: moto
  5.2.1 ignores both and answers everything at once, so a client's paging is never exercised.
  AWS answers at most `MaxResults` items (5 to 1000; outside that range `InvalidParameterValue`)
  and a `NextToken` for the rest (EC2 API reference, DescribeSecurityGroups and
  DescribeSecurityGroupRules, "MaxResults"; "Pagination" in the EC2 developer guide). Here the
  pages are cut from moto's own answer, in its order; a token this server did not hand out is
  `InvalidNextToken`, as moto answers elsewhere. Without either parameter all items are
  returned, as on AWS.

- AuthorizeSecurityGroupIngress/Egress and RevokeSecurityGroupIngress/Egress: moto applies a
  call's permissions one by one, so a permission that fails (a duplicate, one not found) leaves
  the ones before it applied, and it answers only the last permission's rules (Authorize) or
  none (Revoke). EC2's Authorize answers every rule it added in `SecurityGroupRules` and its
  Revoke every rule it removed in `RevokedSecurityGroupRules` (EC2 API reference,
  AuthorizeSecurityGroupIngress and RevokeSecurityGroupIngress, "Response Elements"); a call
  that fails, with InvalidPermission.Duplicate or InvalidPermission.NotFound, applies none of
  its permissions (how EC2 behaves, not a sentence of the reference, which documents the
  errors and the answers). Here a failed call puts the group's rules back as they were, and a call that
  succeeds answers the rules it added or removed. The front (src/ec2.rs) then answers a change
  with one moto call instead of listing the group's rules before and after it (the cost of
  every change in a sweep), when reads do not lag.

- A group looked up by id (every change call, and the front's patch above): moto 5.2.1 copies
  every group of the region and compares ids one by one (30 ms of a change's time at 5,000
  groups). Groups are kept by id, so the id is looked up in each VPC's table first; a miss (a
  name, say) falls back to moto's own scan, so the answer is the same.

Anything else, or a moto whose backend lacks the method, runs moto unchanged. Either way a line
on stderr (moto.log) says which.
"""

import base64
import copy
import itertools
import sys

from moto.server import main

# Written to moto.log when the read is patched (the local AWS's tests look for it).
PATCHED = "DescribeSecurityGroupRules by group id reads only the named groups"
PAGED = "DescribeSecurityGroups and DescribeSecurityGroupRules answer in pages of MaxResults"
# Written when the change calls answer what they changed (the front relies on it, src/ec2.rs).
ANSWERED = "Authorize and Revoke are all-or-nothing and answer every rule they changed"

def listed(rule):
    """A rule as DescribeSecurityGroupRules lists it: ports -1 where the protocol has none."""
    rule = copy.copy(rule)
    if rule.from_port is None:
        rule.from_port = -1
    if rule.to_port is None:
        rule.to_port = -1
    return rule


try:
    from moto.ec2.models.security_groups import SecurityGroupBackend
    from moto.ec2.exceptions import InvalidGroupIdMalformedError
    from moto.ec2.utils import is_valid_security_group_id

    region_wide = SecurityGroupBackend.describe_security_group_rules

    def describe_security_group_rules(self, sg_rule_ids, filters):
        wanted = (filters or {}).get("group-id")
        if sg_rule_ids or not wanted:
            return region_wide(self, sg_rule_ids, filters)
        for group_id in wanted:
            if not is_valid_security_group_id(group_id):
                raise InvalidGroupIdMalformedError(group_id)
        named = set(wanted)
        rules = [
            listed(rule)
            for vpc_and_group in self.groups.values()
            for group in vpc_and_group.values()
            if group.id in named
            for rule in list(itertools.chain(group.egress_rules, group.ingress_rules))
        ]
        return [rule for rule in rules if rule.matches_filters(filters)]

    SecurityGroupBackend.describe_security_group_rules = describe_security_group_rules

    scan_for_id = SecurityGroupBackend.get_security_group_from_id

    def get_security_group_from_id(self, group_id):
        for groups in list(self.groups.values()):
            group = groups.get(group_id)
            if group is not None and group.id == group_id:
                return group
        return scan_for_id(self, group_id)

    SecurityGroupBackend.get_security_group_from_id = get_security_group_from_id
    print(f"localaws: {PATCHED}", file=sys.stderr, flush=True)
except (ImportError, AttributeError) as err:
    print(f"localaws: moto's DescribeSecurityGroupRules left as it is ({err})", file=sys.stderr)


def paged(answer, key, operation):
    """`answer` (moto's response method) cut into pages of MaxResults, as AWS answers them."""

    def method(self):
        from moto.core.responses import ActionResult
        from moto.ec2.exceptions import EC2ClientError, InvalidNextToken

        size, token = self._get_param("MaxResults"), self._get_param("NextToken")
        if size is None and token is None:
            return answer(self)
        try:
            size = int(size) if size is not None else 1000
        except ValueError:
            size = 0
        if not 5 <= size <= 1000:
            raise EC2ClientError(
                "InvalidParameterValue",
                f"Value ( {self._get_param('MaxResults')} ) for parameter maxResults is invalid. "
                "Parameter must be between 5 and 1000.",
            )
        start = 0
        if token is not None:
            try:
                prefix, _, offset = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
                start = int(offset)
                if prefix != operation or start < 0:
                    raise ValueError(token)
            except ValueError:
                raise InvalidNextToken(token) from None
        items = answer(self).result[key]
        result = {key: items[start:start + size]}
        if start + size < len(items):
            result["NextToken"] = base64.urlsafe_b64encode(f"{operation}:{start + size}".encode()).decode()
        return ActionResult(result)

    return method


try:
    from moto.ec2.responses.security_groups import SecurityGroups

    SecurityGroups.describe_security_groups = paged(
        SecurityGroups.describe_security_groups, "SecurityGroups", "DescribeSecurityGroups")
    SecurityGroups.describe_security_group_rules = paged(
        SecurityGroups.describe_security_group_rules, "SecurityGroupRules", "DescribeSecurityGroupRules")
    print(f"localaws: {PAGED}", file=sys.stderr, flush=True)
except (ImportError, AttributeError) as err:
    print(f"localaws: moto's security-group reads answer in one page ({err})", file=sys.stderr)

def revoked(rule):
    """A rule as RevokeSecurityGroupIngress/Egress answers it (`RevokedSecurityGroupRule`)."""
    rule = listed(rule)
    item = {
        "SecurityGroupRuleId": rule.id,
        "GroupId": rule.group_id,
        "IsEgress": rule.is_egress,
        "IpProtocol": rule.ip_protocol,
        "FromPort": rule.from_port,
        "ToPort": rule.to_port,
        "CidrIpv4": rule.cidr_ipv4,
        "CidrIpv6": rule.cidr_ipv6,
        "PrefixListId": rule.prefix_list_id,
        "ReferencedGroupId": (rule.source_group or {}).get("GroupId"),
        "Description": rule.description,
    }
    return {key: value for key, value in item.items() if value is not None}


def changing(original, kind, direction):
    """`original` (moto's response to an Authorize or Revoke), made all-or-nothing and answering
    every rule it changed, as AWS does."""

    def method(self):
        from moto.core.responses import ActionResult

        name_or_id = self._get_param("GroupName") or self._get_param("GroupId")
        group = self.ec2_backend.get_security_group_by_name_or_id(name_or_id, None) if name_or_id else None
        if group is None:
            return original(self)
        attribute = f"{direction}_rules"
        before = list(getattr(group, attribute))
        try:
            original(self)
        except Exception:
            setattr(group, attribute, before)
            raise
        after = getattr(group, attribute)
        if kind == "revoke":
            kept = {rule.id for rule in after}
            removed = [revoked(rule) for rule in before if rule.id not in kept]
            return ActionResult({"Return": True, "RevokedSecurityGroupRules": removed})
        had = {rule.id for rule in before}
        return ActionResult({"Return": True, "SecurityGroupRules": [listed(rule) for rule in after if rule.id not in had]})

    return method


try:
    from moto.ec2.responses.security_groups import SecurityGroups

    for kind in ("authorize", "revoke"):
        for direction in ("ingress", "egress"):
            name = f"{kind}_security_group_{direction}"
            setattr(SecurityGroups, name, changing(getattr(SecurityGroups, name), kind, direction))
    print(f"localaws: {ANSWERED}", file=sys.stderr, flush=True)
except (ImportError, AttributeError) as err:
    print(f"localaws: moto's Authorize and Revoke answer as moto does ({err})", file=sys.stderr)

main()
