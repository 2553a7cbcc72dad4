import { useEffect, useState } from "react";
import { Navigate, NavLink, Route, Routes, useLocation, useNavigate } from "react-router";
import { onUnauthorized } from "../api/client";
import { LiveProvider } from "../api/live";
import { clearToken, getToken } from "../api/token";
import { ConnectionIndicator } from "../components/ConnectionIndicator";
import { AuditPage } from "../features/audit/AuditPage";
import { EventLogPage } from "../features/events/EventLogPage";
import { FinOpsPage } from "../features/finops/FinOpsPage";
import { InstanceDetailPage } from "../features/instances/InstanceDetailPage";
import { InstancesPage } from "../features/instances/InstancesPage";
import { KeysPage } from "../features/keys/KeysPage";
import { ModelsPage } from "../features/models/ModelsPage";
import { WorkbenchPage } from "../features/workbench/WorkbenchPage";
import { LoginPage } from "./LoginPage";

const NAV = [
  ["/instances", "Instances"],
  ["/events", "Event log"],
  ["/audit", "Audit"],
  ["/models", "Models"],
  ["/keys", "API keys"],
  ["/workbench", "Workbench"],
  ["/finops", "FinOps"],
] as const;

export function App() {
  const [token, setTokenState] = useState(getToken());
  const navigate = useNavigate();
  const location = useLocation();
  useEffect(
    () =>
      onUnauthorized(() => {
        setTokenState(null);
      }),
    [],
  );
  if (!token) {
    return (
      <LoginPage
        onLogin={(t) => {
          setTokenState(t);
          const from = (location.state as { from?: string } | null)?.from;
          navigate(from && from !== "/login" ? from : "/instances", { replace: true });
        }}
      />
    );
  }
  const logout = () => {
    clearToken();
    setTokenState(null);
  };
  return (
    <LiveProvider onUnauthorized={logout}>
      <div className="shell">
        <header className="top">
          <span className="brand">inferplane</span>
          <nav>
            {NAV.map(([to, label]) => (
              <NavLink key={to} to={to}>
                {label}
              </NavLink>
            ))}
          </nav>
          <span className="spacer" />
          <ConnectionIndicator />
          <button className="link" onClick={logout}>
            Log out
          </button>
        </header>
        <main>
          <Routes>
            <Route path="/" element={<Navigate to="/instances" replace />} />
            <Route path="/login" element={<Navigate to="/instances" replace />} />
            <Route path="/instances" element={<InstancesPage />} />
            <Route path="/instances/:id" element={<InstanceDetailPage />} />
            <Route path="/audit" element={<AuditPage />} />
            <Route path="/audit/:id" element={<AuditPage />} />
            <Route path="/events" element={<EventLogPage />} />
            <Route path="/models" element={<ModelsPage />} />
            <Route path="/keys" element={<KeysPage />} />
            <Route path="/workbench" element={<WorkbenchPage />} />
            <Route path="/finops" element={<FinOpsPage />} />
            <Route path="*" element={<p className="empty">No such page.</p>} />
          </Routes>
        </main>
      </div>
    </LiveProvider>
  );
}
