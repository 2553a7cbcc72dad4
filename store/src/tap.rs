//! One reading of new events per process, shared by its readers.
//!
//! Every reader of a process (each processor's feed, each projection) is woken by the same
//! notification and would otherwise run the same query for the same new events: with four
//! processors and five projections, one append costs nine reads and nine decodings. The tap
//! keeps the events it read last in memory, in stream order. A reader asking for the events
//! after a cursor the tap holds is answered from memory; the first reader past the tap's head
//! reads from the database (on its own connection) and the others, waiting behind it, get
//! what it read. A reader far behind (catching up after a restart, a rebuild) reads directly
//! and leaves the tap alone.
//!
//! Correctness is the reader's own query's: the tap only ever holds a contiguous run of the
//! global order as [`read_after_checked`](crate::reader::read_after_checked) returned it
//! (below the horizon), so serving a suffix of it is exactly what that query would return. A
//! reader at the head is told "nothing new" without a query only while no notification came
//! since the tap's last read began, that read saw nothing held back, and it is younger than
//! [`TRUST_FOR`] (so the readers' periodic polling still reaches the database).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use sqlx::PgConnection;
use tokio::sync::{Mutex, watch};

use crate::reader::{self, Page};
use crate::{Cursor, StoredEvent};

/// Events kept in memory; older ones are dropped from the front.
const CAPACITY: usize = 20_000;

/// How long a read with no notification since is trusted to be the head.
const TRUST_FOR: Duration = Duration::from_secs(1);

/// The shared reader of a process (see the module documentation).
pub struct EventTap {
    state: Mutex<TapState>,
    notified: watch::Receiver<u64>,
}

struct TapState {
    /// The cursor the held run starts after (events after it, up to `head`, are all held).
    start: Option<Cursor>,
    events: VecDeque<StoredEvent>,
    /// The last cursor read (the last held event's, or `start` while none is held).
    head: Cursor,
    /// The notification count when the last read began, whether it saw held-back events,
    /// and when it began.
    read_at_notification: u64,
    held_back: bool,
    read_at: Option<Instant>,
}

impl EventTap {
    pub fn new(notified: watch::Receiver<u64>) -> Self {
        Self {
            state: Mutex::new(TapState {
                start: None,
                events: VecDeque::new(),
                head: Cursor::default(),
                read_at_notification: 0,
                held_back: false,
                read_at: None,
            }),
            notified,
        }
    }

    /// What [`read_after_checked`](reader::read_after_checked) would return for `after`
    /// (up to `limit` events below the horizon, and whether more are held back), from memory
    /// when the tap holds it.
    pub async fn read_after_checked(
        &self,
        conn: &mut PgConnection,
        after: Cursor,
        limit: i64,
    ) -> Result<Page, sqlx::Error> {
        let limit = limit.max(1) as usize;
        let mut st = self.state.lock().await;
        let Some(start) = st.start else {
            return self.read_into(&mut st, conn, after, limit).await;
        };
        if after < start || after > st.head {
            // Behind what is held (or ahead of it): a reader of its own.
            drop(st);
            metrics::counter!("inferplane_tap_reads_total", "served" => "direct").increment(1);
            return reader::read_after_checked(conn, after, limit as i64).await;
        }
        if after < st.head {
            let from = st.events.partition_point(|e| e.cursor() <= after);
            let events: Vec<StoredEvent> = st.events.range(from..).take(limit).cloned().collect();
            metrics::counter!("inferplane_tap_reads_total", "served" => "memory").increment(1);
            return Ok(Page {
                // Everything up to the head was below the horizon when read.
                held_back: false,
                events,
            });
        }
        // At the head.
        let notification = *self.notified.borrow();
        if notification == st.read_at_notification
            && !st.held_back
            && st.read_at.is_some_and(|t| t.elapsed() < TRUST_FOR)
        {
            metrics::counter!("inferplane_tap_reads_total", "served" => "nothing_new").increment(1);
            return Ok(Page::default());
        }
        self.read_into(&mut st, conn, after, limit).await
    }

    /// Reads after `after` (the head, or anywhere when nothing is held) into memory.
    async fn read_into(
        &self,
        st: &mut TapState,
        conn: &mut PgConnection,
        after: Cursor,
        limit: usize,
    ) -> Result<Page, sqlx::Error> {
        let notification = *self.notified.borrow();
        let began = Instant::now();
        let page = reader::read_after_checked(conn, after, limit as i64).await?;
        metrics::counter!("inferplane_tap_reads_total", "served" => "database").increment(1);
        if st.start.is_none() || after != st.head {
            st.start = Some(after);
            st.events.clear();
            st.head = after;
        }
        st.read_at_notification = notification;
        st.read_at = Some(began);
        // A full page may stop short of what is visible: only an exhausted read proves the
        // head (and then says whether anything is held back).
        st.held_back = page.held_back || page.events.len() >= limit;
        if let Some(last) = page.events.last() {
            st.head = last.cursor();
        }
        st.events.extend(page.events.iter().cloned());
        while st.events.len() > CAPACITY {
            if let Some(first) = st.events.pop_front() {
                st.start = Some(first.cursor());
            }
        }
        Ok(page)
    }
}
