/**
 * The conditions a rule puts on signing (`rules[].require`): what must be true of a push before
 * its image is signed. See docs/conditions.md.
 */
import { z } from 'zod';

export const requireSchema = z.object({}).strict();

export type RuleRequire = z.infer<typeof requireSchema>;
