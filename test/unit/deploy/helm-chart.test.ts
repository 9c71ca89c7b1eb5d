/**
 * deploy/helm/signet rendered and checked. Debian has no `helm`, so the templates are rendered by
 * a test-only Go-template renderer (gotemplate.ts) for the subset the chart uses. The rendered
 * manifests are checked for what matters: receiver (`signet serve`) and worker (`signet worker`)
 * Deployments with their own replicas, probes on /healthz, non-root security context, Service,
 * ConfigMap (a config signet itself accepts), Secret wiring, PodDisruptionBudgets, and the
 * optional ServiceMonitor against prometheus-operator's CRD.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';
import { z } from 'zod';
import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../../src/config/load.js';
import { loadCrd, validateObject } from '../policy/crd-validator.js';
import { Renderer, TemplateError } from './gotemplate.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const CHART = path.join(ROOT, 'deploy/helm/signet');
const chart = parse(readFileSync(path.join(CHART, 'Chart.yaml'), 'utf8'));
const defaults = parse(readFileSync(path.join(CHART, 'values.yaml'), 'utf8'));
const templateFiles = Object.fromEntries(readdirSync(path.join(CHART, 'templates')).map((f) => [f, readFileSync(path.join(CHART, 'templates', f), 'utf8')]));

function merge(a: any, b: any): any {
  if (b === undefined) return a;
  if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const out = { ...a };
    for (const [k, v] of Object.entries(b)) out[k] = merge(a[k], v);
    return out;
  }
  return b;
}

/** `helm template signet deploy/helm/signet -n signet --set ...`: every object, by template file. */
function render(overrides: Record<string, unknown> = {}): { objects: any[]; notes: string } {
  const values = merge(defaults, overrides);
  const r = new Renderer(templateFiles, {
    Values: values,
    Release: { Name: 'signet', Namespace: 'signet', Service: 'Helm' },
    Chart: { Name: chart.name, Version: chart.version, AppVersion: chart.appVersion },
  });
  const objects: any[] = [];
  for (const f of Object.keys(templateFiles).filter((f) => f.endsWith('.yaml'))) {
    for (const d of parseAllDocuments(r.render(f))) {
      if (d.errors.length) throw new Error(`${f}: ${d.errors[0]!.message}`);
      const o = d.toJS();
      if (o) objects.push({ ...o, __file: f });
    }
  }
  return { objects, notes: r.render('NOTES.txt') };
}

const find = (objs: any[], kind: string, name: string) => {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind} ${name} among ${objs.map((x) => `${x.kind}/${x.metadata.name}`).join(', ')}`);
  return o;
};

// The Pod/Container fields the chart may use: a typo (livenesProbe) is an unknown key.
const probe = z
  .object({
    httpGet: z.object({ path: z.string(), port: z.union([z.string(), z.number()]) }).strict(),
    periodSeconds: z.number().optional(),
    timeoutSeconds: z.number().optional(),
    failureThreshold: z.number().optional(),
  })
  .strict();
const container = z
  .object({
    name: z.string(),
    image: z.string().regex(/^[^:]+:[\w.-]+$/),
    imagePullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']),
    args: z.array(z.string()),
    env: z.array(z.object({ name: z.string(), value: z.string() }).strict()),
    envFrom: z.array(z.object({ secretRef: z.object({ name: z.string() }).strict() }).strict()).optional(),
    ports: z.array(z.object({ name: z.string(), containerPort: z.number().int().min(1).max(65535), protocol: z.literal('TCP') }).strict()).optional(),
    volumeMounts: z.array(z.object({ name: z.string(), mountPath: z.string(), subPath: z.string().optional(), readOnly: z.boolean().optional() }).strict()),
    securityContext: z
      .object({
        allowPrivilegeEscalation: z.literal(false),
        readOnlyRootFilesystem: z.literal(true),
        capabilities: z.object({ drop: z.array(z.literal('ALL')) }).strict(),
      })
      .strict(),
    resources: z.object({ requests: z.record(z.string(), z.string()).optional(), limits: z.record(z.string(), z.string()).optional() }).strict(),
    startupProbe: probe.optional(),
    livenessProbe: probe.optional(),
    readinessProbe: probe.optional(),
  })
  .strict();
const podSpec = z
  .object({
    serviceAccountName: z.string(),
    imagePullSecrets: z.array(z.object({ name: z.string() })).optional(),
    securityContext: z
      .object({
        runAsNonRoot: z.literal(true),
        runAsUser: z.number().int().min(1),
        runAsGroup: z.number(),
        fsGroup: z.number(),
        seccompProfile: z.object({ type: z.literal('RuntimeDefault') }),
      })
      .strict(),
    volumes: z.array(
      z
        .object({
          name: z.string(),
          configMap: z.object({ name: z.string() }).optional(),
          secret: z.object({ secretName: z.string(), defaultMode: z.number() }).optional(),
          emptyDir: z.object({}).optional(),
        })
        .strict(),
    ),
    containers: z.array(container).length(1),
    terminationGracePeriodSeconds: z.number().optional(),
    nodeSelector: z.record(z.string(), z.string()).optional(),
    tolerations: z.array(z.unknown()).optional(),
    affinity: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();
const deployment = z
  .object({
    apiVersion: z.literal('apps/v1'),
    kind: z.literal('Deployment'),
    metadata: z.object({ name: z.string().max(63), labels: z.record(z.string(), z.string()) }).strict(),
    spec: z
      .object({
        replicas: z.number().int().min(0),
        selector: z.object({ matchLabels: z.record(z.string(), z.string()) }).strict(),
        template: z
          .object({ metadata: z.object({ labels: z.record(z.string(), z.string()), annotations: z.record(z.string(), z.string()) }).strict(), spec: podSpec })
          .strict(),
      })
      .strict(),
    __file: z.string(),
  })
  .strict();

const selects = (selector: Record<string, string>, labels: Record<string, string>) => Object.entries(selector).every(([k, v]) => labels[k] === v);

describe('Helm chart deploy/helm/signet', () => {
  it('template-free files parse; every .Values path a template uses exists in values.yaml', () => {
    expect(chart).toMatchObject({ apiVersion: 'v2', name: 'signet', type: 'application' });
    expect(chart.version).toMatch(/^\d+\.\d+\.\d+/);
    for (const [f, src] of Object.entries(templateFiles)) {
      for (const m of src.matchAll(/\.Values((?:\.[A-Za-z0-9_]+)+)/g)) {
        const keys = m[1]!.slice(1).split('.');
        let v: any = defaults;
        for (const k of keys) {
          expect(v && typeof v === 'object' && k in v, `${f}: .Values.${keys.join('.')} is not in values.yaml`).toBe(true);
          v = v[k];
        }
      }
    }
  });

  it('default values: receiver and worker Deployments scaled apart, Service, ConfigMap, Secret, PDBs, no ServiceMonitor', () => {
    const { objects, notes } = render();
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual([
      'ConfigMap/signet',
      'Deployment/signet-receiver',
      'Deployment/signet-worker',
      'PodDisruptionBudget/signet-receiver',
      'PodDisruptionBudget/signet-worker',
      'Secret/signet',
      'Service/signet',
      'Service/signet-worker',
      'ServiceAccount/signet',
    ]);
    const receiver = deployment.parse(find(objects, 'Deployment', 'signet-receiver'));
    const worker = deployment.parse(find(objects, 'Deployment', 'signet-worker'));
    expect(receiver.spec.template.spec.containers[0]!.args).toEqual(['serve']);
    expect(worker.spec.template.spec.containers[0]!.args).toEqual(['worker', '--http-port', '9090']);
    expect(receiver.spec.template.spec.containers[0]!.image).toBe(`ghcr.io/signet/signet:${chart.appVersion}`);
    for (const d of [receiver, worker]) {
      expect(selects(d.spec.selector.matchLabels, d.spec.template.metadata.labels)).toBe(true);
      const pod = d.spec.template.spec;
      const c = pod.containers[0]!;
      const volumes = new Set(pod.volumes.map((v) => v.name));
      for (const m of c.volumeMounts) expect(volumes.has(m.name), m.name).toBe(true);
      expect(c.volumeMounts.find((m) => m.mountPath === '/etc/signet/signet.yaml')).toMatchObject({ subPath: 'signet.yaml' });
      expect(pod.volumes.find((v) => v.name === 'config')!.configMap!.name).toBe('signet');
      expect(c.envFrom).toEqual([{ secretRef: { name: 'signet' } }]);
      expect(pod.serviceAccountName).toBe('signet');
    }
    // each component's selector picks its own pods only
    expect(selects(receiver.spec.selector.matchLabels, worker.spec.template.metadata.labels)).toBe(false);
    expect(selects(worker.spec.selector.matchLabels, receiver.spec.template.metadata.labels)).toBe(false);
    const rc = receiver.spec.template.spec.containers[0]!;
    for (const p of [rc.livenessProbe, rc.readinessProbe, rc.startupProbe]) expect(p!.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(rc.ports).toEqual([{ name: 'http', containerPort: 8080, protocol: 'TCP' }]);
    // workers serve /healthz and /metrics on worker.httpPort (9090 by default)
    expect(worker.spec.template.spec.containers[0]!.livenessProbe!.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(worker.spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThan(30);

    const svc = find(objects, 'Service', 'signet');
    expect(selects(svc.spec.selector, receiver.spec.template.metadata.labels)).toBe(true);
    expect(selects(svc.spec.selector, worker.spec.template.metadata.labels)).toBe(false);
    expect(svc.spec.ports).toEqual([{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }]);
    const workerSvc = find(objects, 'Service', 'signet-worker');
    expect(selects(workerSvc.spec.selector, worker.spec.template.metadata.labels)).toBe(true);
    expect(selects(workerSvc.spec.selector, receiver.spec.template.metadata.labels)).toBe(false);

    for (const [name, d] of [
      ['signet-receiver', receiver],
      ['signet-worker', worker],
    ] as const) {
      const pdb = find(objects, 'PodDisruptionBudget', name);
      expect(pdb.apiVersion).toBe('policy/v1');
      expect(selects(pdb.spec.selector.matchLabels, d.spec.template.metadata.labels)).toBe(true);
      expect(Object.keys(pdb.spec).filter((k) => k === 'minAvailable' || k === 'maxUnavailable')).toHaveLength(1);
    }

    // the ConfigMap holds a config signet itself accepts (with the Secret's variables set)
    const cm = find(objects, 'ConfigMap', 'signet');
    const secret = find(objects, 'Secret', 'signet');
    expect(Object.keys(secret.stringData).sort()).toEqual(['REGISTRY_PASSWORD', 'SIGNET_HOOK_SECRET']);
    const loaded = parseConfigText(cm.data['signet.yaml'], 'configmap', secret.stringData);
    expect(loaded.config.rules).toHaveLength(1);
    expect(loaded.config.server.port).toBe(8080);
    // the config's checksum rolls the pods when it changes
    expect(receiver.spec.template.metadata.annotations['checksum/config']).toMatch(/^[0-9a-f]{64}$/);
    // and so does a change of the Secret the chart creates (its variables are read at start)
    const sum = (o: { objects: any[] }, name: string) => find(o.objects, 'Deployment', name).spec.template.metadata.annotations['checksum/secret'];
    expect(receiver.spec.template.metadata.annotations['checksum/secret']).toMatch(/^[0-9a-f]{64}$/);
    const changed = render({ secret: { create: true, env: { SIGNET_HOOK_SECRET: 'another-long-random-secret', REGISTRY_PASSWORD: 'x' } } });
    expect(sum(changed, 'signet-receiver')).not.toBe(receiver.spec.template.metadata.annotations['checksum/secret']);
    expect(sum(changed, 'signet-worker')).toBe(sum(changed, 'signet-receiver'));
    expect(notes).toMatch(/http:\/\/signet\.signet\.svc:80\/hooks/);
  });

  it('replicas, existing Secret/ConfigMap, key files, worker port, ServiceMonitor (validated against the prometheus-operator CRD), PDBs off', () => {
    const { objects } = render({
      fullnameOverride: 'sig',
      receiver: { replicas: 3, pdb: { enabled: false } },
      worker: { replicas: 7, httpPort: 9090, pdb: { enabled: false } },
      existingSecret: 'my-env',
      existingConfigMap: 'my-config',
      keysSecret: 'my-keys',
      serviceMonitor: { enabled: true, labels: { release: 'prom' } },
      config: { server: { port: 9000 } },
      imagePullSecrets: [{ name: 'pull' }],
    });
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual([
      'Deployment/sig-receiver',
      'Deployment/sig-worker',
      'Service/sig',
      'Service/sig-worker',
      'ServiceAccount/sig',
      'ServiceMonitor/sig',
    ]);
    const receiver = deployment.parse(find(objects, 'Deployment', 'sig-receiver'));
    const worker = deployment.parse(find(objects, 'Deployment', 'sig-worker'));
    expect([receiver.spec.replicas, worker.spec.replicas]).toEqual([3, 7]);
    expect(receiver.spec.template.spec.containers[0]!.ports![0]!.containerPort).toBe(9000);
    const wc = worker.spec.template.spec.containers[0]!;
    expect(wc.args).toEqual(['worker', '--http-port', '9090']);
    expect(wc.ports).toEqual([{ name: 'http', containerPort: 9090, protocol: 'TCP' }]);
    expect(wc.livenessProbe!.httpGet).toEqual({ path: '/healthz', port: 'http' });
    for (const d of [receiver, worker]) {
      const pod = d.spec.template.spec;
      expect(pod.containers[0]!.envFrom).toEqual([{ secretRef: { name: 'my-env' } }]);
      expect(pod.volumes.find((v) => v.name === 'config')!.configMap!.name).toBe('my-config');
      expect(pod.volumes.find((v) => v.name === 'keys')!.secret).toEqual({ secretName: 'my-keys', defaultMode: 0o400 });
      expect(pod.containers[0]!.volumeMounts.find((m) => m.name === 'keys')).toEqual({ name: 'keys', mountPath: '/etc/signet/keys', readOnly: true });
      expect(pod.imagePullSecrets).toEqual([{ name: 'pull' }]);
    }
    const sm = find(objects, 'ServiceMonitor', 'sig');
    const { __file: _f, ...manifest } = sm;
    const crd = loadCrd(path.join(ROOT, 'test/fixtures/policy-schemas/monitoring.coreos.com_servicemonitors.yaml'));
    expect(validateObject(crd, manifest, {}).errors).toEqual([]);
    expect(sm.metadata.labels.release).toBe('prom');
    // it selects both Services (receiver and worker metrics) by their shared labels and port name
    for (const s of objects.filter((o) => o.kind === 'Service')) {
      expect(selects(sm.spec.selector.matchLabels, s.metadata.labels)).toBe(true);
      expect(s.spec.ports[0].name).toBe(sm.spec.endpoints[0].port);
    }
  });

  it('the renderer refuses what it does not implement', () => {
    expect(() => new Renderer({ 'x.yaml': '{{ lookup "v1" "Secret" "ns" "n" }}' }, { Values: {}, Release: {}, Chart: {} }).render('x.yaml')).toThrow(
      TemplateError,
    );
    expect(() => new Renderer({ 'x.yaml': '{{ template "x" . }}' }, { Values: {}, Release: {}, Chart: {} })).toThrow(/outside the supported subset/);
  });
});
