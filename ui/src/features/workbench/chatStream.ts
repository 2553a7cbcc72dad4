// Streams an OpenAI chat completion and measures it as it arrives.
import { SseParser } from "../../api/sse";

export type ChatMessage = { role: "system" | "user" | "assistant"; content: string };
export type ChatSettings = { model: string; system: string; temperature: number; max_tokens: number };

export type StreamStats = { ttftMs: number | null; tokens: number; elapsedMs: number; tokensPerSecond: number | null };

export function requestBody(s: ChatSettings, history: ChatMessage[]) {
  const messages: ChatMessage[] = s.system.trim() ? [{ role: "system", content: s.system }, ...history] : history;
  return { model: s.model, messages, temperature: s.temperature, max_tokens: s.max_tokens, stream: true };
}

/** Tokens per second of the generation itself (after the first token). */
export function rate(tokens: number, ttftMs: number | null, elapsedMs: number): number | null {
  if (ttftMs === null || tokens < 2 || elapsedMs <= ttftMs) return null;
  return ((tokens - 1) * 1000) / (elapsedMs - ttftMs);
}

/**
 * Reads `data: {chunk}` frames until `data: [DONE]`; calls `onDelta` with each piece of text
 * and the running figures. Counts one token per content chunk unless the server sends usage.
 */
export async function streamChat(
  body: unknown,
  token: string,
  signal: AbortSignal,
  onDelta: (text: string, stats: StreamStats) => void,
  fetchFn: typeof fetch = fetch.bind(globalThis),
  now: () => number = () => performance.now(),
): Promise<StreamStats> {
  const start = now();
  const res = await fetchFn("/v1/chat/completions", {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json", Accept: "text/event-stream" },
    body: JSON.stringify(body),
    signal,
  });
  if (!res.ok || !res.body) {
    let detail = `${res.status}`;
    try {
      const j = await res.json();
      detail = j?.error?.message ?? j?.detail ?? detail;
    } catch {
      // no JSON body
    }
    throw new Error(`The gateway answered ${detail}`);
  }
  const stats: StreamStats = { ttftMs: null, tokens: 0, elapsedMs: 0, tokensPerSecond: null };
  const parser = new SseParser();
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let usageTokens: number | null = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    for (const f of parser.push(value)) {
      if (f.data === "[DONE]") {
        stats.elapsedMs = now() - start;
        if (usageTokens !== null) stats.tokens = usageTokens;
        stats.tokensPerSecond = rate(stats.tokens, stats.ttftMs, stats.elapsedMs);
        return stats;
      }
      let chunk: { choices?: { delta?: { content?: string } }[]; usage?: { completion_tokens?: number } };
      try {
        chunk = JSON.parse(f.data);
      } catch {
        continue;
      }
      if (chunk.usage?.completion_tokens !== undefined) usageTokens = chunk.usage.completion_tokens;
      const text = chunk.choices?.[0]?.delta?.content;
      if (!text) continue;
      const t = now() - start;
      if (stats.ttftMs === null) stats.ttftMs = t;
      stats.tokens++;
      stats.elapsedMs = t;
      stats.tokensPerSecond = rate(stats.tokens, stats.ttftMs, t);
      onDelta(text, { ...stats });
    }
  }
  stats.elapsedMs = now() - start;
  stats.tokensPerSecond = rate(stats.tokens, stats.ttftMs, stats.elapsedMs);
  return stats;
}
