import { useState } from "react";
import type { Instance } from "../../api/types";
import { ConfirmDialog } from "../../components/common";
import { instanceAction, terminateInstance } from "./api";

const FINAL = ["terminating", "terminated", "archived"];

type Action = "terminate" | "reinstall" | "archive";

function question(i: Instance, a: Action): string {
  switch (a) {
    case "terminate":
      return `Terminate ${i.model_repo} on ${i.instance_type} (${i.id})? The server and its volumes are deleted.`;
    case "reinstall":
      return `Reinstall vLLM on the same server for ${i.id}? It stops serving until ready again.`;
    case "archive":
      return `Archive ${i.id}? It leaves the default list; its history stays.`;
  }
}

/**
 * Terminate, reinstall, archive: each asks for confirmation; the server decides if allowed.
 * One state for all three (this sits on every row of the instances table).
 */
export function InstanceActions({ instance: i, onChanged, compact }: { instance: Instance; onChanged?: (i: Instance) => void; compact?: boolean }) {
  const [asking, setAsking] = useState<Action | null>(null);
  const canReinstall = ["ready", "unavailable", "failed"].includes(i.status) && !!i.server && !i.server.deleted;
  const canArchive = i.status === "terminated" || (i.status === "failed" && !i.server && i.volumes.every((v) => v.deleted));
  const run = async (a: Action) => {
    const next = a === "terminate" ? await terminateInstance(i.id, "terminated from the console") : await instanceAction(i.id, a);
    onChanged?.(next);
  };
  return (
    <span className="row-actions" onClick={(e) => e.stopPropagation()}>
      {!FINAL.includes(i.status) && (
        <button className="danger" onClick={() => setAsking("terminate")}>
          {compact ? "Terminate" : "Terminate instance"}
        </button>
      )}
      {canReinstall && <button onClick={() => setAsking("reinstall")}>Reinstall</button>}
      {canArchive && <button onClick={() => setAsking("archive")}>Archive</button>}
      {asking && (
        <ConfirmDialog
          label={asking[0].toUpperCase() + asking.slice(1)}
          question={question(i, asking)}
          danger={asking === "terminate"}
          onConfirm={() => run(asking)}
          onClose={() => setAsking(null)}
        />
      )}
    </span>
  );
}
