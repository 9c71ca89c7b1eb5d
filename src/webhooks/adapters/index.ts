/**
 * The one explicit map of webhook adapters: `integrations[].kind` -> adapter.
 * One file per registry dialect; add new ones here.
 */
import type { WebhookAdapter } from '../types.js';
import { distributionAdapter } from './distribution.js';
import { harborAdapter } from './harbor.js';

export const webhookAdapters = {
  distribution: distributionAdapter,
  harbor: harborAdapter,
} as const satisfies Record<string, WebhookAdapter<any>>;

export type IntegrationKind = keyof typeof webhookAdapters;
export const integrationKinds = Object.keys(webhookAdapters) as IntegrationKind[];

export function adapterFor(kind: string): WebhookAdapter<any> | undefined {
  return (webhookAdapters as Record<string, WebhookAdapter<any>>)[kind];
}
