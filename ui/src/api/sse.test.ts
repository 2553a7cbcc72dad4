import { describe, expect, it } from "vitest";
import { LiveStream, SseParser } from "./sse";
import { streamOf } from "../test/fetch";

const frame = (p: number, type = "ModelActivated") =>
  `id: ${p}\nevent: ${type}\ndata: ${JSON.stringify({ position: p, event_type: type, aggregate_type: "model", aggregate_id: "m", sequence: p, payload: type, metadata: {}, recorded_at: "2026-11-30T00:00:00Z" })}\n\n`;

describe("SseParser", () => {
  it("reassembles frames split across chunks and skips keep-alive comments", () => {
    const p = new SseParser();
    const text = ":\n\n" + frame(1) + frame(2);
    const out = [];
    for (let i = 0; i < text.length; i += 7) out.push(...p.push(text.slice(i, i + 7)));
    expect(out.map((f) => f.id)).toEqual(["1", "2"]);
    expect(JSON.parse(out[1].data).position).toBe(2);
  });

  it("reads CRLF line ends, multi-line data and a frame without id", () => {
    const p = new SseParser();
    const out = p.push('event: reconnect\r\ndata: {"last_event_id":\r\ndata: 7}\r\n\r\n');
    expect(out).toEqual([{ event: "reconnect", data: '{"last_event_id":\n7}' }]);
  });
});

/** A fetch that serves the given connections one after the other and records the headers. */
function connections(bodies: string[][]) {
  const seen: Headers[] = [];
  let n = 0;
  const fetchFn = (async (_url: string, init: RequestInit) => {
    seen.push(new Headers(init.headers));
    const body = bodies[n++];
    if (!body) return new Response(streamOf([], true), { status: 200 }); // stays open
    return new Response(streamOf(body), { status: 200 });
  }) as unknown as typeof fetch;
  return { fetchFn, seen };
}

const waitFor = async (cond: () => boolean) => {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(cond()).toBe(true);
};

describe("LiveStream", () => {
  it("resumes after a cut with Last-Event-ID = the last position handled, and drops repeats", async () => {
    // The second connection repeats #2 (as a resume from an older id would): it is dropped.
    const { fetchFn, seen } = connections([[frame(1), frame(2)], [frame(2), frame(3)]]);
    const s = new LiveStream({ token: () => "tok", fetchFn, minDelayMs: 1, maxDelayMs: 2 });
    const got: number[] = [];
    s.subscribe((e) => got.push(e.position));
    s.start();
    await waitFor(() => got.length === 3);
    s.stop();
    expect(got).toEqual([1, 2, 3]);
    expect(s.stats.duplicates).toBe(1);
    expect(seen[0].get("Last-Event-ID")).toBeNull(); // first connection: live
    expect(seen[1].get("Last-Event-ID")).toBe("2");
    expect(seen[1].get("Authorization")).toBe("Bearer tok");
    expect(s.stats.reconnects).toBeGreaterThanOrEqual(1);
  });

  it("keeps stream order, not position order: a lower position after a higher one is not a repeat", async () => {
    const { fetchFn, seen } = connections([[frame(10), frame(9)], [frame(11)]]);
    const s = new LiveStream({ token: () => "t", fetchFn, minDelayMs: 1 });
    const got: number[] = [];
    s.subscribe((e) => got.push(e.position));
    s.start();
    await waitFor(() => got.length === 3);
    s.stop();
    expect(got).toEqual([10, 9, 11]);
    // Resume from the last event received (9), as docs/api.md asks, not the largest.
    expect(seen[1].get("Last-Event-ID")).toBe("9");
  });

  it("starts from the server's reconnect frame when it has handled nothing yet", async () => {
    const { fetchFn, seen } = connections([['event: reconnect\ndata: {"last_event_id":41,"reason":"server shutting down"}\n\n'], [frame(42)]]);
    const s = new LiveStream({ token: () => "t", fetchFn, minDelayMs: 1 });
    const got: number[] = [];
    s.subscribe((e) => got.push(e.position));
    s.start();
    await waitFor(() => got.length === 1);
    s.stop();
    expect(seen[1].get("Last-Event-ID")).toBe("41");
    expect(got).toEqual([42]);
  });

  it("reports its status and stops asking on 401", async () => {
    let calls = 0;
    const fetchFn = (async () => {
      calls++;
      return new Response("", { status: 401 });
    }) as unknown as typeof fetch;
    let unauthorized = false;
    const s = new LiveStream({ token: () => "bad", fetchFn, onUnauthorized: () => (unauthorized = true) });
    const statuses: string[] = [];
    s.onStatus((x) => statuses.push(x));
    s.start();
    await waitFor(() => unauthorized);
    await new Promise((r) => setTimeout(r, 20));
    expect(calls).toBe(1);
    expect(s.status).toBe("stopped");
    expect(statuses).toContain("connecting");
  });
});
