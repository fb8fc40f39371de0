import { STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from "fastify";
import { isMesaError } from "../errors.js";
import type { Logger } from "../log.js";
import type { ServerContext } from "./context.js";
import { ApiError, errorBody } from "./errors.js";
import { registerGitHttp } from "./githttp.js";
import { registerOrgRoutes } from "./routes-org.js";
import { registerVcsRoutes } from "./routes-vcs.js";
import type { StateStore } from "./state.js";
import type { DataDir } from "./storage.js";

export interface AppOptions {
  data: DataDir;
  store: StateStore;
  log: Logger;
  /** Largest JSON body accepted (POST/PATCH changes carry base64 files). */
  bodyLimit?: number;
  /** A git http-backend that neither reads nor writes for this long is killed. */
  gitIdleTimeoutMs?: number;
}

/** The fastify app of `mesa serve`: REST v1 under /v1 and Git smart HTTP under /<org>/<repo>.git. */
export function buildApp(opts: AppOptions): FastifyInstance {
  const app = Fastify({
    loggerInstance: opts.log as unknown as FastifyBaseLogger,
    bodyLimit: opts.bodyLimit ?? 64 * 1024 * 1024,
    // A slow client cannot hold a connection forever: headers within 30 s, a whole request
    // within 15 min (a large push), idle keep-alive connections closed after 5 s.
    connectionTimeout: 0,
    requestTimeout: 15 * 60_000,
    keepAliveTimeout: 5_000,
    http: { headersTimeout: 30_000 },
    routerOptions: { maxParamLength: 1024 },
    return503OnClosing: true,
    // Errors the framework answers before any route runs get the documented shape too.
    frameworkErrors: (err, _req, reply) => {
      const status = typeof err.statusCode === "number" ? err.statusCode : 400;
      const code = status === 414 ? "URI_TOO_LONG" : "BAD_REQUEST";
      const message = status === 414 ? "a path component is too long" : "malformed request URL";
      return (reply as FastifyReply).code(status).send(errorBody(code, message));
    },
    clientErrorHandler: (err, socket) => answerClientError(err, socket),
  });
  const ctx: ServerContext = { data: opts.data, store: opts.store, log: opts.log };

  app.setErrorHandler((err, req, reply) => {
    if (err instanceof ApiError) {
      return reply.code(err.status).send(errorBody(err.code, err.message, err.details));
    }
    if (isMesaError(err)) {
      const status =
        err.code === "CONFLICT" ? 409 : err.code === "NOT_FOUND" ? 404 : err.exitCode === 2 ? 400 : 500;
      if (status !== 500)
        return reply.code(status).send(errorBody(status === 400 ? "BAD_REQUEST" : err.code, err.message));
    }
    const e = err as { statusCode?: number; code?: string; message?: string };
    if (typeof e.statusCode === "number" && e.statusCode >= 400 && e.statusCode < 500) {
      const code =
        e.statusCode === 413
          ? "PAYLOAD_TOO_LARGE"
          : e.statusCode === 415
            ? "UNSUPPORTED_MEDIA_TYPE"
            : "BAD_REQUEST";
      return reply
        .code(e.statusCode)
        .send(
          errorBody(code, e.statusCode === 413 ? "request body too large" : (e.message ?? "bad request")),
        );
    }
    req.log.error({ err }, "request failed");
    return reply.code(500).send(errorBody("INTERNAL", "internal server error"));
  });
  app.setNotFoundHandler((_req, reply) => reply.code(404).send(errorBody("NOT_FOUND", "no such route")));

  registerOrgRoutes(app, ctx);
  registerVcsRoutes(app, ctx);
  registerGitHttp(app, { ...ctx, idleTimeoutMs: opts.gitIdleTimeoutMs ?? 120_000 });
  return app;
}

/** HTTP-level errors (oversized headers, timeouts, garbage) before a request exists. */
function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === "ECONNRESET" || socket.destroyed) return;
  const [status, code, message] =
    err.code === "HPE_HEADER_OVERFLOW"
      ? [431, "HEADERS_TOO_LARGE", "request headers too large"]
      : err.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? [408, "TIMEOUT", "request not received in time"]
        : [400, "BAD_REQUEST", "malformed HTTP request"];
  const body = JSON.stringify(errorBody(code as string, message as string));
  if (socket.writable)
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status as number]}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  socket.destroy(err);
}
