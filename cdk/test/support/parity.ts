// The synthesized template read back into the shape of `deploy`'s desired state
// (deploy/src/commands/up.rs `desired()`), with every intrinsic evaluated for one account and
// region, and a field-by-field comparison of the two.

import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { App, Stack } from 'aws-cdk-lib';
import { Environment, evaluator } from './cfn';

type Resource = { Type: string; Properties: Record<string, any>; DependsOn?: string[] };

/** Fields where the two tools cannot agree, each with the reason. Nothing else may differ. */
export const KNOWN_DIFFERENCES: Record<string, string> = {
  'invokePermission.Sid':
    "CloudFormation's AWS::Lambda::Permission has no statement id: CloudFormation names the statement itself",
  'fastPath.permission.Sid':
    "CloudFormation's AWS::Lambda::Permission has no statement id: CloudFormation names the statement itself",
};

/** The known differences that apply to a comparison with or without the fast path. */
export function knownDifferences(fastPath: boolean): string[] {
  return Object.keys(KNOWN_DIFFERENCES).filter((field) => fastPath || !field.startsWith('fastPath.'));
}

/** The resource-based policy statement Lambda makes of an AWS::Lambda::Permission (no Sid). */
function permissionStatement(p: Record<string, any>): Record<string, unknown> {
  const condition: Record<string, unknown> = {};
  if (p.SourceAccount !== undefined) condition.StringEquals = { 'AWS:SourceAccount': p.SourceAccount };
  if (p.SourceArn !== undefined) condition.ArnLike = { 'AWS:SourceArn': p.SourceArn };
  return {
    Effect: 'Allow',
    Principal: { Service: p.Principal },
    Action: p.Action,
    Resource: p.FunctionName,
    ...(Object.keys(condition).length > 0 ? { Condition: condition } : {}),
  };
}

/** The lab as the synthesized stack declares it, in `deploy`'s shape and with concrete values. */
export function desiredFromStack(app: App, stack: Stack, env: Environment): Record<string, any> {
  const assembly = app.synth();
  const artifact = assembly.getStackArtifact(stack.artifactId);
  const template = artifact.template as { Resources: Record<string, Resource> };
  const evaluate = evaluator(template, env);
  const resources = Object.entries(template.Resources);

  const all = (type: string) => resources.filter(([, r]) => r.Type === type);
  const one = (type: string, where: (r: Resource) => boolean = () => true, what = type): [string, Resource] => {
    const found = all(type).filter(([, r]) => where(r));
    if (found.length !== 1) throw new Error(`the template has ${found.length} ${what}, not one`);
    return found[0];
  };
  const byPrincipal = (principal: string) => (r: Resource) => r.Properties.Principal === principal;
  const byGetAtt = (value: unknown): Resource => {
    const id = (value as { 'Fn::GetAtt'?: [string, string] })?.['Fn::GetAtt']?.[0];
    if (!id || !template.Resources[id]) throw new Error(`expected a Fn::GetAtt of a resource, got ${JSON.stringify(value)}`);
    return template.Resources[id];
  };

  const [, bucket] = one('AWS::S3::Bucket');
  const [, bucketPolicy] = one('AWS::S3::BucketPolicy');
  const [, recorder] = one('AWS::Config::ConfigurationRecorder');
  const [, channel] = one('AWS::Config::DeliveryChannel');
  const [, fn] = one('AWS::Lambda::Function');
  const [, permission] = one(
    'AWS::Lambda::Permission',
    byPrincipal('config.amazonaws.com'),
    'AWS::Lambda::Permission for config.amazonaws.com',
  );
  const [, rule] = one('AWS::Config::ConfigRule');
  const configRole = byGetAtt(recorder.Properties.RoleARN);
  const functionRole = byGetAtt(fn.Properties.Role);

  const role = (r: Resource) => {
    const p = evaluate(r.Properties);
    return {
      name: p.RoleName,
      trust: p.AssumeRolePolicyDocument,
      managedPolicies: p.ManagedPolicyArns ?? [],
      inlinePolicies: Object.fromEntries((p.Policies ?? []).map((q: any) => [q.PolicyName, q.PolicyDocument])),
    };
  };
  const b = evaluate(bucket.Properties);
  const block = b.PublicAccessBlockConfiguration ?? {};
  const encryption = b.BucketEncryption?.ServerSideEncryptionConfiguration ?? [];
  const f = evaluate(fn.Properties);
  const perm = evaluate(permission.Properties);
  const fastPath = all('AWS::CloudTrail::Trail').length > 0 ? fastPathFromTemplate() : null;
  const r = evaluate(rule.Properties);
  const rec = evaluate(recorder.Properties);
  const ch = evaluate(channel.Properties);

  // The zip CloudFormation will deploy: the file asset whose object key the function names.
  const manifest = JSON.parse(fs.readFileSync(path.join(assembly.directory, `${stack.artifactId}.assets.json`), 'utf8'));
  const asset = Object.values(manifest.files as Record<string, any>).find((file) =>
    Object.values(file.destinations as Record<string, { objectKey: string }>).some((d) => d.objectKey === f.Code.S3Key),
  );
  const codeSha256 = asset
    ? crypto
        .createHash('sha256')
        .update(fs.readFileSync(path.join(assembly.directory, asset.source.path)))
        .digest('base64')
    : `no file asset has the object key ${f.Code.S3Key}`;

  const names = {
    bucket: b.BucketName,
    configRole: role(configRole).name,
    recorder: rec.Name,
    channel: ch.Name,
    functionRole: role(functionRole).name,
    function: f.FunctionName,
    rule: r.ConfigRuleName,
  };
  return {
    names,
    bucket: {
      name: b.BucketName,
      policy: evaluate(bucketPolicy.Properties.PolicyDocument),
      blockPublicAccess:
        block.BlockPublicAcls === true &&
        block.IgnorePublicAcls === true &&
        block.BlockPublicPolicy === true &&
        block.RestrictPublicBuckets === true,
      encryption: encryption.length === 1 ? encryption[0].ServerSideEncryptionByDefault?.SSEAlgorithm : encryption,
    },
    configRole: role(configRole),
    recorder: {
      name: rec.Name,
      // A stack always manages its recorder (deploy's `--use-existing-recorder` has no equivalent here).
      managed: true,
      roleArn: rec.RoleARN,
      allSupported: rec.RecordingGroup?.AllSupported,
      includeGlobalResourceTypes: rec.RecordingGroup?.IncludeGlobalResourceTypes,
      resourceTypes: rec.RecordingGroup?.ResourceTypes,
    },
    deliveryChannel: {
      name: ch.Name,
      s3BucketName: ch.S3BucketName,
      snsTopicArn: ch.SnsTopicARN ?? null,
      ...(ch.S3KeyPrefix !== undefined ? { s3KeyPrefix: ch.S3KeyPrefix } : {}),
    },
    functionRole: role(functionRole),
    function: {
      name: f.FunctionName,
      runtime: f.Runtime,
      handler: f.Handler,
      memorySize: f.MemorySize,
      timeout: f.Timeout,
      description: f.Description,
      architecture: (f.Architectures ?? ['x86_64'])[0],
      codeSha256,
      roleArn: f.Role,
    },
    invokePermission: permissionStatement(perm),
    rule: {
      name: r.ConfigRuleName,
      description: r.Description,
      owner: r.Source.Owner,
      sourceIdentifier: r.Source.SourceIdentifier,
      messageTypes: (r.Source.SourceDetails ?? []).map((d: any) =>
        d.EventSource === 'aws.config' ? d.MessageType : `${d.EventSource}/${d.MessageType}`,
      ),
      scope: r.Scope?.ComplianceResourceTypes,
      inputParameters: typeof r.InputParameters === 'string' ? JSON.parse(r.InputParameters) : r.InputParameters,
    },
    // `deploy` prints null without --fast-path.
    fastPath,
  };

  /** The trail, the EventBridge rule, its invoke permission and the function's environment. */
  function fastPathFromTemplate(): Record<string, unknown> {
    const [, trail] = one('AWS::CloudTrail::Trail');
    const [, eventRule] = one('AWS::Events::Rule');
    const [, events] = one(
      'AWS::Lambda::Permission',
      byPrincipal('events.amazonaws.com'),
      'AWS::Lambda::Permission for events.amazonaws.com',
    );
    const t = evaluate(trail.Properties);
    const e = evaluate(eventRule.Properties);
    const targets: { Id: string; Arn: string }[] = e.Targets ?? [];
    return {
      trail: {
        name: t.TrailName,
        s3BucketName: t.S3BucketName,
        s3KeyPrefix: t.S3KeyPrefix,
        isMultiRegionTrail: t.IsMultiRegionTrail,
        includeGlobalServiceEvents: t.IncludeGlobalServiceEvents,
        logging: t.IsLogging,
      },
      rule: {
        name: e.Name,
        eventPattern: typeof e.EventPattern === 'string' ? JSON.parse(e.EventPattern) : e.EventPattern,
        state: e.State,
        // One target, the function; anything else shows as a difference.
        targetArn: targets.length === 1 ? targets[0].Arn : targets,
      },
      permission: permissionStatement(evaluate(events.Properties)),
      functionEnvironment: f.Environment?.Variables ?? {},
    };
  }
}

/** Every field where `deploy` and `cdk` differ, as `path: deploy <value>, cdk <value>`. */
export function differences(deploy: unknown, cdk: unknown, at = ''): string[] {
  const show = (value: unknown) => (value === undefined ? '(absent)' : JSON.stringify(value));
  if (Array.isArray(deploy) && Array.isArray(cdk)) {
    if (deploy.length !== cdk.length) return [`${at}: deploy ${show(deploy)}, cdk ${show(cdk)}`];
    return deploy.flatMap((item, i) => differences(item, cdk[i], `${at}[${i}]`));
  }
  const isObject = (value: unknown) => value !== null && typeof value === 'object' && !Array.isArray(value);
  if (isObject(deploy) && isObject(cdk)) {
    const a = deploy as Record<string, unknown>;
    const b = cdk as Record<string, unknown>;
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    return keys.flatMap((key) => differences(a[key], b[key], at ? `${at}.${key}` : key));
  }
  return deploy === cdk ? [] : [`${at}: deploy ${show(deploy)}, cdk ${show(cdk)}`];
}
