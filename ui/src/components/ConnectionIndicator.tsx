import { useLiveStream, useStreamStatus } from "../api/live";

const LABEL = { connecting: "connecting", live: "live", reconnecting: "reconnecting", stopped: "offline" };

/** Shows the state of the live stream and where it would resume from. */
export function ConnectionIndicator() {
  const status = useStreamStatus();
  const stream = useLiveStream();
  const last = stream.stats.lastId;
  return (
    <span
      className={`conn conn-${status}`}
      data-testid="connection"
      data-status={status}
      title={last === null ? "no event yet" : `last event #${last}; resumes from there after a cut`}
    >
      <span className="dot" /> {LABEL[status]}
    </span>
  );
}
