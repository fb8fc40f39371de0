import { badRequest } from "./errors.js";

/** `?limit=&cursor=` (compat.md §6): limit 1–100 (default 50), cursor opaque to clients. */
export interface Page {
  offset: number;
  limit: number;
}

export function parsePage(query: Record<string, unknown>): Page {
  let limit = 50;
  if (query.limit !== undefined) {
    const n = Number(query.limit);
    if (!Number.isInteger(n) || n < 1 || n > 100) throw badRequest("limit must be an integer from 1 to 100");
    limit = n;
  }
  let offset = 0;
  if (query.cursor !== undefined && query.cursor !== "") {
    try {
      const decoded = JSON.parse(Buffer.from(String(query.cursor), "base64url").toString("utf8")) as {
        o?: unknown;
      };
      if (typeof decoded.o !== "number" || !Number.isInteger(decoded.o) || decoded.o < 0) throw new Error();
      offset = decoded.o;
    } catch {
      throw badRequest("invalid cursor");
    }
  }
  return { offset, limit };
}

function cursorFor(offset: number): string {
  return Buffer.from(JSON.stringify({ o: offset }), "utf8").toString("base64url");
}

/** `{<name>: items, next_cursor, has_more}` for a page of a list already in memory. */
export function pageOf<T>(name: string, all: T[], page: Page): Record<string, unknown> {
  const items = all.slice(page.offset, page.offset + page.limit);
  const hasMore = page.offset + page.limit < all.length;
  return {
    [name]: items,
    next_cursor: hasMore ? cursorFor(page.offset + page.limit) : null,
    has_more: hasMore,
  };
}

/** Same, when the caller fetched `limit + 1` items starting at the offset. */
export function pageOfFetched<T>(name: string, fetched: T[], page: Page): Record<string, unknown> {
  const hasMore = fetched.length > page.limit;
  return {
    [name]: fetched.slice(0, page.limit),
    next_cursor: hasMore ? cursorFor(page.offset + page.limit) : null,
    has_more: hasMore,
  };
}
