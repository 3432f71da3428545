// Lab step 1: AWS Config records security groups only and delivers to a bucket of its own.
// Owns the delivery bucket (public access blocked, SSE-S3, Config's delivery policy with
// TLS-only access, and CloudTrail's when the fast path's trail is given), the Config role
// (AWS_ConfigRole + write to the bucket), the recorder and its delivery channel. `deploy`'s
// counterparts: bucket.rs, role.rs, recorder.rs.

import { Aws, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as config from 'aws-cdk-lib/aws-config';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { readPolicy } from './policy';

export interface ConfigRecordingProps {
  readonly bucketName: string;
  readonly configRoleName: string;
  /** The Config role's inline policy (policy/config-delivery-policy.json). */
  readonly deliveryPolicyName: string;
  /** The AWS managed policy the Config role carries, e.g. `service-role/AWS_ConfigRole`. */
  readonly configManagedPolicy: string;
  readonly recorderName: string;
  readonly channelName: string;
  /** What the recorder records; nothing else, and no global resource types. */
  readonly resourceTypes: string[];
  /**
   * The fast path's trail: when given, the bucket policy also lets CloudTrail deliver that
   * trail's logs (policy/cloudtrail-bucket-policy.json). @default no trail
   */
  readonly trailName?: string;
  /** Where the policy documents are read from. @default policy/ of the repository */
  readonly policyDir?: string;
}

export class ConfigRecording extends Construct {
  public readonly bucket: s3.Bucket;
  public readonly bucketPolicy: s3.CfnBucketPolicy;
  public readonly role: iam.CfnRole;
  public readonly recorder: config.CfnConfigurationRecorder;
  public readonly channel: config.CfnDeliveryChannel;

  constructor(scope: Construct, id: string, props: ConfigRecordingProps) {
    super(scope, id);

    this.bucket = new s3.Bucket(this, 'Bucket', {
      bucketName: props.bucketName,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      // It holds Config's history: a stack deletion keeps it (see README, "Removing the stack").
      removalPolicy: RemovalPolicy.RETAIN,
    });
    Validations.of(this.bucket).acknowledge({
      id: 'AwsSolutions::AwsSolutions-S1',
      reason:
        "The bucket only receives AWS Config deliveries and, with the fast path, the lab trail's logs (its policy " +
        'allows nothing else), and the lab has no second bucket to send access logs to; where reads must be ' +
        'audited, enable CloudTrail S3 data events.',
    });
    const values = {
      'AWS::AccountId': Aws.ACCOUNT_ID,
      'AWS::Partition': Aws.PARTITION,
      'AWS::Region': Aws.REGION,
      BucketName: this.bucket.bucketName,
    };

    // The document exactly as in policy/, TLS-only statement included (so no `enforceSSL`,
    // which would add a second, differently worded statement). With the fast path, the
    // statements of policy/cloudtrail-bucket-policy.json follow Config's, as `deploy` orders them.
    const policyDocument = readPolicy('config-bucket-policy.json', values, props.policyDir);
    if (props.trailName !== undefined) {
      const trailValues = { ...values, TrailName: props.trailName };
      const trail = readPolicy('cloudtrail-bucket-policy.json', trailValues, props.policyDir);
      policyDocument.Statement = [...policyDocument.Statement, ...trail.Statement];
    }
    this.bucketPolicy = new s3.CfnBucketPolicy(this, 'BucketPolicy', {
      bucket: this.bucket.bucketName,
      policyDocument,
    });

    this.role = new iam.CfnRole(this, 'Role', {
      roleName: props.configRoleName,
      assumeRolePolicyDocument: readPolicy('config-trust.json', values, props.policyDir),
      managedPolicyArns: [`arn:${Aws.PARTITION}:iam::aws:policy/${props.configManagedPolicy}`],
      policies: [
        {
          policyName: props.deliveryPolicyName,
          policyDocument: readPolicy('config-delivery-policy.json', values, props.policyDir),
        },
      ],
    });

    Validations.of(this.role).acknowledge(
      {
        id: `AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/${props.configManagedPolicy}]`,
        reason:
          'The lab requires the AWS managed service-role/AWS_ConfigRole: it grants Config read access to every ' +
          'resource type it can record and is kept current by AWS as Config supports new types.',
      },
      {
        id: `AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::<${Stack.of(this).getLogicalId(
          this.bucket.node.defaultChild as s3.CfnBucket,
        )}>/AWSLogs/<AWS::AccountId>/*]`,
        reason:
          "Config's documented delivery policy (policy/config-delivery-policy.json): Config chooses the object keys " +
          "under AWSLogs/<account>/, so the prefix is as narrow as it can be: one bucket, one account's prefix.",
      },
    );

    this.recorder = new config.CfnConfigurationRecorder(this, 'Recorder', {
      name: props.recorderName,
      roleArn: this.role.attrArn,
      recordingGroup: {
        allSupported: false,
        includeGlobalResourceTypes: false,
        resourceTypes: props.resourceTypes,
      },
    });

    // No SNS topic and no key prefix, as in the lab. CloudFormation starts the recorder once
    // its channel exists; Config checks the bucket policy when the channel is created.
    this.channel = new config.CfnDeliveryChannel(this, 'Channel', {
      name: props.channelName,
      s3BucketName: this.bucket.bucketName,
    });
    this.channel.addResourceDependency(this.recorder, 'a delivery channel needs a recorder');
    this.channel.addResourceDependency(this.bucketPolicy, 'Config checks it may write to the bucket');
  }
}
