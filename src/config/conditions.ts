/**
 * The conditions a rule puts on signing (`rules[].require`): what must be true of a push before
 * its image is signed. See docs/conditions.md.
 *
 * `require.pushers: { allow?: [globs], deny?: [globs] }` is checked against the pusher the
 * registry reported, and only when the push's integration vouches for it (src/config/rules.ts
 * pusherPolicy). Deny wins over allow. A rule with pusher conditions is never satisfied by a
 * push without a vouched pusher (none in the payload, an `insecure: true` integration, `signet
 * sign`, backfill): a deny list cannot be checked against a name nobody vouches for, so it fails
 * closed like an allow list. Globs are picomatch globs over the name exactly as reported (case
 * matters; `/` separates segments as in `match`, so ARNs use `**` across them).
 */
import picomatch from 'picomatch';
import { z } from 'zod';

const globs = z.array(z.string().min(1)).min(1, 'list at least one pattern (or leave the list out)');

export const pushersSchema = z
  .object({
    /** Pushers whose pushes may be signed (globs); any other is skipped. */
    allow: globs.optional(),
    /** Pushers whose pushes are never signed (globs); wins over allow. */
    deny: globs.optional(),
  })
  .strict()
  .refine((p) => p.allow !== undefined || p.deny !== undefined, { message: 'name allow, deny or both' });

export const requireSchema = z
  .object({
    pushers: pushersSchema.optional(),
  })
  .strict();

export type RuleRequire = z.infer<typeof requireSchema>;
export type PusherConditions = z.infer<typeof pushersSchema>;

/**
 * What each integration kind reports as the pusher (docs/conditions.md has the table); undefined:
 * its payload names no pusher, so a rule with pusher conditions cannot be met through it.
 * ACR's documented payload has no actor (its adapter passes `actor.name` should one appear, for
 * `${pusher}`, but a condition cannot rest on an undocumented field); ECR's "ECR Image Action"
 * event and JFrog's docker "pushed" event carry no user (JFrog's `source` is its service id).
 */
export const PUSHER_FIELD: Readonly<Record<string, string | undefined>> = {
  harbor: 'operator',
  distribution: 'events[].actor.name',
  gitlab: 'events[].actor.name',
  dockerhub: 'push_data.pusher',
  github: 'sender.login',
  quay: undefined,
  acr: undefined,
  'alibaba-acr': undefined,
  gar: undefined,
  ecr: undefined,
  jfrog: undefined,
};

/** Whether an integration kind's payload carries a pusher a condition can be checked against. */
export function kindReportsPusher(kind: string): boolean {
  return PUSHER_FIELD[kind] !== undefined;
}

type Compiled = { allow?: { test: (s: string) => boolean; globs: string[] }; deny?: { test: (s: string) => boolean; globs: string[] } };
const compiled = new WeakMap<PusherConditions, Compiled>();

function compile(p: PusherConditions): Compiled {
  let c = compiled.get(p);
  if (!c) {
    const one = (list: string[]) => {
      const ms = list.map((g) => picomatch(g, { dot: true }));
      return { globs: list, test: (s: string) => ms.some((m) => m(s)) };
    };
    c = { ...(p.allow ? { allow: one(p.allow) } : {}), ...(p.deny ? { deny: one(p.deny) } : {}) };
    compiled.set(p, c);
  }
  return c;
}

/** The facts of a push the conditions are checked against. */
export interface PushFacts {
  /** The pusher the push's integration vouches for; undefined when none (absent, not vouched, CLI, backfill). */
  pusher?: string | undefined;
}

/**
 * Why a push does not meet the rule's conditions, or undefined when it does (or the rule has none).
 * The reasons name the pusher (it is a user name the registry reported, not a secret).
 */
export function conditionSkip(req: RuleRequire | undefined, push: PushFacts): string | undefined {
  const pushers = req?.pushers;
  if (!pushers) return undefined;
  const c = compile(pushers);
  const pusher = push.pusher;
  if (pusher === undefined || pusher === '') {
    return 'rule requires a pusher (require.pushers) and this push has none its integration vouches for';
  }
  if (c.deny?.test(pusher)) return `pusher "${clip(pusher)}" is denied by require.pushers.deny`;
  if (c.allow && !c.allow.test(pusher)) return `pusher "${clip(pusher)}" is not in require.pushers.allow`;
  return undefined;
}

/** A reported name as it goes into a reason: control characters replaced, at most 100 characters. */
function clip(s: string): string {
  const clean = s.replace(/[\u0000-\u001f\u007f]/g, '?');
  return clean.length > 100 ? `${clean.slice(0, 100)}...` : clean;
}
