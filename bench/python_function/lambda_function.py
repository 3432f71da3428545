"""The lab's function (LAB.md step 3), ported to Python 3.11 for the benchmark.

The lab shipped a Python 2.7 handler: for a configuration change of a security group it reads
the group, authorizes each REQUIRED_PERMISSIONS entry that is missing, revokes each permission
that is not required, logs each action, and reports with PutEvaluations. This port keeps that
behaviour and its structure (whole permissions compared as dictionaries, authorize before
revoke, COMPLIANT after a successful fix, NON_COMPLIANT naming the failed call and the group).

Changes from the lab's code, each needed to run it today or for the side-by-side:
- Python 3 (`items()`, `print()`), the boto3 clients created once per process (Lambda's
  usual advice; the lab created them in every invocation, which is slower).
- Described permissions are normalised to the key layout of REQUIRED_PERMISSIONS before the
  comparison: EC2 now adds `Ipv6Ranges`, `UserId` and descriptions, so the lab's
  dictionary equality would never match and every group would be "fixed" on every run.
- Deleted resources include `ResourceDeletedNotRecorded` (the lab checked `ResourceDeleted`).
- `ScheduledNotification` (added; the lab handled change notifications only): every group of
  the region is read page by page (DescribeSecurityGroups, 1,000 per page), each is evaluated
  and fixed as above (one authorize and one revoke call per group at most), and the results are
  reported 100 per PutEvaluations call with the notification time as ordering timestamp.
"""

import json

import boto3
import botocore

APPLICABLE_RESOURCES = ["AWS::EC2::SecurityGroup"]

REQUIRED_PERMISSIONS = [
    {
        "IpProtocol": "tcp",
        "FromPort": 80,
        "ToPort": 80,
        "UserIdGroupPairs": [],
        "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
        "PrefixListIds": [],
    },
    {
        "IpProtocol": "tcp",
        "FromPort": 443,
        "ToPort": 443,
        "UserIdGroupPairs": [],
        "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
        "PrefixListIds": [],
    },
]

EVALUATIONS_PER_CALL = 100

EC2 = boto3.client("ec2")
CONFIG = boto3.client("config")


def normalize_parameters(rule_parameters):
    normalized = {}
    for key, value in rule_parameters.items():
        value = str(value).lower()
        if value == "true":
            normalized[key.lower()] = True
        elif value == "false":
            normalized[key.lower()] = False
        elif value.isdigit():
            normalized[key.lower()] = int(value)
        else:
            normalized[key.lower()] = True
    return normalized


def normalize_permission(permission):
    """A described permission in REQUIRED_PERMISSIONS' key layout, without descriptions."""
    normalized = {"IpProtocol": permission["IpProtocol"]}
    for key in ("FromPort", "ToPort"):
        if key in permission:
            normalized[key] = permission[key]
    normalized["UserIdGroupPairs"] = [
        {"GroupId": pair["GroupId"]} for pair in permission.get("UserIdGroupPairs", []) if "GroupId" in pair
    ]
    normalized["IpRanges"] = [{"CidrIp": r["CidrIp"]} for r in permission.get("IpRanges", [])]
    normalized["PrefixListIds"] = [{"PrefixListId": p["PrefixListId"]} for p in permission.get("PrefixListIds", [])]
    if permission.get("Ipv6Ranges"):
        normalized["Ipv6Ranges"] = [{"CidrIpv6": r["CidrIpv6"]} for r in permission["Ipv6Ranges"]]
    return normalized


def enforce(group, debug_enabled):
    """Brings one described group to REQUIRED_PERMISSIONS; returns (compliance, annotation)."""
    group_id = group["GroupId"]
    if debug_enabled:
        print("security group definition: ", json.dumps(group, indent=2, default=str))
    ip_permissions = [normalize_permission(p) for p in group.get("IpPermissions", [])]
    authorize_permissions = [item for item in REQUIRED_PERMISSIONS if item not in ip_permissions]
    revoke_permissions = [item for item in ip_permissions if item not in REQUIRED_PERMISSIONS]

    if authorize_permissions:
        print("authorizing for ", group_id, ", ip_permissions ", json.dumps(authorize_permissions, indent=2))
        try:
            EC2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=authorize_permissions)
        except botocore.exceptions.ClientError:
            return "NON_COMPLIANT", "authorize_security_group_ingress failure on group " + group_id

    if revoke_permissions:
        print("revoking for ", group_id, ", ip_permissions ", json.dumps(revoke_permissions, indent=2))
        try:
            EC2.revoke_security_group_ingress(GroupId=group_id, IpPermissions=revoke_permissions)
        except botocore.exceptions.ClientError:
            return "NON_COMPLIANT", "revoke_security_group_ingress failure on group " + group_id

    return "COMPLIANT", "Permissions are correct."


def evaluate_compliance(configuration_item, debug_enabled):
    if configuration_item["resourceType"] not in APPLICABLE_RESOURCES:
        return (
            "NOT_APPLICABLE",
            "The rule doesn't apply to resources of type " + configuration_item["resourceType"] + ".",
        )
    if configuration_item["configurationItemStatus"] in ("ResourceDeleted", "ResourceDeletedNotRecorded"):
        return "NOT_APPLICABLE", "The configurationItem was deleted and therefore cannot be validated."

    group_id = configuration_item["configuration"]["groupId"]
    try:
        response = EC2.describe_security_groups(GroupIds=[group_id])
    except botocore.exceptions.ClientError:
        return "NON_COMPLIANT", "describe_security_groups failure on group " + group_id
    return enforce(response["SecurityGroups"][0], debug_enabled)


def sweep(notification_time, result_token, debug_enabled):
    """ScheduledNotification: every group of the region, reported 100 at a time."""
    pending = []
    reported = 0
    for page in EC2.get_paginator("describe_security_groups").paginate(PaginationConfig={"PageSize": 1000}):
        for group in page["SecurityGroups"]:
            compliance, annotation = enforce(group, debug_enabled)
            pending.append(
                {
                    "ComplianceResourceType": "AWS::EC2::SecurityGroup",
                    "ComplianceResourceId": group["GroupId"],
                    "ComplianceType": compliance,
                    "Annotation": annotation,
                    "OrderingTimestamp": notification_time,
                }
            )
            if len(pending) == EVALUATIONS_PER_CALL:
                CONFIG.put_evaluations(Evaluations=pending, ResultToken=result_token)
                reported += len(pending)
                pending = []
    if pending:
        CONFIG.put_evaluations(Evaluations=pending, ResultToken=result_token)
        reported += len(pending)
    return reported


def lambda_handler(event, context):
    invoking_event = json.loads(event["invokingEvent"])
    rule_parameters = normalize_parameters(json.loads(event.get("ruleParameters") or "{}"))
    debug_enabled = rule_parameters.get("debug", False)
    if debug_enabled:
        print("Received event: " + json.dumps(event, indent=2))

    if invoking_event["messageType"] == "ScheduledNotification":
        reported = sweep(invoking_event["notificationCreationTime"], event["resultToken"], debug_enabled)
        return {"evaluations": reported}

    configuration_item = invoking_event["configurationItem"]
    compliance, annotation = evaluate_compliance(configuration_item, debug_enabled)
    CONFIG.put_evaluations(
        Evaluations=[
            {
                "ComplianceResourceType": configuration_item["resourceType"],
                "ComplianceResourceId": configuration_item["resourceId"],
                "ComplianceType": compliance,
                "Annotation": annotation,
                "OrderingTimestamp": configuration_item["configurationItemCaptureTime"],
            }
        ],
        ResultToken=event["resultToken"],
    )
    return {"compliance": compliance, "annotation": annotation}
