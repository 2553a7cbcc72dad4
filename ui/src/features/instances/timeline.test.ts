import { describe, expect, it } from "vitest";
import { ev } from "../../test/samples";
import { buildTimeline, categoryOf, filterTimeline, mergeEvents, type PhaseGroup } from "./timeline";

describe("buildTimeline", () => {
  it("folds a phase with its log lines, joining lines split across chunks, per stream", () => {
    const events = [
      ev("ServerStarted", { public_ip: "10.0.0.1" }),
      ev("PhaseStarted", { name: "install" }),
      ev("PhaseLogged", { name: "install", stream: "stdout", chunk: "pip inst" }),
      ev("PhaseLogged", { name: "install", stream: "stderr", chunk: "warning: slow\n" }),
      ev("PhaseLogged", { name: "install", stream: "stdout", chunk: "all vllm\ndone\npartial" }),
      ev("PhaseCompleted", { name: "install", duration_ms: 1200, exit_code: 0 }),
      ev("InstallCompleted"),
    ];
    const groups = buildTimeline(events);
    expect(groups.map((g) => (g.kind === "phase" ? `phase:${g.name}` : g.event.event_type))).toEqual([
      "ServerStarted",
      "phase:install",
      "InstallCompleted",
    ]);
    const phase = groups[1] as PhaseGroup;
    expect(phase.status).toBe("completed");
    expect(phase.durationMs).toBe(1200);
    expect(phase.exitCode).toBe(0);
    expect(phase.events).toHaveLength(5);
    expect(phase.lines).toEqual([
      { stream: "stderr", text: "warning: slow" },
      { stream: "stdout", text: "pip install vllm" },
      { stream: "stdout", text: "done" },
      { stream: "stdout", text: "partial" }, // the unterminated tail is kept when the phase ends
    ]);
  });

  it("keeps a failed phase's message and shows a still running phase as running", () => {
    const groups = buildTimeline([
      ev("PhaseStarted", { name: "download" }),
      ev("PhaseFailed", { name: "download", duration_ms: 50, exit_code: 1, message: "no space left" }),
      ev("PhaseStarted", { name: "start" }),
      ev("PhaseLogged", { name: "start", stream: "stdout", chunk: "loading" }),
    ]) as PhaseGroup[];
    expect(groups.map((g) => [g.name, g.status, g.message])).toEqual([
      ["download", "failed", "no space left"],
      ["start", "running", null],
    ]);
    expect(groups[1].lines).toEqual([{ stream: "stdout", text: "loading" }]);
  });

  it("starts a new group when a phase runs again (a reinstall)", () => {
    const groups = buildTimeline([
      ev("PhaseStarted", { name: "install" }),
      ev("PhaseCompleted", { name: "install", duration_ms: 1, exit_code: 0 }),
      ev("ReinstallRequested", { attempt: 2 }),
      ev("PhaseStarted", { name: "install" }),
      ev("PhaseLogged", { name: "install", stream: "stdout", chunk: "again\n" }),
    ]);
    expect(groups).toHaveLength(3);
    expect((groups[2] as PhaseGroup).lines).toEqual([{ stream: "stdout", text: "again" }]);
  });

  it("files events by category and filters by category and text", () => {
    expect(categoryOf("ServerCreated")).toBe("provider");
    expect(categoryOf("ReadinessCheckFailed")).toBe("readiness");
    expect(categoryOf("SshAccessible")).toBe("bootstrap");
    expect(categoryOf("InstanceReady")).toBe("lifecycle");
    const groups = buildTimeline([
      ev("InstanceRequested", { zone: "fr-par-2" }),
      ev("VolumeCreated", { volume_id: "v1", zone: "fr-par-2", size_gb: 100 }),
      ev("PhaseStarted", { name: "install" }),
      ev("PhaseLogged", { name: "install", stream: "stdout", chunk: "Downloading weights\n" }),
      ev("ReadinessCheckPassed", { check: "vllm_http_ok", duration_ms: 3, detail: null }),
    ]);
    const only = (categories: ("provider" | "bootstrap" | "readiness" | "lifecycle")[], text = "") =>
      filterTimeline(groups, { categories, text }).map((g) => g.key);
    expect(only(["provider"])).toHaveLength(1);
    expect(only(["bootstrap", "readiness"])).toHaveLength(2);
    expect(only([], "weights")).toHaveLength(1); // found in a log line
    expect(only([], "fr-par-2")).toHaveLength(2);
  });
});

describe("mergeEvents", () => {
  it("adds only unseen positions and orders by the aggregate's sequence", () => {
    const a = ev("InstanceRequested", {});
    const b = ev("ProvisioningStarted", { attempt: 1, zone: "z" });
    const c = ev("ServerCreated", { server_id: "s" });
    const merged = mergeEvents([a, c], [b, c]);
    expect(merged.map((e) => e.position)).toEqual([a.position, b.position, c.position]);
    const same = mergeEvents(merged, [a]);
    expect(same).toBe(merged); // nothing new: same array, no re-render
  });
});
