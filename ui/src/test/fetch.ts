// A fetch double for component tests: answers recorded payloads by method and path.
import { vi } from "vitest";

export type Handler = (url: URL, init: RequestInit) => Response | Promise<Response>;

export function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

export const notFound = () => json({ type: "/problems/not-found", title: "Not found", status: 404, code: "not-found", detail: "no such route" }, 404);

/** Routes "METHOD /path" to handlers; anything else is a 404 problem. Records every call. */
export function mockFetch(routes: Record<string, Handler>) {
  const calls: { method: string; url: URL; body: unknown; headers: Headers }[] = [];
  const fn = vi.fn(async (input: RequestInfo | URL, init: RequestInit = {}) => {
    const url = new URL(String(input), "http://localhost");
    const method = init.method ?? "GET";
    calls.push({ method, url, body: init.body ? JSON.parse(String(init.body)) : undefined, headers: new Headers(init.headers) });
    const h = routes[`${method} ${url.pathname}`];
    return h ? h(url, init) : notFound();
  });
  vi.stubGlobal("fetch", fn);
  return { fn, calls };
}

/** A streamed body that yields the given chunks. */
export function streamOf(chunks: string[], keepOpen = false): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  return new ReadableStream({
    start(c) {
      chunks.forEach((x) => c.enqueue(enc.encode(x)));
      if (!keepOpen) c.close();
    },
  });
}
