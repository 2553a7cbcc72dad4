import { useEffect, useRef, useState } from "react";
import { api, isNotAvailable } from "../../api/client";
import { getToken } from "../../api/token";
import { ErrorBox, NotAvailable } from "../../components/common";
import { streamChat, requestBody, type ChatMessage, type ChatSettings, type StreamStats } from "./chatStream";
import { snippets } from "./snippets";

type ModelList = { data: { id: string }[] };

export function WorkbenchPage() {
  const [models, setModels] = useState<string[] | null>(null);
  const [missing, setMissing] = useState(false);
  const [settings, setSettings] = useState<ChatSettings>({ model: "", system: "You are a helpful assistant.", temperature: 0.7, max_tokens: 256 });
  const [history, setHistory] = useState<ChatMessage[]>([]);
  const [input, setInput] = useState("");
  const [answer, setAnswer] = useState("");
  const [stats, setStats] = useState<StreamStats | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [tab, setTab] = useState<"curl" | "python" | "javascript">("curl");
  const abort = useRef<AbortController | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    api<ModelList>("/v1/models")
      .then((l) => {
        const ids = l.data.map((m) => m.id);
        setModels(ids);
        setSettings((s) => ({ ...s, model: s.model || ids[0] || "" }));
      })
      .catch((e) => (isNotAvailable(e) ? setMissing(true) : setError(e)));
  }, []);

  const send = async () => {
    const question: ChatMessage = { role: "user", content: input };
    const convo = [...history, question];
    setHistory(convo);
    setInput("");
    setAnswer("");
    setStats(null);
    setError(null);
    setBusy(true);
    const ctrl = new AbortController();
    abort.current = ctrl;
    let text = "";
    try {
      const final = await streamChat(requestBody(settings, convo), getToken() ?? "", ctrl.signal, (delta, s) => {
        text += delta;
        setAnswer(text);
        setStats(s);
      });
      setStats(final);
    } catch (e) {
      if (!ctrl.signal.aborted) setError(e);
    } finally {
      setHistory((h) => [...h, { role: "assistant", content: text + (ctrl.signal.aborted ? " [cancelled]" : "") }]);
      setAnswer("");
      setBusy(false);
    }
  };

  if (missing) return <NotAvailable what="The OpenAI gateway (GET /v1/models)" />;
  const code = snippets(window.location.origin, settings, [...history, ...(input ? [{ role: "user" as const, content: input }] : [])]);
  return (
    <section className="workbench">
      <div className="toolbar">
        <h1>Workbench</h1>
        <select aria-label="Model" value={settings.model} onChange={(e) => setSettings({ ...settings, model: e.target.value })}>
          {(models ?? []).map((m) => (
            <option key={m}>{m}</option>
          ))}
        </select>
        <label className="inline">
          temperature
          <input type="number" step="0.1" min={0} max={2} value={settings.temperature} onChange={(e) => setSettings({ ...settings, temperature: Number(e.target.value) })} />
        </label>
        <label className="inline">
          max tokens
          <input type="number" min={1} value={settings.max_tokens} onChange={(e) => setSettings({ ...settings, max_tokens: Number(e.target.value) })} />
        </label>
        <button onClick={() => setHistory([])} disabled={busy}>
          New chat
        </button>
      </div>
      {models && models.length === 0 && <p className="notice">No model is served right now: start an instance and wait for it to be ready.</p>}
      <label>
        System prompt
        <textarea rows={2} value={settings.system} onChange={(e) => setSettings({ ...settings, system: e.target.value })} />
      </label>
      <div className="chat" data-testid="chat">
        {history.map((m, i) => (
          <div key={i} className={`msg ${m.role}`}>
            <small>{m.role}</small>
            <div>{m.content}</div>
          </div>
        ))}
        {busy && (
          <div className="msg assistant streaming">
            <small>assistant</small>
            <div>{answer || "…"}</div>
          </div>
        )}
      </div>
      <div className="stats" data-testid="chat-stats">
        TTFT {stats?.ttftMs != null ? `${Math.round(stats.ttftMs)} ms` : "—"} · {stats?.tokens ?? 0} tokens ·{" "}
        {stats?.tokensPerSecond != null ? `${stats.tokensPerSecond.toFixed(1)} tokens/s` : "— tokens/s"}
      </div>
      <ErrorBox error={error} />
      <div className="composer">
        <textarea
          rows={3}
          placeholder="Message"
          value={input}
          onChange={(e) => setInput(e.target.value)}
          onKeyDown={(e) => e.key === "Enter" && (e.ctrlKey || e.metaKey) && !busy && input.trim() && send()}
        />
        {busy ? (
          <button className="danger" onClick={() => abort.current?.abort()}>
            Cancel
          </button>
        ) : (
          <button className="primary" onClick={send} disabled={!input.trim() || !settings.model}>
            Send
          </button>
        )}
      </div>
      <div className="panel">
        <div className="tabs">
          {(["curl", "python", "javascript"] as const).map((t) => (
            <button key={t} className={tab === t ? "on" : undefined} onClick={() => setTab(t)}>
              {t}
            </button>
          ))}
          <button onClick={() => navigator.clipboard?.writeText(code[tab])}>Copy</button>
        </div>
        <pre className="code" data-testid="snippet">
          {code[tab]}
        </pre>
      </div>
    </section>
  );
}
