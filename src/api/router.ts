/**
 * The HTTP API under /api/v1, on only with server.apiToken: every call needs
 * `Authorization: Bearer <apiToken>` (compared in constant time; never a query parameter, which
 * ends up in access logs). Errors answer `{error, code}` with a status per code (api/status.ts).
 */
import express, { type Request, type Response } from 'express';
import type { RuleMatcher } from '../config/rules.js';
import { SignetError } from '../errors.js';
import type { Logger } from '../log.js';
import type { RegistryDirectory } from '../registry/directory.js';
import type { StatusStore } from '../status/store.js';
import { secretEquals } from '../webhooks/auth.js';
import { errorAnswer, imageStatus } from './status.js';

export interface ApiDeps {
  token: string;
  registries: RegistryDirectory;
  rules: RuleMatcher;
  status: StatusStore;
  logger: Logger;
}

export function apiRouter(deps: ApiDeps): express.Router {
  const router = express.Router();
  const fail = (res: Response, err: unknown): void => {
    const { status, body } = errorAnswer(err);
    if (status === 401) res.set('www-authenticate', 'Bearer realm="signet api"');
    res.status(status).json(body);
  };
  router.use((req: Request, res: Response, next) => {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    if (m && secretEquals(m[1]!, deps.token)) return next();
    fail(res, new SignetError('API_UNAUTHORIZED', 'Authorization: Bearer <server.apiToken> is required'));
  });
  router.get('/images/*ref', async (req: Request, res: Response) => {
    const parts = (req.params as unknown as { ref: string[] }).ref;
    if (parts.at(-1) !== 'status') return fail(res, new SignetError('API_NOT_FOUND', 'no such API route: GET /api/v1/images/{ref}/status'));
    try {
      res.json(await imageStatus(parts.slice(0, -1).join('/'), deps));
    } catch (err) {
      const answer = errorAnswer(err);
      if (answer.status >= 500) deps.logger.warn({ code: answer.body.code, err: err instanceof Error ? err.message : String(err) }, 'status API error');
      fail(res, err);
    }
  });
  router.use((_req: Request, res: Response) => fail(res, new SignetError('API_NOT_FOUND', 'no such API route')));
  return router;
}

/** /api/v1 while the API is off: 404 for everything, saying how to turn it on. */
export function apiOff(): express.RequestHandler {
  return (_req, res) => void res.status(404).json(errorAnswer(new SignetError('API_NOT_FOUND', 'the API is off: set server.apiToken')).body);
}
