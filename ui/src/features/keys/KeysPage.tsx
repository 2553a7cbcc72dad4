import { useCallback, useEffect, useState } from "react";
import { isNotAvailable } from "../../api/client";
import type { ApiKey, ApiKeySecret } from "../../api/types";
import { ConfirmButton, ErrorBox, Modal, NotAvailable } from "../../components/common";
import { dateTime, num } from "../../lib/format";
import { createKey, listKeys, revokeKey, rotateKey, updateKey } from "./api";
import { fieldsOf, formOf, type KeyForm } from "./form";

export function KeysPage() {
  const [keys, setKeys] = useState<ApiKey[] | null>(null);
  const [missing, setMissing] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [editing, setEditing] = useState<ApiKey | "new" | null>(null);
  const [secret, setSecret] = useState<ApiKeySecret | null>(null);
  const [rotating, setRotating] = useState<ApiKey | null>(null);

  const load = useCallback(() => {
    listKeys()
      .then(setKeys)
      .catch((e) => (isNotAvailable(e) ? setMissing(true) : setError(e)));
  }, []);
  useEffect(load, [load]);
  const replace = (k: ApiKey) => setKeys((ks) => [k, ...(ks ?? []).filter((x) => x.id !== k.id)]);

  if (missing) return <NotAvailable what="The API keys endpoint (GET /api/keys)" />;
  return (
    <section>
      <div className="toolbar">
        <h1>API keys</h1>
        <span className="spacer" />
        <button className="primary" onClick={() => setEditing("new")}>
          New key
        </button>
      </div>
      <ErrorBox error={error} />
      <div className="scroll-x">
        <table className="grid" data-testid="keys">
          <thead>
            <tr>
              <th>Name</th>
              <th>Prefix</th>
              <th>Status</th>
              <th>Models</th>
              <th>RPM</th>
              <th>TPM</th>
              <th>Budget (tokens)</th>
              <th>Expires</th>
              <th>Last used</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {(keys ?? []).map((k) => (
              <tr key={k.id} className={k.status === "active" ? undefined : "inactive"}>
                <td>{k.name}</td>
                <td>
                  <code>{k.prefix}</code>
                </td>
                <td>
                  <span className={`badge key-${k.status}`}>{k.status}</span>
                  {k.grace_until && (
                    <small className="muted">
                      {" "}
                      old key {k.previous_prefix ?? ""} works until {dateTime(k.grace_until)}
                    </small>
                  )}
                </td>
                <td>{k.models?.join(", ") ?? "all"}</td>
                <td>{num(k.rpm_limit)}</td>
                <td>{num(k.tpm_limit)}</td>
                <td>{num(k.budget_tokens)}</td>
                <td>{dateTime(k.expires_at)}</td>
                <td>{dateTime(k.last_used_at)}</td>
                <td className="row-actions">
                  {k.status === "active" && (
                    <>
                      <button onClick={() => setEditing(k)}>Edit</button>
                      <button onClick={() => setRotating(k)}>Rotate</button>
                      <ConfirmButton
                        danger
                        label="Revoke"
                        question={`Revoke "${k.name}" (${k.prefix}…)? Clients using it are refused at once.`}
                        onConfirm={async () => replace(await revokeKey(k.id))}
                      />
                    </>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {keys && keys.length === 0 && <p className="empty">No API key yet.</p>}
      </div>
      {editing && (
        <KeyDialog
          apiKey={editing === "new" ? null : editing}
          onClose={() => setEditing(null)}
          onSaved={(k, s) => {
            replace(k);
            setEditing(null);
            if (s) setSecret(s);
          }}
        />
      )}
      {rotating && (
        <RotateDialog
          apiKey={rotating}
          onClose={() => setRotating(null)}
          onRotated={(s) => {
            replace(s.api_key);
            setRotating(null);
            setSecret(s);
          }}
        />
      )}
      {secret && <SecretDialog secret={secret} onClose={() => setSecret(null)} />}
    </section>
  );
}

function KeyDialog({ apiKey, onClose, onSaved }: { apiKey: ApiKey | null; onClose: () => void; onSaved: (k: ApiKey, s?: ApiKeySecret) => void }) {
  const [f, setF] = useState<KeyForm>(formOf(apiKey));
  const [error, setError] = useState<unknown>(null);
  const set = (k: keyof KeyForm) => (e: { target: { value: string } }) => setF({ ...f, [k]: e.target.value });
  const save = async () => {
    setError(null);
    try {
      const body = fieldsOf(f);
      if (apiKey) onSaved(await updateKey(apiKey.id, body));
      else {
        const s = await createKey(body);
        onSaved(s.api_key, s);
      }
    } catch (e) {
      setError(e);
    }
  };
  return (
    <Modal title={apiKey ? `Edit ${apiKey.name}` : "New API key"} onClose={onClose}>
      <div className="form">
        <label>
          Name
          <input name="name" value={f.name} onChange={set("name")} />
        </label>
        <label>
          Models (comma-separated; empty: all)
          <input name="models" value={f.models} onChange={set("models")} />
        </label>
        <label>
          Requests per minute (empty: no limit)
          <input name="rpm" type="number" value={f.rpm} onChange={set("rpm")} />
        </label>
        <label>
          Tokens per minute
          <input name="tpm" type="number" value={f.tpm} onChange={set("tpm")} />
        </label>
        <label>
          Budget in tokens (empty: none)
          <input name="budget" value={f.budget} onChange={set("budget")} inputMode="numeric" />
        </label>
        <label>
          Expires
          <input name="expires" type="datetime-local" value={f.expires} onChange={set("expires")} />
        </label>
        <ErrorBox error={error} />
        <div className="actions">
          <button onClick={onClose}>Cancel</button>
          <button className="primary" onClick={save} disabled={!f.name.trim()}>
            {apiKey ? "Save" : "Create key"}
          </button>
        </div>
      </div>
    </Modal>
  );
}

function RotateDialog({ apiKey, onClose, onRotated }: { apiKey: ApiKey; onClose: () => void; onRotated: (s: ApiKeySecret) => void }) {
  const [grace, setGrace] = useState("3600");
  const [error, setError] = useState<unknown>(null);
  return (
    <Modal title={`Rotate ${apiKey.name}`} onClose={onClose}>
      <p>A new secret replaces the old one; the old one keeps working during the grace period.</p>
      <label>
        Grace period (seconds)
        <input type="number" value={grace} onChange={(e) => setGrace(e.target.value)} />
      </label>
      <ErrorBox error={error} />
      <div className="actions">
        <button onClick={onClose}>Cancel</button>
        <button
          className="primary"
          onClick={async () => {
            try {
              onRotated(await rotateKey(apiKey.id, grace.trim() ? Number(grace) : undefined));
            } catch (e) {
              setError(e);
            }
          }}
        >
          Rotate
        </button>
      </div>
    </Modal>
  );
}

/** The secret is shown once: the server keeps only its hash. */
export function SecretDialog({ secret, onClose }: { secret: ApiKeySecret; onClose: () => void }) {
  const [copied, setCopied] = useState(false);
  return (
    <Modal title={`Key for ${secret.api_key.name}`} onClose={onClose}>
      <p className="warning">Copy this key now: it is shown only once and cannot be read again.</p>
      <div className="secret">
        <code data-testid="secret">{secret.key}</code>
        <button
          onClick={async () => {
            await navigator.clipboard?.writeText(secret.key);
            setCopied(true);
          }}
        >
          {copied ? "Copied" : "Copy"}
        </button>
      </div>
      <div className="actions">
        <button className="primary" onClick={onClose}>
          I have stored it
        </button>
      </div>
    </Modal>
  );
}
