// The optional event fast path (`fastPath: true`; `deploy up --fast-path`): CloudTrail records
// the account's management events in this region and delivers them to the lab bucket under
// `cloudtrail/`; an EventBridge rule matches the security-group ingress calls among them
// (policy/fast-path-event-pattern.json) and invokes the lab's function, which may be invoked
// by that rule only. The bucket policy's CloudTrail statements are added by ConfigRecording
// (its `trailName`), since it owns the bucket policy. `deploy`'s counterpart: fast_path.rs.

import * as cloudtrail from 'aws-cdk-lib/aws-cloudtrail';
import * as events from 'aws-cdk-lib/aws-events';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { readPolicy } from './policy';

/** The trail's key prefix in the bucket; policy/cloudtrail-bucket-policy.json names it too. */
export const TRAIL_PREFIX = 'cloudtrail';
/** The function's target id on the rule, as `deploy` names it. */
export const RULE_TARGET_ID = 'function';
export const EVENTS_PRINCIPAL = 'events.amazonaws.com';
export const EVENT_PATTERN_FILE = 'fast-path-event-pattern.json';

export interface FastPathProps {
  readonly trailName: string;
  readonly ruleName: string;
  /** The lab bucket, which the trail delivers to. */
  readonly bucket: s3.IBucket;
  /** The bucket policy that lets CloudTrail deliver (see ConfigRecordingProps.trailName). */
  readonly bucketPolicy: s3.CfnBucketPolicy;
  readonly function: lambda.IFunction;
  /** Where the event pattern is read from. @default policy/ of the repository */
  readonly policyDir?: string;
}

export class FastPath extends Construct {
  public readonly trail: cloudtrail.CfnTrail;
  public readonly rule: events.CfnRule;
  public readonly permission: lambda.CfnPermission;

  constructor(scope: Construct, id: string, props: FastPathProps) {
    super(scope, id);

    // An L1 trail: the L2 would add a bucket policy of its own and other settings than the lab's.
    // No event selectors: CloudTrail's default is all management events and no data events.
    this.trail = new cloudtrail.CfnTrail(this, 'Trail', {
      trailName: props.trailName,
      s3BucketName: props.bucket.bucketName,
      s3KeyPrefix: TRAIL_PREFIX,
      isLogging: true,
      isMultiRegionTrail: false,
      includeGlobalServiceEvents: false,
    });
    // CloudTrail checks, when the trail is created, that the bucket policy lets it deliver.
    this.trail.addResourceDependency(props.bucketPolicy, 'CloudTrail checks it may write to the bucket');

    // The pattern as the file has it (it has no placeholder): the JSON `deploy` sends to PutRule.
    const pattern = readPolicy(EVENT_PATTERN_FILE, {}, props.policyDir);
    this.rule = new events.CfnRule(this, 'Rule', {
      name: props.ruleName,
      eventPattern: pattern,
      state: 'ENABLED',
      targets: [{ id: RULE_TARGET_ID, arn: props.function.functionArn }],
    });

    this.permission = new lambda.CfnPermission(this, 'events-invoke', {
      action: 'lambda:InvokeFunction',
      functionName: props.function.functionArn,
      principal: EVENTS_PRINCIPAL,
      sourceArn: this.rule.attrArn,
    });
  }
}
