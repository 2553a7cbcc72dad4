// Groups an instance's events for the timeline: each bootstrap phase becomes one group holding
// its streamed log lines; every other event is an entry of its own, in a category.
import type { EventEnvelope } from "../../api/types";

export type Category = "lifecycle" | "provider" | "bootstrap" | "readiness";

export const CATEGORIES: Category[] = ["lifecycle", "provider", "bootstrap", "readiness"];

const PROVIDER = new Set([
  "ProvisioningStarted", "ZoneChanged", "VolumeCreated", "ServerCreated", "VolumeAttached", "PowerOnRequested",
  "ServerAllocationFailed", "ServerStarted", "ProviderServerDeleted", "ProviderServerStopped", "PowerOffRequested",
  "ServerDeleted", "VolumeDetached", "VolumeDeleted",
]);
const BOOTSTRAP = new Set(["SshHostKeyTrusted", "SshAccessible", "InstallCompleted", "ReinstallRequested"]);

export function categoryOf(eventType: string): Category {
  if (eventType.startsWith("Phase") || BOOTSTRAP.has(eventType)) return "bootstrap";
  if (eventType.startsWith("ReadinessCheck")) return "readiness";
  if (PROVIDER.has(eventType)) return "provider";
  return "lifecycle";
}

/** The data of a payload (`{"Type": {...}}`), or `{}` for events without data. */
export function dataOf(e: EventEnvelope): Record<string, unknown> {
  const p = e.payload;
  if (p && typeof p === "object" && e.event_type in (p as object)) {
    const d = (p as Record<string, unknown>)[e.event_type];
    return d && typeof d === "object" ? (d as Record<string, unknown>) : {};
  }
  return {};
}

export type LogLine = { stream: string; text: string };

export type PhaseGroup = {
  kind: "phase";
  key: string;
  name: string;
  status: "running" | "completed" | "failed";
  durationMs: number | null;
  exitCode: number | null;
  message: string | null;
  lines: LogLine[];
  events: EventEnvelope[];
  first: EventEnvelope;
};

export type EntryGroup = { kind: "event"; key: string; category: Category; event: EventEnvelope };

export type TimelineGroup = PhaseGroup | EntryGroup;

export function buildTimeline(events: EventEnvelope[]): TimelineGroup[] {
  const out: TimelineGroup[] = [];
  const open = new Map<string, PhaseGroup>();
  // Chunks are bytes as they came, not lines: a line may span chunks, per stream.
  const carry = new Map<PhaseGroup, Map<string, string>>();
  const flush = (g: PhaseGroup) => {
    for (const [stream, rest] of carry.get(g) ?? []) if (rest) g.lines.push({ stream, text: rest });
    carry.delete(g);
  };
  const phase = (name: string, e: EventEnvelope): PhaseGroup => {
    let g = open.get(name);
    if (!g) {
      g = { kind: "phase", key: `phase-${e.position}`, name, status: "running", durationMs: null, exitCode: null, message: null, lines: [], events: [], first: e };
      open.set(name, g);
      out.push(g);
    }
    return g;
  };
  for (const e of events) {
    const d = dataOf(e);
    const name = typeof d.name === "string" ? d.name : "";
    switch (e.event_type) {
      case "PhaseStarted": {
        const old = open.get(name);
        if (old) {
          flush(old);
          open.delete(name);
        }
        phase(name, e).events.push(e);
        break;
      }
      case "PhaseLogged": {
        const g = phase(name, e);
        g.events.push(e);
        const stream = typeof d.stream === "string" ? d.stream : "stdout";
        const streams = carry.get(g) ?? new Map<string, string>();
        carry.set(g, streams);
        const parts = ((streams.get(stream) ?? "") + String(d.chunk ?? "")).split("\n");
        streams.set(stream, parts.pop() ?? "");
        for (const text of parts) g.lines.push({ stream, text });
        break;
      }
      case "PhaseCompleted":
      case "PhaseFailed": {
        const g = phase(name, e);
        g.events.push(e);
        g.status = e.event_type === "PhaseCompleted" ? "completed" : "failed";
        g.durationMs = typeof d.duration_ms === "number" ? d.duration_ms : null;
        g.exitCode = typeof d.exit_code === "number" ? d.exit_code : null;
        g.message = typeof d.message === "string" ? d.message : null;
        flush(g);
        open.delete(name);
        break;
      }
      default:
        out.push({ kind: "event", key: `e-${e.position}`, category: categoryOf(e.event_type), event: e });
    }
  }
  for (const g of open.values()) flush(g);
  return out;
}

export type TimelineFilter = { categories: Category[]; text: string };

export function filterTimeline(groups: TimelineGroup[], f: TimelineFilter): TimelineGroup[] {
  const text = f.text.trim().toLowerCase();
  return groups.filter((g) => {
    const cat = g.kind === "phase" ? "bootstrap" : g.category;
    if (f.categories.length && !f.categories.includes(cat)) return false;
    if (!text) return true;
    if (g.kind === "phase") return g.name.toLowerCase().includes(text) || g.lines.some((l) => l.text.toLowerCase().includes(text));
    return g.event.event_type.toLowerCase().includes(text) || JSON.stringify(g.event.payload).toLowerCase().includes(text);
  });
}

/** Adds events not seen yet (by position), keeping the aggregate's order (sequence). */
export function mergeEvents(known: EventEnvelope[], incoming: EventEnvelope[]): EventEnvelope[] {
  const seen = new Set(known.map((e) => e.position));
  const fresh = incoming.filter((e) => !seen.has(e.position));
  if (fresh.length === 0) return known;
  return [...known, ...fresh].sort((a, b) => a.sequence - b.sequence);
}

/** A one-line description of what an event says. */
export function summarize(e: EventEnvelope): string {
  const d = dataOf(e);
  const parts = Object.entries(d)
    .filter(([k]) => k !== "chunk")
    .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : String(v)}`);
  return parts.join(" ");
}
