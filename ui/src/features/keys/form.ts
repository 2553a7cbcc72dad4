import type { ApiKey } from "../../api/types";
import type { KeyFields } from "./api";

export type KeyForm = { name: string; models: string; rpm: string; tpm: string; budgetEur: string; expires: string };

export function formOf(k: ApiKey | null): KeyForm {
  return {
    name: k?.name ?? "",
    models: k?.models?.join(", ") ?? "",
    rpm: k?.rpm_limit != null ? String(k.rpm_limit) : "",
    tpm: k?.tpm_limit != null ? String(k.tpm_limit) : "",
    budgetEur: k?.budget_micro_eur != null ? (k.budget_micro_eur / 1_000_000).toString() : "",
    expires: k?.expires_at ? k.expires_at.slice(0, 16) : "",
  };
}

/** Euros typed by a person to integer micro-euros, without float rounding ("12.34" -> 12340000). */
export function microEur(s: string): number | null {
  const t = s.trim().replace(",", ".");
  if (!t) return null;
  const m = /^(\d+)(?:\.(\d{0,6}))?$/.exec(t);
  if (!m) throw new Error(`"${s}" is not an amount in euros`);
  return Number(m[1]) * 1_000_000 + Number((m[2] ?? "").padEnd(6, "0"));
}

/** The request body; empty fields mean "no limit" (null). */
export function fieldsOf(f: KeyForm): KeyFields & { name: string } {
  const int = (s: string) => (s.trim() ? Number(s) : null);
  const models = f.models
    .split(",")
    .map((m) => m.trim())
    .filter(Boolean);
  return {
    name: f.name.trim(),
    models: models.length ? models : null,
    rpm_limit: int(f.rpm),
    tpm_limit: int(f.tpm),
    budget_micro_eur: microEur(f.budgetEur),
    expires_at: f.expires ? new Date(f.expires).toISOString() : null,
  };
}
