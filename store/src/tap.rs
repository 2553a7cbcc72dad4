//! One reading of new events per process, shared by its readers.
//!
//! Every reader of a process (each processor's feed, each projection) is woken by the same
//! notification and would otherwise run the same query for the same new events: with four
//! processors and five projections, one append costs nine reads and nine decodings. The tap
//! keeps the events it read last in memory, in stream order. A reader asking for the events
//! after a cursor the tap holds is answered from memory; the first reader past the tap's head
//! reads from the database (on its own connection) and the others, waiting behind it, get
//! what it read. A reader far behind (catching up after a restart, a rebuild) reads directly
//! and leaves the tap alone; a reader ahead of it (the others stopped) starts a new run.
//!
//! Correctness is the reader's own query's: the tap only ever holds a contiguous run of the
//! global order as [`read_after_checked`](crate::reader::read_after_checked) returned it
//! (below the horizon), so serving a suffix of it is exactly what that query would return. A
//! page short of the reader's limit tells it "caught up", so it is only ever answered when
//! the tap can prove nothing came after its head for that reader: the tap's last read saw
//! nothing held back, and either it began after the reader asked (a read the reader could
//! have made itself: readers mark their wake-ups seen before they read, so a notification
//! that came later wakes them again), or no notification came between its beginning and the
//! reader's asking and it is younger than [`TRUST_FOR`] (so the readers' periodic polling
//! still reaches the database). Otherwise the tap reads on past its head for that reader.
//! Under a stream of notifications this is what keeps one reading per wave: the readers
//! queued behind a read are answered by it, instead of each reading again for the
//! notification that came while they waited for their turn.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use sqlx::PgConnection;
use tokio::sync::{Mutex, watch};

use crate::reader::{self, Page};
use crate::{Cursor, StoredEvent};

/// Events kept in memory; older ones are dropped from the front. Readers of one process
/// trail each other by a few batches; one further behind just reads on its own.
const CAPACITY: usize = 4_096;

/// Longest a shared read may take before its caller fails (and its runner starts again).
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a read is trusted to be the head for readers that asked before any notification
/// that came after it began.
const TRUST_FOR: Duration = Duration::from_secs(1);

/// When a reader asked, and the notification count then.
#[derive(Clone, Copy)]
struct Asked {
    at: Instant,
    notification: u64,
}

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
        // A read that begins after this moment is as good as this reader's own query; so is
        // one that began after the last notification the reader can have seen.
        let asked = Asked {
            at: Instant::now(),
            notification: *self.notified.borrow(),
        };
        let mut st = self.state.lock().await;
        let Some(start) = st.start else {
            return self.read_into(&mut st, conn, after, limit).await;
        };
        if after < start {
            // Behind what is held: a reader of its own.
            drop(st);
            metrics::counter!("inferplane_tap_reads_total", "served" => "direct").increment(1);
            return reader::read_after_checked(conn, after, limit as i64).await;
        }
        if after > st.head {
            // Ahead of what is held (the readers that kept it moving stopped): hold a new
            // run from here.
            return self.read_into(&mut st, conn, after, limit).await;
        }
        if after < st.head {
            let from = st.events.partition_point(|e| e.cursor() <= after);
            let mut events: Vec<StoredEvent> =
                st.events.range(from..).take(limit).cloned().collect();
            metrics::counter!("inferplane_tap_reads_total", "served" => "memory").increment(1);
            if events.len() == limit || self.head_trusted(&st, asked) {
                // A full page (the reader asks again), or everything there is.
                return Ok(Page {
                    events,
                    held_back: false,
                });
            }
            // The held run ends here but more may have come: a short page must mean "caught
            // up" to the reader, so read on past the head for it.
            let head = st.head;
            let more = self
                .read_into(&mut st, conn, head, limit - events.len())
                .await?;
            events.extend(more.events);
            return Ok(Page {
                events,
                held_back: more.held_back,
            });
        }
        // At the head.
        if self.head_trusted(&st, asked) {
            metrics::counter!("inferplane_tap_reads_total", "served" => "nothing_new").increment(1);
            return Ok(Page::default());
        }
        self.read_into(&mut st, conn, after, limit).await
    }

    /// True when the last read proves nothing came after the head for a reader that asked at
    /// `asked`: it saw nothing held back, and either it began after the reader asked (so it is
    /// a read the reader could have made itself; what was notified since wakes the reader
    /// again), or no notification came between its beginning and the reader's asking and it
    /// is recent enough. Notifications that came after the reader asked are not its concern:
    /// they wake it again. Judging by the asking rather than by the moment the reader gets its
    /// turn is what keeps readers queued behind a read from each reading again under a stream
    /// of notifications.
    fn head_trusted(&self, st: &TapState, asked: Asked) -> bool {
        let Some(read_at) = st.read_at else {
            return false;
        };
        !st.held_back
            && (read_at >= asked.at
                || (st.read_at_notification >= asked.notification && read_at.elapsed() < TRUST_FOR))
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
        // The lock is held across this query: bound it, so that one hung connection cannot
        // stall every reader of the process (the caller's runner fails and starts again).
        let page = tokio::time::timeout(
            READ_TIMEOUT,
            reader::read_after_checked(conn, after, limit as i64),
        )
        .await
        .map_err(|_| {
            sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "reading new events timed out",
            ))
        })??;
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
