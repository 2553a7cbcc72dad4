import { describe, expect, it } from "vitest";
import { streamOf } from "../../test/fetch";
import { rate, requestBody, streamChat } from "./chatStream";
import { snippets } from "./snippets";

const chunk = (content: string) => `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content } }] })}\n\n`;

describe("streamChat", () => {
  it("streams deltas and measures time to first token and tokens per second", async () => {
    let t = 0;
    const clock = () => t;
    const body = streamOf([chunk("Hel"), chunk("lo"), chunk(" there"), "data: [DONE]\n\n"]);
    const fetchFn = (async (_u: string, init: RequestInit) => {
      expect(JSON.parse(String(init.body)).stream).toBe(true);
      expect(new Headers(init.headers).get("Authorization")).toBe("Bearer op");
      t = 120; // first token at 120 ms
      return new Response(body, { status: 200 });
    }) as unknown as typeof fetch;
    const seen: string[] = [];
    const stats = await streamChat({ stream: true }, "op", new AbortController().signal, (d) => {
      seen.push(d);
      t += 50;
    }, fetchFn, clock);
    expect(seen.join("")).toBe("Hello there");
    expect(stats.ttftMs).toBe(120);
    expect(stats.tokens).toBe(3);
    expect(stats.elapsedMs).toBe(270);
    expect(stats.tokensPerSecond).toBeCloseTo(2 / 0.15, 5); // 2 tokens after the first, over the 150 ms after it
  });

  it("reports the gateway's error message", async () => {
    const fetchFn = (async () => new Response(JSON.stringify({ error: { message: "model not served" } }), { status: 404 })) as unknown as typeof fetch;
    await expect(streamChat({}, "op", new AbortController().signal, () => {}, fetchFn)).rejects.toThrow("model not served");
  });

  it("has no rate before a second token", () => {
    expect(rate(1, 100, 500)).toBeNull();
    expect(rate(11, 100, 1100)).toBe(10);
  });
});

describe("snippets", () => {
  it("reproduce the settings with the API key placeholder, system prompt first", () => {
    const s = { model: "meta-llama/Llama-3.1-8B-Instruct", system: "Be brief.", temperature: 0.2, max_tokens: 64 };
    const history = [{ role: "user" as const, content: "It's a test" }];
    expect(requestBody(s, history).messages[0]).toEqual({ role: "system", content: "Be brief." });
    const code = snippets("http://127.0.0.1:8080", s, history);
    for (const c of Object.values(code)) expect(c).toContain("INFERPLANE_API_KEY");
    expect(code.curl).toContain("It'\\''s a test"); // shell-quoted
    expect(code.python).toContain('base_url="http://127.0.0.1:8080/v1"');
    expect(code.javascript).toContain('"max_tokens": 64');
  });
});
