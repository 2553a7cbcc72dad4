// Formatting helpers. Money stays integer micro-euros until it is shown.

/** Micro-euros as euros: cents by default, four decimals for amounts under one euro. */
export function eur(micro: number | null | undefined, digits?: number): string {
  if (micro === null || micro === undefined) return "—";
  digits ??= micro !== 0 && Math.abs(micro) < 1_000_000 ? 4 : 2;
  const neg = micro < 0;
  const abs = Math.abs(micro);
  const whole = Math.floor(abs / 1_000_000);
  const frac = String(abs % 1_000_000).padStart(6, "0").slice(0, digits);
  return `${neg ? "-" : ""}€${whole.toLocaleString("en-US")}${digits > 0 ? "." + frac : ""}`;
}

export function ageOf(iso: string, now = Date.now()): string {
  const s = Math.max(0, Math.floor((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}`;
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`;
}

export function time(iso: string): string {
  const d = new Date(iso);
  return d.toISOString().slice(11, 23);
}

export function dateTime(iso: string | null | undefined): string {
  if (!iso) return "—";
  return new Date(iso).toISOString().replace("T", " ").slice(0, 19);
}

export function num(n: number | null | undefined): string {
  if (n === null || n === undefined) return "—";
  return n.toLocaleString("en-US");
}

export function shortId(id: string): string {
  return id.length > 13 ? id.slice(0, 8) + "…" + id.slice(-4) : id;
}

export function actorLabel(a: { kind: string; id: string } | undefined): string {
  return a ? `${a.kind}:${a.id}` : "—";
}
