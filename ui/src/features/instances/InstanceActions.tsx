import type { Instance } from "../../api/types";
import { ConfirmButton } from "../../components/common";
import { instanceAction, terminateInstance } from "./api";

const FINAL = ["terminating", "terminated", "archived"];

/** Terminate, reinstall, archive: each asks for confirmation; the server decides if allowed. */
export function InstanceActions({ instance: i, onChanged, compact }: { instance: Instance; onChanged?: (i: Instance) => void; compact?: boolean }) {
  const canReinstall = ["ready", "unavailable", "failed"].includes(i.status) && !!i.server && !i.server.deleted;
  const canArchive = i.status === "terminated" || (i.status === "failed" && !i.server && i.volumes.every((v) => v.deleted));
  return (
    <span className="row-actions" onClick={(e) => e.stopPropagation()}>
      {!FINAL.includes(i.status) && (
        <ConfirmButton
          danger
          label={compact ? "Terminate" : "Terminate instance"}
          question={`Terminate ${i.model_repo} on ${i.instance_type} (${i.id})? The server and its volumes are deleted.`}
          onConfirm={async () => onChanged?.(await terminateInstance(i.id, "terminated from the console"))}
        />
      )}
      {canReinstall && (
        <ConfirmButton
          label="Reinstall"
          question={`Reinstall vLLM on the same server for ${i.id}? It stops serving until ready again.`}
          onConfirm={async () => onChanged?.(await instanceAction(i.id, "reinstall"))}
        />
      )}
      {canArchive && (
        <ConfirmButton
          label="Archive"
          question={`Archive ${i.id}? It leaves the default list; its history stays.`}
          onConfirm={async () => onChanged?.(await instanceAction(i.id, "archive"))}
        />
      )}
    </span>
  );
}
