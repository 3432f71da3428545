// Every resource and property of the lab's stack, with the IAM documents compared with the
// files in policy/, plus a normalised snapshot of the whole template.

import * as fs from 'fs';
import * as path from 'path';
import { CfnResource, Stack, TagManager } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { ArtifactError } from '../lib/artifact';
import { booleanContext, choiceContext } from '../lib/context';
import { POLICY_DIR } from '../lib/policy';
import { FUNCTION_POLICIES } from '../lib/remediation';
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
      .filter(isTaggableResource)
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

describe('the lab stack with the fast path (fastPath: true)', () => {
  let lab: Synthesized;
  let template: Template;
  let resources: Record<string, any>;
  let ids: Record<
    | 'bucket'
    | 'bucketPolicy'
    | 'configRole'
    | 'functionRole'
    | 'function'
    | 'logGroup'
    | 'configPermission'
    | 'trail'
    | 'rule'
    | 'permission',
    string
  >;

  beforeAll(() => {
    lab = synthLab({ functionZip: functionZip('arm64'), fastPath: true });
    template = lab.template;
    resources = template.toJSON().Resources;
    const { recording, remediation, fastPath } = lab.stack;
    if (!fastPath) throw new Error('fastPath: true made no fast path');
    ids = {
      bucket: logicalId(recording.bucket),
      bucketPolicy: logicalId(recording.bucketPolicy),
      configRole: logicalId(recording.role),
      function: logicalId(remediation.function),
      functionRole: logicalId(remediation.role),
      logGroup: logicalId(remediation.logGroup),
      configPermission: logicalId(remediation.permission),
      trail: logicalId(fastPath.trail),
      rule: logicalId(fastPath.rule),
      permission: logicalId(fastPath.permission),
    };
  });

  test('adds exactly a trail, an EventBridge rule and an invoke permission', () => {
    const types = Object.values(resources as Record<string, { Type: string }>)
      .map((resource) => resource.Type)
      .sort();
    expect(types).toEqual(
      [
        'AWS::CloudTrail::Trail',
        'AWS::Config::ConfigRule',
        'AWS::Config::ConfigurationRecorder',
        'AWS::Config::DeliveryChannel',
        'AWS::Events::Rule',
        'AWS::IAM::Role',
        'AWS::IAM::Role',
        'AWS::Lambda::Function',
        'AWS::Lambda::Permission',
        'AWS::Lambda::Permission',
        'AWS::Logs::LogGroup',
        'AWS::S3::Bucket',
        'AWS::S3::BucketPolicy',
      ].sort(),
    );
  });

  test("every other resource is the default stack's, but the bucket policy and the function's environment", () => {
    const defaults = synthLab({ functionZip: functionZip('arm64') }).template.toJSON().Resources;
    const added = [ids.trail, ids.rule, ids.permission];
    expect(Object.keys(resources).filter((id) => !added.includes(id)).sort()).toEqual(Object.keys(defaults).sort());
    for (const [id, resource] of Object.entries(defaults as Record<string, any>)) {
      if (id === ids.bucketPolicy || id === ids.function) continue;
      expect({ id, resource: resources[id] }).toEqual({ id, resource });
    }
    const { Environment, ...functionProperties } = resources[ids.function].Properties;
    expect(Environment).toBeDefined();
    expect({ ...resources[ids.function], Properties: functionProperties }).toEqual(defaults[ids.function]);
    // The function role, and so the function's IAM policy, is unchanged (compared above).
    expect(resources[ids.functionRole]).toEqual(defaults[ids.functionRole]);
  });

  test('trail: sg-monitoring-lab-trail, management events to the bucket under cloudtrail/, after its policy', () => {
    const trail = resources[ids.trail];
    expect(trail.Properties).toEqual({
      TrailName: 'sg-monitoring-lab-trail',
      S3BucketName: { Ref: ids.bucket },
      S3KeyPrefix: 'cloudtrail',
      IsLogging: true,
      IsMultiRegionTrail: false,
      IncludeGlobalServiceEvents: false,
      Tags: [{ Key: OWNER_TAG.key, Value: OWNER_TAG.value }],
    });
    // No EventSelectors, AdvancedEventSelectors or InsightSelectors: CloudTrail's default,
    // every management event and no data event (checked by the toEqual above).
    expect(trail.DependsOn).toEqual([ids.bucketPolicy]);
  });

  test('bucket policy: config-bucket-policy.json, then cloudtrail-bucket-policy.json for this trail', () => {
    const values = { 'AWS::AccountId': ACCOUNT, 'AWS::Partition': PARTITION, BucketName: { Ref: ids.bucket } };
    const config = renderedPolicy('config-bucket-policy.json', values) as { Statement: unknown[] };
    const trail = renderedPolicy('cloudtrail-bucket-policy.json', {
      ...values,
      'AWS::Region': REGION,
      TrailName: 'sg-monitoring-lab-trail',
    }) as { Statement: unknown[] };
    expect(resources[ids.bucketPolicy].Properties).toEqual({
      Bucket: { Ref: ids.bucket },
      PolicyDocument: { ...config, Statement: [...config.Statement, ...trail.Statement] },
    });
    expect(trail.Statement).toHaveLength(2);
  });

  test('EventBridge rule: sg-monitoring-lab-fast-path, the pattern of policy/, enabled, the function as target', () => {
    expect(resources[ids.rule].Properties).toEqual({
      Name: 'sg-monitoring-lab-fast-path',
      EventPattern: JSON.parse(fs.readFileSync(path.join(POLICY_DIR, 'fast-path-event-pattern.json'), 'utf8')),
      State: 'ENABLED',
      Targets: [{ Id: 'function', Arn: { 'Fn::GetAtt': [ids.function, 'Arn'] } }],
      Tags: [{ Key: OWNER_TAG.key, Value: OWNER_TAG.value }],
    });
    expect(resources[ids.rule].DependsOn).toBeUndefined();
  });

  test('invoke permission: events.amazonaws.com on the function, from this rule only', () => {
    expect(ids.permission).toMatch(/^FastPatheventsinvoke/);
    expect(resources[ids.permission].Properties).toEqual({
      Action: 'lambda:InvokeFunction',
      FunctionName: { 'Fn::GetAtt': [ids.function, 'Arn'] },
      Principal: 'events.amazonaws.com',
      SourceArn: { 'Fn::GetAtt': [ids.rule, 'Arn'] },
    });
    // Config's permission is still there, as it was.
    expect(resources[ids.configPermission].Properties.Principal).toBe('config.amazonaws.com');
  });

  test("function: RULE_PARAMETERS is the Config rule's parameters as JSON", () => {
    expect(resources[ids.function].Properties.Environment).toEqual({
      Variables: { RULE_PARAMETERS: '{"debug":"true"}' },
    });
    const [rule] = Object.values(template.findResources('AWS::Config::ConfigRule'));
    expect(JSON.parse(resources[ids.function].Properties.Environment.Variables.RULE_PARAMETERS)).toEqual(
      rule.Properties.InputParameters,
    );
  });

  test(`the trail and the rule carry ${OWNER_TAG.key}=${OWNER_TAG.value} too`, () => {
    const taggable = lab.stack.node
      .findAll()
      .filter(isTaggableResource)
      .map((c) => Stack.of(c).getLogicalId(c));
    expect(taggable.sort()).toEqual(
      [ids.bucket, ids.configRole, ids.functionRole, ids.function, ids.logGroup, ids.trail, ids.rule].sort(),
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

describe('the fast path is off by default', () => {
  test('no prop and `fastPath: false` synthesize the same template, with no fast-path resource', () => {
    const none = synthLab({ functionZip: functionZip('arm64') });
    const off = synthLab({ functionZip: functionZip('arm64'), fastPath: false });
    expect(normalise(off.template.toJSON())).toEqual(normalise(none.template.toJSON()));
    expect(none.stack.fastPath).toBeUndefined();
    for (const type of ['AWS::CloudTrail::Trail', 'AWS::Events::Rule']) {
      expect({ type, found: Object.keys(none.template.findResources(type)) }).toEqual({ type, found: [] });
    }
    none.template.resourcePropertiesCountIs('AWS::Lambda::Permission', { Principal: 'events.amazonaws.com' }, 0);
    none.template.hasResourceProperties('AWS::Lambda::Function', { Environment: Match.absent() });
    const [policy] = Object.values(none.template.findResources('AWS::S3::BucketPolicy'));
    const sids = policy.Properties.PolicyDocument.Statement.map((s: { Sid: string }) => s.Sid);
    expect(sids).toEqual(
      JSON.parse(fs.readFileSync(path.join(POLICY_DIR, 'config-bucket-policy.json'), 'utf8')).Statement.map(
        (s: { Sid: string }) => s.Sid,
      ),
    );
  });

  test('`-c fastPath=…` in bin/: true and false, as strings or booleans; anything else is an error', () => {
    expect(booleanContext('fastPath', undefined)).toBeUndefined();
    expect(booleanContext('fastPath', 'true')).toBe(true);
    expect(booleanContext('fastPath', true)).toBe(true);
    expect(booleanContext('fastPath', 'false')).toBe(false);
    expect(booleanContext('fastPath', false)).toBe(false);
    expect(() => booleanContext('fastPath', 'yes')).toThrow('context fastPath="yes": expected true or false');
  });
});

test('the fast path names are props, and its RULE_PARAMETERS follow ruleParameters', () => {
  const { template } = synthLab({
    functionZip: functionZip('arm64'),
    fastPath: true,
    trailName: 'lab-trail',
    fastPathRuleName: 'lab-fast-path',
    ruleParameters: { debug: 'false', mode: 'report' },
  });
  template.hasResourceProperties('AWS::CloudTrail::Trail', { TrailName: 'lab-trail' });
  template.hasResourceProperties('AWS::Events::Rule', { Name: 'lab-fast-path' });
  template.hasResourceProperties('AWS::Lambda::Function', {
    Environment: { Variables: { RULE_PARAMETERS: '{"debug":"false","mode":"report"}' } },
  });
  template.hasResourceProperties('AWS::Config::ConfigRule', { InputParameters: { debug: 'false', mode: 'report' } });
  // The bucket admits the trail of that name only.
  const [policy] = Object.values(template.findResources('AWS::S3::BucketPolicy'));
  const trailArns = JSON.stringify(
    policy.Properties.PolicyDocument.Statement.filter((s: { Sid: string }) => s.Sid.startsWith('AWSCloudTrail')).map(
      (s: any) => s.Condition.StringEquals['aws:SourceArn'],
    ),
  );
  expect(trailArns.match(/:trail\/lab-trail"/g)).toHaveLength(2);
  expect(trailArns).not.toContain('sg-monitoring-lab-trail');
});

describe("the function role's policy (functionPolicy)", () => {
  const functionRole = (lab: Synthesized) => lab.template.toJSON().Resources[logicalId(lab.stack.remediation.role)];

  test("no prop and `functionPolicy: 'lab'` synthesize the same template: the lab's exact policy", () => {
    const none = synthLab({ functionZip: functionZip('arm64') });
    const lab = synthLab({ functionZip: functionZip('arm64'), functionPolicy: 'lab' });
    expect(normalise(lab.template.toJSON())).toEqual(normalise(none.template.toJSON()));
    expect(functionRole(lab).Properties.Policies[0].PolicyDocument).toEqual(renderedPolicy('lambda-lab-policy.json', {}));
  });

  test("`functionPolicy: 'least-privilege'`: the scoped document for the function's name; nothing else changes", () => {
    const none = synthLab({ functionZip: functionZip('arm64') });
    const scoped = synthLab({ functionZip: functionZip('arm64'), functionPolicy: 'least-privilege' });
    const document = renderedPolicy('lambda-least-privilege-policy.json', {
      'AWS::AccountId': ACCOUNT,
      'AWS::Partition': PARTITION,
      'AWS::Region': REGION,
      FunctionName: 'awsconfig_lambda_security_group',
    });
    expect(functionRole(scoped).Properties).toEqual({
      ...functionRole(none).Properties,
      Policies: [{ PolicyName: 'awsconfig_lambda_ec2_security_group_policy', PolicyDocument: document }],
    });
    // Scoped: ingress changes on this account's groups, logs on the function's own group.
    const statements = (document as { Statement: { Sid: string; Resource: unknown }[] }).Statement;
    expect(statements.find((s) => s.Sid === 'ChangeIngress')?.Resource).toEqual({
      'Fn::Join': ['', ['arn:', PARTITION, ':ec2:', REGION, ':', ACCOUNT, ':security-group/*']],
    });
    expect(JSON.stringify(document)).not.toContain('arn:aws:logs:*');
    // Every other resource is the same as in the default stack.
    const others = (lab: Synthesized) => {
      const resources = { ...(normalise(lab.template.toJSON()) as { Resources: Record<string, unknown> }).Resources };
      delete resources[logicalId(lab.stack.remediation.role)];
      return resources;
    };
    expect(others(scoped)).toEqual(others(none));
  });

  test('the policy follows functionName', () => {
    const { template } = synthLab({
      functionZip: functionZip('arm64'),
      functionName: 'lab-function',
      functionPolicy: 'least-privilege',
    });
    const roles = template.findResources('AWS::IAM::Role', {
      Properties: { RoleName: 'awsconfig_lambda_ec2_security_group_role' },
    });
    const [role] = Object.values(roles);
    const text = JSON.stringify(role.Properties.Policies[0].PolicyDocument);
    expect(text).toContain(':log-group:/aws/lambda/lab-function:*');
    expect(text).not.toContain('awsconfig_lambda_security_group');
  });

  test('`-c functionPolicy=…` in bin/: lab or least-privilege; anything else is an error', () => {
    expect(FUNCTION_POLICIES).toEqual(['lab', 'least-privilege']);
    expect(choiceContext('functionPolicy', undefined, FUNCTION_POLICIES)).toBeUndefined();
    expect(choiceContext('functionPolicy', 'lab', FUNCTION_POLICIES)).toBe('lab');
    expect(choiceContext('functionPolicy', 'least-privilege', FUNCTION_POLICIES)).toBe('least-privilege');
    expect(() => choiceContext('functionPolicy', 'admin', FUNCTION_POLICIES)).toThrow(
      'context functionPolicy="admin": expected one of lab, least-privilege',
    );
    expect(() => choiceContext('functionPolicy', true, FUNCTION_POLICIES)).toThrow('expected one of');
  });
});

/** A resource that takes tags (CfnRule, for one, has a V2 tag manager). */
function isTaggableResource(c: unknown): c is CfnResource {
  return CfnResource.isCfnResource(c) && (TagManager.isTaggable(c) || TagManager.isTaggableV2(c));
}

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
