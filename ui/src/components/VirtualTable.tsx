import { useVirtualizer } from "@tanstack/react-virtual";
import { memo, useRef, type ReactNode } from "react";

export type Column<T> = {
  key: string;
  header: ReactNode;
  width: string;
  render: (row: T) => ReactNode;
  sortable?: boolean;
};

type Props<T> = {
  rows: T[];
  columns: Column<T>[];
  rowKey: (row: T) => string;
  rowHeight?: number;
  height?: string;
  sort?: { key: string; desc: boolean };
  onSort?: (key: string) => void;
  onRowClick?: (row: T) => void;
  testId?: string;
};

/** A table that renders only the rows in view: thousands of rows stay fast. */
export function VirtualTable<T>({ rows, columns, rowKey, rowHeight = 34, height = "calc(100vh - 210px)", sort, onSort, onRowClick, testId }: Props<T>) {
  const scroller = useRef<HTMLDivElement>(null);
  const v = useVirtualizer({
    count: rows.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => rowHeight,
    overscan: 6,
  });
  const template = columns.map((c) => c.width).join(" ");
  return (
    <div className="vtable" data-testid={testId} role="table">
      <div className="vrow vhead" style={{ gridTemplateColumns: template }} role="row">
        {columns.map((c) => (
          <div
            key={c.key}
            role="columnheader"
            className={c.sortable ? "sortable" : undefined}
            onClick={c.sortable && onSort ? () => onSort(c.key) : undefined}
          >
            {c.header}
            {sort?.key === c.key ? (sort.desc ? " ▼" : " ▲") : ""}
          </div>
        ))}
      </div>
      <div ref={scroller} className="vbody" style={{ height }} data-testid={testId ? `${testId}-scroll` : undefined}>
        <div style={{ height: v.getTotalSize(), position: "relative" }}>
          {v.getVirtualItems().map((item) => {
            const row = rows[item.index];
            return (
              <Row
                key={rowKey(row)}
                row={row}
                columns={columns}
                template={template}
                height={rowHeight}
                start={item.start}
                onClick={onRowClick}
              />
            );
          })}
        </div>
      </div>
      <div className="vfoot">{rows.length.toLocaleString("en-US")} rows</div>
    </div>
  );
}

type RowProps<T> = {
  row: T;
  columns: Column<T>[];
  template: string;
  height: number;
  start: number;
  onClick?: (row: T) => void;
};

// Memoised: while scrolling, rows already on screen are not rendered again.
const Row = memo(function Row<T>({ row, columns, template, height, start, onClick }: RowProps<T>) {
  return (
    <div
      role="row"
      className={`vrow${onClick ? " clickable" : ""}`}
      style={{ gridTemplateColumns: template, height, transform: `translateY(${start}px)` }}
      onClick={onClick ? () => onClick(row) : undefined}
    >
      {columns.map((c) => (
        <div key={c.key} role="cell">
          {c.render(row)}
        </div>
      ))}
    </div>
  );
}) as <T>(p: RowProps<T>) => ReactNode;
