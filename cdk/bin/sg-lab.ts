#!/usr/bin/env node
// Instantiates the lab's stack, checked by cdk-nag's AwsSolutions pack on every synth.
// Context (`-c KEY=VALUE`) overrides what `deploy` lets its flags override:
//   functionZip     the cargo-lambda zip (default ../target/lambda/arm64/bootstrap/bootstrap.zip)
//   bucketName, configRoleName, functionRoleName, functionName, ruleName
//   fastPath        true: add the event fast path (`deploy up --fast-path`; default false)
//   functionPolicy  lab | least-privilege: the function role's policy (`deploy up --policy`; default lab)
//   stackSetAssetBucketPrefix   synthesize for CloudFormation StackSets (see README)

import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { booleanContext, choiceContext } from '../lib/context';
import { FUNCTION_POLICIES } from '../lib/remediation';
import { stackSetSynthesizer } from '../lib/stack-set';
import { SgMonitoringLabStack } from '../lib/sg-monitoring-lab-stack';

const app = new App();
const context = (key: string): string | undefined => app.node.tryGetContext(key);
const assetBucketPrefix = context('stackSetAssetBucketPrefix');

new SgMonitoringLabStack(app, 'SgMonitoringLab', {
  synthesizer: assetBucketPrefix ? stackSetSynthesizer(assetBucketPrefix) : undefined,
  functionZip: context('functionZip'),
  bucketName: context('bucketName'),
  configRoleName: context('configRoleName'),
  functionRoleName: context('functionRoleName'),
  functionName: context('functionName'),
  ruleName: context('ruleName'),
  fastPath: booleanContext('fastPath', app.node.tryGetContext('fastPath')),
  functionPolicy: choiceContext('functionPolicy', app.node.tryGetContext('functionPolicy'), FUNCTION_POLICIES),
});
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
