import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { json, mockFetch } from "../../test/fetch";
import { KEY } from "../../test/samples";
import { fieldsOf, formOf, wholeNumber } from "./form";
import { KeysPage } from "./KeysPage";

beforeEach(() => sessionStorage.setItem("inferplane.token", "operator-token-123"));
afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

describe("KeysPage", () => {
  it("says the feature is not available when the server answers 404", async () => {
    mockFetch({});
    render(<KeysPage />);
    expect(await screen.findByTestId("not-available")).toHaveProperty("textContent", expect.stringContaining("GET /api/keys"));
  });

  it("lists keys and shows a new key's secret exactly once", async () => {
    const created = { ...KEY, id: "new-id", name: "batch jobs", prefix: "sk-zz99" };
    const { calls } = mockFetch({
      "GET /api/keys": () => json({ items: [KEY] }),
      "POST /api/keys": () => json({ key: "sk-zz99-the-whole-secret", api_key: created }, 201),
    });
    render(<KeysPage />);
    expect(await screen.findByText("chatbot prod")).toBeTruthy();
    expect(screen.getByText("5,000,000")).toBeTruthy();
    fireEvent.click(screen.getByText("New key"));
    fireEvent.change(document.querySelector('input[name="name"]')!, { target: { value: "batch jobs" } });
    fireEvent.change(document.querySelector('input[name="budget"]')!, { target: { value: "1,000,000" } });
    fireEvent.click(screen.getByText("Create key"));
    expect((await screen.findByTestId("secret")).textContent).toBe("sk-zz99-the-whole-secret");
    expect(screen.getByText(/shown only once/)).toBeTruthy();
    const post = calls.find((c) => c.method === "POST")!;
    // Empty fields are not sent: the server's default is "no limit".
    expect(post.body).toEqual({ name: "batch jobs", budget_tokens: 1_000_000 });
    expect(post.headers.get("Authorization")).toBe("Bearer operator-token-123");
    fireEvent.click(screen.getByText("I have stored it"));
    await waitFor(() => expect(screen.queryByTestId("secret")).toBeNull());
    expect(screen.getByText("batch jobs")).toBeTruthy(); // the list keeps the key, not its secret
  });

  it("revokes after confirmation and rotates with a grace period", async () => {
    const { calls } = mockFetch({
      "GET /api/keys": () => json({ items: [KEY] }),
      [`DELETE /api/keys/${KEY.id}`]: () => json({ ...KEY, status: "revoked", version: 2 }),
      [`POST /api/keys/${KEY.id}/rotate`]: () => json({ key: "sk-ab12-rotated", api_key: { ...KEY, rotated_at: "2026-11-30T03:00:00Z", grace_until: "2026-11-30T04:00:00Z" } }),
    });
    render(<KeysPage />);
    await screen.findByText("chatbot prod");
    fireEvent.click(screen.getByText("Rotate"));
    fireEvent.click(screen.getAllByText("Rotate").at(-1)!);
    expect((await screen.findByTestId("secret")).textContent).toBe("sk-ab12-rotated");
    expect(calls.find((c) => c.url.pathname.endsWith("/rotate"))!.body).toEqual({ grace_seconds: 3600 });
    fireEvent.click(screen.getByText("I have stored it"));
    fireEvent.click(screen.getByText("Revoke"));
    fireEvent.click(screen.getByText("Confirm"));
    expect(await screen.findByText("revoked")).toBeTruthy();
  });
});

describe("key form", () => {
  it("reads whole numbers with separators and refuses anything else", () => {
    expect(wholeNumber("1 000 000", "budget")).toBe(1_000_000);
    expect(wholeNumber("1,000", "budget")).toBe(1000);
    expect(wholeNumber("", "budget")).toBeNull();
    expect(() => wholeNumber("1.5", "budget")).toThrow("budget");
  });

  it("round-trips an existing key through the form", () => {
    expect(fieldsOf(formOf(KEY))).toEqual({ name: KEY.name, models: KEY.models, rpm_limit: 600, tpm_limit: null, budget_tokens: 5_000_000, expires_at: null });
  });
});
