// Synthesis for CloudFormation StackSets. A stack instance runs in an account that has no CDK
// bootstrap stack, so the template may neither check for one nor fetch the function's code from
// the bootstrap bucket: the code comes from `<prefix>-<region>`, one bucket per target region
// that the organisation can read, where the zip is uploaded once (see README, StackSets).

import { DefaultStackSynthesizer } from 'aws-cdk-lib';

/** Object keys of the function's code in the asset buckets start with this. */
export const STACK_SET_ASSET_KEY_PREFIX = 'sg-monitoring-lab/';

export function stackSetSynthesizer(assetBucketPrefix: string): DefaultStackSynthesizer {
  return new DefaultStackSynthesizer({
    fileAssetsBucketName: `${assetBucketPrefix}-\${AWS::Region}`,
    bucketPrefix: STACK_SET_ASSET_KEY_PREFIX,
    generateBootstrapVersionRule: false,
  });
}
