// Every resource and property of the lab's stack, with the IAM documents compared with the
// files in policy/, plus a normalised snapshot of the whole template.

import { CfnResource, Stack, TagManager } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { ArtifactError } from '../lib/artifact';
import { STACK_SET_ASSET_KEY_PREFIX, stackSetSynthesizer } from '../lib/stack-set';
import { MESSAGE_TYPES, OWNER_TAG, SECURITY_GROUP } from '../lib/sg-monitoring-lab-stack';
import { logicalId, synthLab, Synthesized } from './support/app';
import { renderedPolicy } from './support/cfn';
import { functionZip } from './support/zip';

const ACCOUNT = { Ref: 'AWS::AccountId' };
const PARTITION = { Ref: 'AWS::Partition' };
const REGION = { Ref: 'AWS::Region' };

describe('the lab stack with its defaults', () => {
  let lab: Synthesized;
  let template: Template;
  let ids: Record<'bucket' | 'bucketPolicy' | 'configRole' | 'recorder' | 'channel' | 'functionRole' | 'function' | 'logGroup' | 'permission', string>;

  beforeAll(() => {
    lab = synthLab({ functionZip: functionZip('arm64') });
    template = lab.template;
    const { recording, remediation } = lab.stack;
    ids = {
      bucket: logicalId(recording.bucket),
      bucketPolicy: logicalId(recording.bucketPolicy),
      configRole: logicalId(recording.role),
      recorder: logicalId(recording.recorder),
      channel: logicalId(recording.channel),
      functionRole: logicalId(remediation.role),
      function: logicalId(remediation.function),
      logGroup: logicalId(remediation.logGroup),
      permission: logicalId(remediation.permission),
    };
  });

  test('holds the lab resources and nothing else', () => {
    const types = Object.values(template.toJSON().Resources as Record<string, { Type: string }>)
      .map((resource) => resource.Type)
      .sort();
    expect(types).toEqual([
      'AWS::Config::ConfigRule',
      'AWS::Config::ConfigurationRecorder',
      'AWS::Config::DeliveryChannel',
      'AWS::IAM::Role',
      'AWS::IAM::Role',
      'AWS::Lambda::Function',
      'AWS::Lambda::Permission',
      'AWS::Logs::LogGroup',
      'AWS::S3::Bucket',
      'AWS::S3::BucketPolicy',
    ]);
  });

  test('delivery bucket: config-bucket-<account-id>, public access blocked, SSE-S3, kept on deletion', () => {
    template.hasResource('AWS::S3::Bucket', {
      Properties: {
        BucketName: { 'Fn::Join': ['', ['config-bucket-', ACCOUNT]] },
        PublicAccessBlockConfiguration: {
          BlockPublicAcls: true,
          BlockPublicPolicy: true,
          IgnorePublicAcls: true,
          RestrictPublicBuckets: true,
        },
        BucketEncryption: {
          ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
        },
        VersioningConfiguration: Match.absent(),
      },
      DeletionPolicy: 'Retain',
    });
  });

  test('bucket policy: policy/config-bucket-policy.json (Config delivery, TLS only)', () => {
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: ids.bucket },
      PolicyDocument: Match.objectEquals(
        renderedPolicy('config-bucket-policy.json', {
          'AWS::AccountId': ACCOUNT,
          'AWS::Partition': PARTITION,
          BucketName: { Ref: ids.bucket },
        }) as Record<string, unknown>,
      ),
    });
  });

  test('Config role: config-role-<region>, trust and delivery policy from policy/, AWS_ConfigRole', () => {
    expect(template.toJSON().Resources[ids.configRole].Properties).toEqual({
      RoleName: { 'Fn::Join': ['', ['config-role-', REGION]] },
      AssumeRolePolicyDocument: renderedPolicy('config-trust.json', { 'AWS::AccountId': ACCOUNT }),
      ManagedPolicyArns: [{ 'Fn::Join': ['', ['arn:', PARTITION, ':iam::aws:policy/service-role/AWS_ConfigRole']] }],
      Policies: [
        {
          PolicyName: 'config-bucket-delivery',
          PolicyDocument: renderedPolicy('config-delivery-policy.json', {
            'AWS::AccountId': ACCOUNT,
            'AWS::Partition': PARTITION,
            BucketName: { Ref: ids.bucket },
          }),
        },
      ],
      Tags: [{ Key: OWNER_TAG.key, Value: OWNER_TAG.value }],
    });
  });

  test('recorder: `default`, security groups only, no global types, the Config role', () => {
    expect(template.toJSON().Resources[ids.recorder].Properties).toEqual({
      Name: 'default',
      RoleARN: { 'Fn::GetAtt': [ids.configRole, 'Arn'] },
      RecordingGroup: { AllSupported: false, IncludeGlobalResourceTypes: false, ResourceTypes: [SECURITY_GROUP] },
    });
  });

  test('delivery channel: `default`, to the bucket, no prefix, no SNS, after recorder and bucket policy', () => {
    const channel = template.toJSON().Resources[ids.channel];
    expect(channel.Properties).toEqual({ Name: 'default', S3BucketName: { Ref: ids.bucket } });
    expect(channel.DependsOn.sort()).toEqual([ids.bucketPolicy, ids.recorder].sort());
  });

  test("function role: the lab's name, trust and inline policy from policy/, nothing managed", () => {
    expect(template.toJSON().Resources[ids.functionRole].Properties).toEqual({
      RoleName: 'awsconfig_lambda_ec2_security_group_role',
      AssumeRolePolicyDocument: renderedPolicy('lambda-trust.json', {}),
      Policies: [
        {
          PolicyName: 'awsconfig_lambda_ec2_security_group_policy',
          PolicyDocument: renderedPolicy('lambda-lab-policy.json', {}),
        },
      ],
      Tags: [{ Key: OWNER_TAG.key, Value: OWNER_TAG.value }],
    });
  });

  test('function: provided.al2023, bootstrap, arm64, 128 MB, 60 s, the lab description, no VPC', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      FunctionName: 'awsconfig_lambda_security_group',
      Description: 'restrict ingress ports',
      Runtime: 'provided.al2023',
      Handler: 'bootstrap',
      Architectures: ['arm64'],
      MemorySize: 128,
      Timeout: 60,
      Role: { 'Fn::GetAtt': [ids.functionRole, 'Arn'] },
      Code: { S3Bucket: Match.anyValue(), S3Key: Match.stringLikeRegexp('^[0-9a-f]{64}\\.zip$') },
      LoggingConfig: { LogGroup: { Ref: ids.logGroup } },
      VpcConfig: Match.absent(),
      Environment: Match.absent(),
    });
  });

  test("log group: Lambda's own name, kept forever, deleted with the stack", () => {
    template.hasResource('AWS::Logs::LogGroup', {
      Properties: {
        LogGroupName: '/aws/lambda/awsconfig_lambda_security_group',
        RetentionInDays: Match.absent(),
      },
      DeletionPolicy: 'Delete',
    });
  });

  test('invoke permission: config.amazonaws.com on the function, limited to this account', () => {
    expect(ids.permission).toMatch(/^Remediationconfiginvoke/);
    expect(template.toJSON().Resources[ids.permission].Properties).toEqual({
      Action: 'lambda:InvokeFunction',
      FunctionName: { 'Fn::GetAtt': [ids.function, 'Arn'] },
      Principal: 'config.amazonaws.com',
      SourceAccount: ACCOUNT,
    });
  });

  test('rule: EC2_Security_Group on configuration changes, security groups, debug=true, after its needs', () => {
    const [rule] = Object.values(template.findResources('AWS::Config::ConfigRule'));
    expect(rule.Properties).toEqual({
      ConfigRuleName: 'EC2_Security_Group',
      Description: 'Restrict ingress ports to HTTP and HTTPS',
      InputParameters: { debug: 'true' },
      Scope: { ComplianceResourceTypes: [SECURITY_GROUP] },
      Source: {
        Owner: 'CUSTOM_LAMBDA',
        SourceIdentifier: { 'Fn::GetAtt': [ids.function, 'Arn'] },
        SourceDetails: [
          { EventSource: 'aws.config', MessageType: 'ConfigurationItemChangeNotification' },
          { EventSource: 'aws.config', MessageType: 'OversizedConfigurationItemChangeNotification' },
        ],
      },
    });
    expect(MESSAGE_TYPES).toHaveLength(2);
    expect(rule.DependsOn.sort()).toEqual([ids.channel, ids.permission, ids.recorder].sort());
  });

  test(`every taggable resource carries ${OWNER_TAG.key}=${OWNER_TAG.value}`, () => {
    const resources = template.toJSON().Resources;
    const taggable = lab.stack.node
      .findAll()
      .filter((c): c is CfnResource => CfnResource.isCfnResource(c) && TagManager.isTaggable(c))
      .map((c) => Stack.of(c).getLogicalId(c));
    expect(taggable.sort()).toEqual(
      [ids.bucket, ids.configRole, ids.functionRole, ids.function, ids.logGroup].sort(),
    );
    for (const id of taggable) {
      expect({ id, tags: resources[id].Properties.Tags }).toEqual({
        id,
        tags: expect.arrayContaining([{ Key: OWNER_TAG.key, Value: OWNER_TAG.value }]),
      });
    }
  });

  test('normalised snapshot', () => {
    expect(normalise(template.toJSON())).toMatchSnapshot();
  });
});

test('an x86_64 zip makes an x86_64 function', () => {
  const { template } = synthLab({ functionZip: functionZip('x86_64', { deflate: true }) });
  template.hasResourceProperties('AWS::Lambda::Function', { Architectures: ['x86_64'] });
});

test('every name is a prop', () => {
  const { template } = synthLab({
    functionZip: functionZip('arm64'),
    bucketName: 'lab-bucket',
    configRoleName: 'lab-config-role',
    recorderName: 'lab-recorder',
    channelName: 'lab-channel',
    functionRoleName: 'lab-function-role',
    functionPolicyName: 'lab-function-policy',
    deliveryPolicyName: 'lab-delivery',
    configManagedPolicy: 'service-role/Other',
    functionName: 'lab-function',
    ruleName: 'lab-rule',
    permissionId: 'lab-invoke',
    ruleParameters: { debug: 'false', mode: 'report' },
  });
  template.hasResourceProperties('AWS::S3::Bucket', { BucketName: 'lab-bucket' });
  template.hasResourceProperties('AWS::IAM::Role', {
    RoleName: 'lab-config-role',
    ManagedPolicyArns: [{ 'Fn::Join': ['', ['arn:', PARTITION, ':iam::aws:policy/service-role/Other']] }],
    Policies: [Match.objectLike({ PolicyName: 'lab-delivery' })],
  });
  template.hasResourceProperties('AWS::IAM::Role', {
    RoleName: 'lab-function-role',
    Policies: [Match.objectLike({ PolicyName: 'lab-function-policy' })],
  });
  template.hasResourceProperties('AWS::Config::ConfigurationRecorder', { Name: 'lab-recorder' });
  template.hasResourceProperties('AWS::Config::DeliveryChannel', { Name: 'lab-channel' });
  template.hasResourceProperties('AWS::Lambda::Function', { FunctionName: 'lab-function' });
  template.hasResourceProperties('AWS::Logs::LogGroup', { LogGroupName: '/aws/lambda/lab-function' });
  template.hasResourceProperties('AWS::Config::ConfigRule', {
    ConfigRuleName: 'lab-rule',
    InputParameters: { debug: 'false', mode: 'report' },
  });
  expect(Object.keys(template.findResources('AWS::Lambda::Permission'))).toEqual([
    expect.stringMatching(/^Remediationlabinvoke/),
  ]);
});

test('a missing zip stops the synth and says how to build it', () => {
  expect(() => synthLab({ functionZip: '/nonexistent/bootstrap.zip' })).toThrow(ArtifactError);
  expect(() => synthLab({ functionZip: '/nonexistent/bootstrap.zip' })).toThrow('scripts/package');
});

/** The template with what changes from build to build (asset hashes) replaced. */
function normalise(template: unknown): unknown {
  return JSON.parse(JSON.stringify(template).replace(/[0-9a-f]{64}/g, '<asset-hash>'));
}

test('for StackSets: code from <prefix>-<region>, no check for a CDK bootstrap stack', () => {
  const { template } = synthLab({ functionZip: functionZip('arm64'), synthesizer: stackSetSynthesizer('org-lab-code') });
  const json = template.toJSON();
  expect(json.Parameters?.BootstrapVersion).toBeUndefined();
  expect(json.Rules?.CheckBootstrapVersion).toBeUndefined();
  template.hasResourceProperties('AWS::Lambda::Function', {
    Code: {
      S3Bucket: { 'Fn::Sub': 'org-lab-code-${AWS::Region}' },
      S3Key: Match.stringLikeRegexp(`^${STACK_SET_ASSET_KEY_PREFIX}[0-9a-f]{64}\\.zip$`),
    },
  });
});
