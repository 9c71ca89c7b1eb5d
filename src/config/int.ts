/** A config integer that may also come as a string of digits (what a `${VAR}` expands to). */
import { z } from 'zod';

export const int = () =>
  z
    .union([
      z.number().int(),
      z
        .string()
        .regex(/^[0-9]+$/, 'must be a whole number')
        .transform(Number),
    ])
    .pipe(z.number().int());
