/**
 * The one explicit map of webhook adapters: `integrations[].kind` -> adapter.
 * One file per registry dialect; add new ones here.
 */
import type { WebhookAdapter } from '../types.js';
import { acrAdapter } from './acr.js';
import { alibabaAcrAdapter } from './alibaba-acr.js';
import { distributionAdapter } from './distribution.js';
import { dockerhubAdapter } from './dockerhub.js';
import { ecrAdapter } from './ecr.js';
import { garAdapter } from './gar.js';
import { githubAdapter } from './github.js';
import { gitlabAdapter } from './gitlab.js';
import { harborAdapter } from './harbor.js';
import { jfrogAdapter } from './jfrog.js';
import { quayAdapter } from './quay.js';

export const webhookAdapters = {
  distribution: distributionAdapter,
  harbor: harborAdapter,
  quay: quayAdapter,
  acr: acrAdapter,
  'alibaba-acr': alibabaAcrAdapter,
  dockerhub: dockerhubAdapter,
  jfrog: jfrogAdapter,
  ecr: ecrAdapter,
  gar: garAdapter,
  github: githubAdapter,
  gitlab: gitlabAdapter,
} as const satisfies Record<string, WebhookAdapter<any>>;

export type IntegrationKind = keyof typeof webhookAdapters;
export const integrationKinds = Object.keys(webhookAdapters) as IntegrationKind[];

export function adapterFor(kind: string): WebhookAdapter<any> | undefined {
  return (webhookAdapters as Record<string, WebhookAdapter<any>>)[kind];
}
