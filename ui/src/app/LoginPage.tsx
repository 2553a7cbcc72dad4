import { useState, type FormEvent } from "react";
import { setToken, clearToken } from "../api/token";

/** The operator token is checked against the API before anything else is shown. */
export function LoginPage({ onLogin }: { onLogin: (token: string) => void }) {
  const [value, setValue] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    const token = value.trim();
    try {
      const res = await fetch("/api/projections", { headers: { Authorization: `Bearer ${token}` } });
      if (res.status === 401) throw new Error("This token is not accepted.");
      if (!res.ok) throw new Error(`The server answered ${res.status}.`);
      setToken(token);
      onLogin(token);
    } catch (err) {
      clearToken();
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="login">
      <form onSubmit={submit} className="card">
        <h1>inferplane console</h1>
        <p className="muted">
          Paste the operator token (the demo prints it and saves it in <code>.inferplane/admin-token</code>).
        </p>
        <label>
          Operator token
          <input
            name="token"
            type="password"
            autoComplete="current-password"
            value={value}
            onChange={(e) => setValue(e.target.value)}
            autoFocus
          />
        </label>
        {error && <p className="error">{error}</p>}
        <button type="submit" disabled={busy || !value.trim()}>
          Log in
        </button>
      </form>
    </div>
  );
}
