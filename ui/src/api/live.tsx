import { createContext, useContext, useEffect, useRef, useState, type ReactNode } from "react";
import { LiveStream, type StreamStatus } from "./sse";
import { getToken } from "./token";
import type { EventEnvelope } from "./types";

/** The console's live stream (exported for tests that provide a stand-in). */
export const LiveContext = createContext<LiveStream | null>(null);

declare global {
  interface Window {
    /** Test hooks used by the end-to-end run (e2e/run.mjs). */
    __inferplane?: {
      stream: LiveStream;
      drop: (holdMs?: number) => void;
    };
  }
}

/** Opens the one live stream of the console for as long as the operator is logged in. */
export function LiveProvider({ children, onUnauthorized }: { children: ReactNode; onUnauthorized: () => void }) {
  const [stream] = useState(() => new LiveStream({ token: getToken, onUnauthorized }));
  useEffect(() => {
    stream.start();
    window.__inferplane = { stream, drop: (ms) => stream.drop(ms) };
    return () => stream.stop();
  }, [stream]);
  return <LiveContext.Provider value={stream}>{children}</LiveContext.Provider>;
}

export function useLiveStream(): LiveStream {
  const s = useContext(LiveContext);
  if (!s) throw new Error("useLiveStream outside LiveProvider");
  return s;
}

/** Calls `handler` with every live event (the latest handler, without resubscribing). */
export function useLiveEvents(handler: (e: EventEnvelope) => void): void {
  const stream = useContext(LiveContext);
  const ref = useRef(handler);
  useEffect(() => {
    ref.current = handler;
  });
  useEffect(() => {
    if (!stream) return;
    return stream.subscribe((e) => ref.current(e));
  }, [stream]);
}

export function useStreamStatus(): StreamStatus {
  const stream = useContext(LiveContext);
  const [status, setStatus] = useState<StreamStatus>(stream?.status ?? "stopped");
  useEffect(() => {
    if (!stream) return;
    setStatus(stream.status);
    return stream.onStatus(setStatus);
  }, [stream]);
  return status;
}
