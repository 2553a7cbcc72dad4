// The one live-stream client of the console: `GET /api/events/stream` read with fetch (an
// EventSource cannot send the Authorization header), resumed after any cut with
// `Last-Event-ID` = the last position handled, so that nothing is missed; positions already
// handled are dropped, so that nothing is shown twice.
import type { EventEnvelope } from "./types";

export type Frame = { id?: string; event?: string; data: string };

/** Incremental parser of `text/event-stream`: feed it chunks, get whole frames back. */
export class SseParser {
  private buf = "";

  push(chunk: string): Frame[] {
    this.buf += chunk.replace(/\r\n?/g, "\n");
    const frames: Frame[] = [];
    let end: number;
    while ((end = this.buf.indexOf("\n\n")) >= 0) {
      const block = this.buf.slice(0, end);
      this.buf = this.buf.slice(end + 2);
      const frame: Frame = { data: "" };
      const data: string[] = [];
      let any = false;
      for (const line of block.split("\n")) {
        if (line === "" || line.startsWith(":")) continue; // keep-alive comment
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "data") data.push(value);
        else if (field === "id") frame.id = value;
        else if (field === "event") frame.event = value;
        else continue;
        any = true;
      }
      if (!any) continue;
      frame.data = data.join("\n");
      frames.push(frame);
    }
    return frames;
  }
}

export type StreamStatus = "connecting" | "live" | "reconnecting" | "stopped";

export type StreamStats = {
  received: number;
  duplicates: number;
  reconnects: number;
  lastId: number | null;
};

type Options = {
  url?: string;
  token: () => string | null;
  fetchFn?: typeof fetch;
  /** Delay before the first retry; doubles up to maxDelayMs. */
  minDelayMs?: number;
  maxDelayMs?: number;
  /** Positions remembered for de-duplication. */
  remember?: number;
  onUnauthorized?: () => void;
};

export class LiveStream {
  private listeners = new Set<(e: EventEnvelope) => void>();
  private statusListeners = new Set<(s: StreamStatus) => void>();
  private seen = new Set<number>();
  private order: number[] = [];
  private abort: AbortController | null = null;
  private running = false;
  private holdUntil = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  status: StreamStatus = "stopped";
  stats: StreamStats = { received: 0, duplicates: 0, reconnects: 0, lastId: null };
  /** Every position handled, in order (for the end-to-end checks of no gap, no duplicate). */
  readonly positions: number[] = [];

  constructor(private opts: Options) {}

  subscribe(l: (e: EventEnvelope) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  onStatus(l: (s: StreamStatus) => void): () => void {
    this.statusListeners.add(l);
    return () => this.statusListeners.delete(l);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    void this.loop();
  }

  stop(): void {
    this.running = false;
    this.abort?.abort();
    if (this.timer) clearTimeout(this.timer);
    this.setStatus("stopped");
  }

  /** Cuts the connection as a network failure would; it comes back after `holdMs`. */
  drop(holdMs = 0): void {
    this.holdUntil = Date.now() + holdMs;
    this.abort?.abort();
  }

  private setStatus(s: StreamStatus) {
    if (this.status === s) return;
    this.status = s;
    this.statusListeners.forEach((l) => l(s));
  }

  /** Handles one frame; exported through `handle` for tests. */
  handle(frame: Frame): void {
    if (frame.event === "reconnect") {
      // The server ends the stream and names where to resume (see docs/api.md).
      try {
        const r = JSON.parse(frame.data) as { last_event_id?: number };
        if (typeof r.last_event_id === "number" && this.stats.lastId === null) {
          this.stats.lastId = r.last_event_id;
        }
      } catch {
        // a malformed reconnect frame still ends the stream
      }
      this.abort?.abort();
      return;
    }
    if (frame.id === undefined) return;
    const position = Number(frame.id);
    if (!Number.isFinite(position)) return;
    if (this.seen.has(position)) {
      this.stats.duplicates++;
      return;
    }
    this.remember(position);
    this.stats.lastId = position;
    this.stats.received++;
    this.positions.push(position);
    let event: EventEnvelope;
    try {
      event = JSON.parse(frame.data) as EventEnvelope;
    } catch {
      return;
    }
    this.listeners.forEach((l) => l(event));
  }

  private remember(position: number) {
    this.seen.add(position);
    this.order.push(position);
    const max = this.opts.remember ?? 50_000;
    if (this.order.length > max) {
      const drop = this.order.splice(0, this.order.length - max);
      drop.forEach((p) => this.seen.delete(p));
    }
  }

  /** Where a (re)connection starts: after the last handled position, or live. */
  requestHeaders(): Headers {
    const h = new Headers({ Accept: "text/event-stream" });
    const token = this.opts.token();
    if (token) h.set("Authorization", `Bearer ${token}`);
    if (this.stats.lastId !== null) h.set("Last-Event-ID", String(this.stats.lastId));
    return h;
  }

  private async loop(): Promise<void> {
    const fetchFn = this.opts.fetchFn ?? fetch.bind(globalThis);
    let delay = this.opts.minDelayMs ?? 500;
    let first = true;
    while (this.running) {
      const wait = Math.max(this.holdUntil - Date.now(), first ? 0 : delay);
      if (wait > 0) {
        this.setStatus("reconnecting");
        await new Promise<void>((r) => (this.timer = setTimeout(r, wait)));
        if (!this.running) break;
      }
      if (!first) this.stats.reconnects++;
      first = false;
      this.setStatus(this.stats.reconnects ? "reconnecting" : "connecting");
      const abort = new AbortController();
      this.abort = abort;
      try {
        const res = await fetchFn(this.opts.url ?? "/api/events/stream", {
          headers: this.requestHeaders(),
          signal: abort.signal,
          cache: "no-store",
        });
        if (res.status === 401) {
          this.opts.onUnauthorized?.();
          this.stop();
          return;
        }
        if (!res.ok || !res.body) throw new Error(`stream answered ${res.status}`);
        this.setStatus("live");
        delay = this.opts.minDelayMs ?? 500;
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        const parser = new SseParser();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          for (const f of parser.push(value)) this.handle(f);
          if (abort.signal.aborted) break;
        }
      } catch {
        // network failure or drop(): retry below
      }
      if (!this.running) break;
      this.setStatus("reconnecting");
      delay = Math.min(delay * 2, this.opts.maxDelayMs ?? 10_000);
    }
  }
}
