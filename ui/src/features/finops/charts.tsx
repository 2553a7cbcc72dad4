// Small hand-written SVG charts: no chart library for two chart kinds.

export type Series = { label: string; color: string; values: number[] };

/** Stacked bars over time buckets. */
export function StackedBars({ labels, series, height = 180, format }: { labels: string[]; series: Series[]; height?: number; format: (n: number) => string }) {
  const totals = labels.map((_, i) => series.reduce((s, x) => s + (x.values[i] ?? 0), 0));
  const max = Math.max(1, ...totals);
  const w = 600;
  const bw = labels.length ? w / labels.length : w;
  return (
    <figure className="chart">
      <svg viewBox={`0 0 ${w} ${height + 20}`} preserveAspectRatio="none" role="img" aria-label={series.map((s) => s.label).join(", ")}>
        {labels.map((l, i) => {
          let y = height;
          return (
            <g key={l}>
              {series.map((s) => {
                const h = ((s.values[i] ?? 0) / max) * height;
                y -= h;
                return (
                  <rect key={s.label} x={i * bw + 1} y={y} width={Math.max(1, bw - 2)} height={h} fill={s.color}>
                    <title>{`${l} ${s.label}: ${format(s.values[i] ?? 0)}`}</title>
                  </rect>
                );
              })}
            </g>
          );
        })}
        <text x={2} y={12} className="axis">
          {format(max)}
        </text>
        {labels.length > 0 && (
          <>
            <text x={2} y={height + 16} className="axis">
              {labels[0]}
            </text>
            <text x={w - 2} y={height + 16} className="axis" textAnchor="end">
              {labels[labels.length - 1]}
            </text>
          </>
        )}
      </svg>
      <figcaption>
        {series.map((s) => (
          <span key={s.label}>
            <i style={{ background: s.color }} /> {s.label}
          </span>
        ))}
      </figcaption>
    </figure>
  );
}

/** Horizontal bars, one per label. */
export function HBars({ items, format }: { items: { label: string; value: number }[]; format: (n: number) => string }) {
  const max = Math.max(1, ...items.map((i) => i.value));
  return (
    <div className="hbars">
      {items.map((i) => (
        <div key={i.label} className="hbar">
          <span className="label" title={i.label}>
            {i.label}
          </span>
          <span className="bar">
            <span style={{ width: `${(i.value / max) * 100}%` }} />
          </span>
          <span className="value">{format(i.value)}</span>
        </div>
      ))}
    </div>
  );
}
