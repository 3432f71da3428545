// A CDK app for the tests with the context of cdk.json (its feature flags), so that the tests
// synthesize exactly what `cdk synth` does.

import * as fs from 'fs';
import * as path from 'path';
import { App, AppProps, CfnElement, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { CDK_DIR, SgMonitoringLabStack, SgMonitoringLabStackProps } from '../../lib/sg-monitoring-lab-stack';

const CDK_JSON = JSON.parse(fs.readFileSync(path.join(CDK_DIR, 'cdk.json'), 'utf8'));

/**
 * An app with cdk.json's context. CDK's built-in CloudFormation validation (a WebAssembly
 * module that takes seconds to load in each test file) is off: `cdk synth` in scripts/test-cdk
 * runs it, and cfn-lint after it.
 */
export function newApp(props: AppProps = {}): App {
  return new App({
    builtinCloudFormationValidation: false,
    ...props,
    context: { ...CDK_JSON.context, ...props.context },
  });
}

export interface Synthesized {
  readonly app: App;
  readonly stack: SgMonitoringLabStack;
  readonly template: Template;
}

export function synthLab(props: SgMonitoringLabStackProps, app: App = newApp()): Synthesized {
  const stack = new SgMonitoringLabStack(app, 'SgMonitoringLab', props);
  return { app, stack, template: Template.fromStack(stack) };
}

/** The logical id of an L1 resource, or of an L2 construct's main resource. */
export function logicalId(element: CfnElement | { node: { defaultChild?: unknown } }): string {
  const cfn = element instanceof CfnElement ? element : (element.node.defaultChild as CfnElement);
  return Stack.of(cfn).getLogicalId(cfn);
}
