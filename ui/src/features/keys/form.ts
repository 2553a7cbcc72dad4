import type { ApiKey } from "../../api/types";
import type { KeyFields } from "./api";

export type KeyForm = { name: string; models: string; rpm: string; tpm: string; budget: string; expires: string };

export function formOf(k: ApiKey | null): KeyForm {
  return {
    name: k?.name ?? "",
    models: k?.models?.join(", ") ?? "",
    rpm: k?.rpm_limit != null ? String(k.rpm_limit) : "",
    tpm: k?.tpm_limit != null ? String(k.tpm_limit) : "",
    budget: k?.budget_tokens != null ? String(k.budget_tokens) : "",
    expires: k?.expires_at ? k.expires_at.slice(0, 16) : "",
  };
}

/** A whole number typed by a person ("1 000 000", "1,000,000" or "1000000"); empty: none. */
export function wholeNumber(s: string, what: string): number | null {
  const t = s.trim().replace(/[\s,_]/g, "");
  if (!t) return null;
  if (!/^\d+$/.test(t)) throw new Error(`${what}: "${s}" is not a whole number`);
  return Number(t);
}

/** The request body; empty fields mean "no limit" (null). */
export function fieldsOf(f: KeyForm): KeyFields & { name: string } {
  const models = f.models
    .split(",")
    .map((m) => m.trim())
    .filter(Boolean);
  return {
    name: f.name.trim(),
    models: models.length ? models : null,
    rpm_limit: wholeNumber(f.rpm, "requests per minute"),
    tpm_limit: wholeNumber(f.tpm, "tokens per minute"),
    budget_tokens: wholeNumber(f.budget, "budget"),
    expires_at: f.expires ? new Date(f.expires).toISOString() : null,
  };
}
