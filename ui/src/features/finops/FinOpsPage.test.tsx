import { act, cleanup, render, screen, waitFor, within } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { LiveContext } from "../../api/live";
import type { LiveStream, StreamStatus } from "../../api/sse";
import { json, mockFetch } from "../../test/fetch";
import { COSTS, USAGE } from "../../test/samples";
import { byBucket, totalsBy } from "./aggregate";
import { FinOpsPage } from "./FinOpsPage";

beforeEach(() => sessionStorage.setItem("inferplane.token", "t"));
afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

describe("FinOpsPage", () => {
  it("shows cost, tokens and usage by model from the usage and cost APIs", async () => {
    const { calls } = mockFetch({ "GET /api/usage": () => json(USAGE), "GET /api/costs": () => json(COSTS) });
    render(<FinOpsPage />);
    expect((await screen.findByTestId("total-cost")).textContent).toBe("€2.74");
    const table = screen.getByTestId("usage-totals");
    expect(within(table).getByText("BAAI/bge-m3")).toBeTruthy();
    expect(within(table).getByText("300 ms")).toBeTruthy(); // worst p95 of the Llama rows
    const usage = calls.find((c) => c.url.pathname === "/api/usage")!;
    expect(usage.url.searchParams.get("group_by")).toBe("key,model,worker");
    expect(usage.url.searchParams.get("bucket")).toBe("day");
    expect(screen.getByText("€20.0000")).toBeTruthy(); // cost per million tokens
  });

  it("loads again once the live stream is up, so nothing appended before it is missed", async () => {
    const { calls } = mockFetch({ "GET /api/usage": () => json(USAGE), "GET /api/costs": () => json(COSTS) });
    const listeners = new Set<(s: StreamStatus) => void>();
    const stream = {
      status: "connecting" as StreamStatus,
      subscribe: () => () => {},
      onStatus: (l: (s: StreamStatus) => void) => {
        listeners.add(l);
        return () => listeners.delete(l);
      },
    } as unknown as LiveStream;
    render(
      <LiveContext.Provider value={stream}>
        <FinOpsPage />
      </LiveContext.Provider>,
    );
    await screen.findByTestId("total-cost");
    const loads = () => calls.filter((c) => c.url.pathname === "/api/usage").length;
    expect(loads()).toBe(1);
    act(() => listeners.forEach((l) => l("live")));
    await waitFor(() => expect(loads()).toBe(2), { timeout: 2000 });
  });

  it("says the feature is not available when the server answers 404", async () => {
    mockFetch({});
    render(<FinOpsPage />);
    expect(await screen.findByTestId("not-available")).toBeTruthy();
  });
});

describe("usage aggregation", () => {
  it("sums tokens per bucket, oldest first", () => {
    expect(byBucket(USAGE.rows).map((b) => [b.start.slice(0, 10), b.prompt, b.completion, b.requests])).toEqual([
      ["2026-11-28", 40000, 9000, 120],
      ["2026-11-29", 120000, 6000, 580],
    ]);
  });

  it("totals by key, model or worker, largest first", () => {
    expect(totalsBy(USAGE.rows, "key").map((t) => [t.label, t.requests])).toEqual([
      ["sk-cd34", 500],
      ["sk-ab12", 200],
    ]);
    expect(totalsBy(USAGE.rows, "worker").map((t) => t.label)).toEqual(["i-2", "i-1"]);
  });
});
