// CloudFormation helpers for the tests: how a policy/ document looks once CDK has put tokens in
// it, and a small evaluator that turns a synthesized template's intrinsics (Ref, Fn::GetAtt,
// Fn::Join, Fn::Sub) into the concrete values they take in one account and region.

import * as fs from 'fs';
import * as path from 'path';
import { POLICY_DIR } from '../../lib/policy';

/**
 * `policy/<file>` with each placeholder replaced by a CloudFormation fragment, rendered the way
 * CDK renders a string holding tokens: the fragment alone, or an `Fn::Join` with "".
 */
export function renderedPolicy(file: string, fragments: Record<string, unknown>): unknown {
  const render = (node: unknown): unknown => {
    if (typeof node === 'string') {
      const parts = node.split(/(\$\{[^}]+\})/).filter((part) => part !== '');
      const rendered = parts.map((part) => {
        const name = /^\$\{([^}]+)\}$/.exec(part)?.[1];
        if (name === undefined) return part;
        if (!(name in fragments)) throw new Error(`${file}: no fragment for \${${name}}`);
        return fragments[name];
      });
      // Adjacent strings are one, as CDK joins them (a placeholder filled with a plain string).
      const merged = rendered.reduce<unknown[]>((parts, part) => {
        const last = parts.length - 1;
        if (typeof part === 'string' && typeof parts[last] === 'string') parts[last] += part;
        else parts.push(part);
        return parts;
      }, []);
      if (merged.length <= 1) return merged[0] ?? '';
      return { 'Fn::Join': ['', merged] };
    }
    if (Array.isArray(node)) return node.map(render);
    if (node !== null && typeof node === 'object') {
      return Object.fromEntries(Object.entries(node).map(([key, value]) => [key, render(value)]));
    }
    return node;
  };
  return render(JSON.parse(fs.readFileSync(path.join(POLICY_DIR, file), 'utf8')));
}

export interface Environment {
  readonly account: string;
  readonly region: string;
  readonly partition: string;
}

type Resources = Record<string, { Type: string; Properties?: Record<string, any> }>;

/** The property holding each resource type's physical name (what `Ref` returns). */
const NAME_PROPERTY: Record<string, string> = {
  'AWS::S3::Bucket': 'BucketName',
  'AWS::IAM::Role': 'RoleName',
  'AWS::Lambda::Function': 'FunctionName',
  'AWS::Logs::LogGroup': 'LogGroupName',
  'AWS::Config::ConfigurationRecorder': 'Name',
  'AWS::Config::DeliveryChannel': 'Name',
  'AWS::Config::ConfigRule': 'ConfigRuleName',
  'AWS::CloudTrail::Trail': 'TrailName',
  'AWS::Events::Rule': 'Name',
};

/** Evaluates the intrinsics of `template` for `env`; throws naming anything it cannot resolve. */
export function evaluator(template: { Resources: Resources }, env: Environment): (value: unknown) => any {
  const resources = template.Resources;
  const pseudo: Record<string, string> = {
    'AWS::AccountId': env.account,
    'AWS::Region': env.region,
    'AWS::Partition': env.partition,
    'AWS::URLSuffix': 'amazonaws.com',
  };

  const resource = (id: string) => {
    const found = resources[id];
    if (!found) throw new Error(`the template has no resource ${id}`);
    return found;
  };
  const ref = (id: string): string => {
    if (id in pseudo) return pseudo[id];
    const { Type, Properties } = resource(id);
    const property = NAME_PROPERTY[Type];
    const name = property && Properties?.[property];
    if (name === undefined) throw new Error(`cannot resolve Ref ${id}: ${Type} has no ${property ?? 'known'} name`);
    return evaluate(name);
  };
  const getAtt = (id: string, attribute: string): string => {
    const { Type } = resource(id);
    const name = ref(id);
    const { account, region, partition } = env;
    const arns: Record<string, string> = {
      'AWS::S3::Bucket': `arn:${partition}:s3:::${name}`,
      'AWS::IAM::Role': `arn:${partition}:iam::${account}:role/${name}`,
      'AWS::Lambda::Function': `arn:${partition}:lambda:${region}:${account}:function:${name}`,
      'AWS::Logs::LogGroup': `arn:${partition}:logs:${region}:${account}:log-group:${name}:*`,
      'AWS::CloudTrail::Trail': `arn:${partition}:cloudtrail:${region}:${account}:trail/${name}`,
      // A rule on the default event bus.
      'AWS::Events::Rule': `arn:${partition}:events:${region}:${account}:rule/${name}`,
    };
    if (attribute !== 'Arn' || !(Type in arns)) throw new Error(`cannot resolve Fn::GetAtt ${id}.${attribute}`);
    return arns[Type];
  };
  const sub = (text: string, variables: Record<string, unknown> = {}): string =>
    text.replace(/\$\{([^}!]+)\}/g, (_, name: string) => {
      if (name in variables) return evaluate(variables[name]);
      const [id, attribute] = name.split('.');
      return attribute ? getAtt(id, attribute) : ref(id);
    });

  const evaluate = (value: unknown): any => {
    if (Array.isArray(value)) return value.map(evaluate);
    if (value === null || typeof value !== 'object') return value;
    const entries = Object.entries(value);
    if (entries.length === 1) {
      const [key, argument] = entries[0] as [string, any];
      switch (key) {
        case 'Ref':
          return ref(argument);
        case 'Fn::GetAtt':
          return getAtt(argument[0], argument[1]);
        case 'Fn::Join':
          return evaluate(argument[1]).join(argument[0]);
        case 'Fn::Sub':
          return typeof argument === 'string' ? sub(argument) : sub(argument[0], argument[1]);
        default:
          if (key.startsWith('Fn::')) throw new Error(`cannot evaluate ${key}`);
      }
    }
    return Object.fromEntries(entries.map(([key, inner]) => [key, evaluate(inner)]));
  };
  return evaluate;
}
