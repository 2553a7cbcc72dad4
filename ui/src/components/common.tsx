import { useState, type ReactNode } from "react";
import { ApiError, isNotAvailable } from "../api/client";

/** Shown by pages whose endpoints this server does not have (404 on their route). */
export function NotAvailable({ what }: { what: string }) {
  return (
    <div className="notice" data-testid="not-available">
      <strong>Not available on this server.</strong> {what} answered 404: this inferplane build does not have this
      feature yet.
    </div>
  );
}

export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  const msg =
    error instanceof ApiError
      ? `${error.status} ${error.code ?? ""}: ${error.message}`
      : error instanceof Error
        ? error.message
        : String(error);
  return <p className="error">{msg}</p>;
}

export function errorIsNotAvailable(e: unknown): boolean {
  return isNotAvailable(e);
}

/** A modal dialog; closes on the backdrop or Escape. */
export function Modal({ title, onClose, children }: { title: string; onClose: () => void; children: ReactNode }) {
  return (
    <div className="backdrop" onClick={onClose} onKeyDown={(e) => e.key === "Escape" && onClose()}>
      <div className="modal" role="dialog" aria-label={title} onClick={(e) => e.stopPropagation()}>
        <h2>{title}</h2>
        {children}
      </div>
    </div>
  );
}

/** A button that asks before doing something that cannot be undone. */
export function ConfirmButton(props: {
  label: string;
  question: string;
  onConfirm: () => Promise<unknown>;
  danger?: boolean;
  disabled?: boolean;
}) {
  // One hook only: this button sits on every row of big tables.
  const [open, setOpen] = useState(false);
  return (
    <>
      <button className={props.danger ? "danger" : undefined} disabled={props.disabled} onClick={() => setOpen(true)}>
        {props.label}
      </button>
      {open && <ConfirmDialog {...props} onClose={() => setOpen(false)} />}
    </>
  );
}

export function ConfirmDialog({ label, question, onConfirm, danger, onClose }: { label: string; question: string; onConfirm: () => Promise<unknown>; danger?: boolean; onClose: () => void }) {
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  return (
    <Modal title={label} onClose={onClose}>
      <p>{question}</p>
      <ErrorBox error={error} />
      <div className="actions">
        <button onClick={onClose}>Cancel</button>
        <button
          className={danger ? "danger" : "primary"}
          disabled={busy}
          onClick={async () => {
            setBusy(true);
            setError(null);
            try {
              await onConfirm();
              onClose();
            } catch (e) {
              setError(e);
              setBusy(false);
            }
          }}
        >
          Confirm
        </button>
      </div>
    </Modal>
  );
}

export function StatusBadge({ status }: { status: string }) {
  return <span className={`badge st-${status}`}>{status}</span>;
}

export function Progress({ value }: { value: number }) {
  return (
    <span className="progress" title={`${value}%`}>
      <span style={{ width: `${Math.max(0, Math.min(100, value))}%` }} />
    </span>
  );
}
