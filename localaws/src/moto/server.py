"""moto's server, with one read made to cost what it costs on AWS.

Started by the local AWS (localaws/src/moto/mod.rs) with the interpreter moto is installed for:
`python -c <this file> -H 127.0.0.1 -p PORT`. It changes no answer, only the work behind one:

- DescribeSecurityGroupRules filtered by `group-id`: moto 5.2.1 copies every rule of the region
  and then filters, so one group's rules cost a region-wide scan (1.5 s at 5,000 groups and
  20,000 rules, against 5 ms for the revoke that follows). On AWS the filtered read is one
  group's work. Here only the named groups' rules are copied; the same filters then decide, in
  moto's own order (VPC, group, egress before ingress), so the answer is moto's to the byte.

Anything else, or a moto whose backend lacks the method, runs moto unchanged. Either way a line
on stderr (moto.log) says which.
"""

import copy
import itertools
import sys

from moto.server import main

# Written to moto.log when the read is patched (the local AWS's tests look for it).
PATCHED = "DescribeSecurityGroupRules by group id reads only the named groups"

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
            copy.copy(rule)
            for vpc_and_group in self.groups.values()
            for group in vpc_and_group.values()
            if group.id in named
            for rule in list(itertools.chain(group.egress_rules, group.ingress_rules))
        ]
        for rule in rules:
            if rule.from_port is None:
                rule.from_port = -1
            if rule.to_port is None:
                rule.to_port = -1
        return [rule for rule in rules if rule.matches_filters(filters)]

    SecurityGroupBackend.describe_security_group_rules = describe_security_group_rules
    print(f"localaws: {PATCHED}", file=sys.stderr, flush=True)
except (ImportError, AttributeError) as err:
    print(f"localaws: moto's DescribeSecurityGroupRules left as it is ({err})", file=sys.stderr)

main()
