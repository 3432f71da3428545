// The synthesized template read back into the shape of `deploy`'s desired state
// (deploy/src/up.rs `desired()`), with every intrinsic evaluated for one account and region,
// and a field-by-field comparison of the two.

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
};

/** The lab as the synthesized stack declares it, in `deploy`'s shape and with concrete values. */
export function desiredFromStack(app: App, stack: Stack, env: Environment): Record<string, any> {
  const assembly = app.synth();
  const artifact = assembly.getStackArtifact(stack.artifactId);
  const template = artifact.template as { Resources: Record<string, Resource> };
  const evaluate = evaluator(template, env);
  const resources = Object.entries(template.Resources);

  const one = (type: string): [string, Resource] => {
    const found = resources.filter(([, r]) => r.Type === type);
    if (found.length !== 1) throw new Error(`the template has ${found.length} ${type}, not one`);
    return found[0];
  };
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
  const [, permission] = one('AWS::Lambda::Permission');
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
    invokePermission: {
      Effect: 'Allow',
      Principal: { Service: perm.Principal },
      Action: perm.Action,
      Resource: perm.FunctionName,
      Condition: { StringEquals: { 'AWS:SourceAccount': perm.SourceAccount } },
    },
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
  };
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
