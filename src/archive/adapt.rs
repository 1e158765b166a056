//! Compression that keeps up with its source, as `zstd --adapt` does: the
//! encoder looks at each window of input and lowers its level when
//! compression is what everything waits on, and raises it back, never above
//! the configured level, when compression has time to spare or the upload
//! is slower. "Waits on compression" is the share of the time spent handing
//! input to zstd, which blocks only while its workers are all busy; it is
//! smoothed over windows (zstd buffers whole jobs, so one window says
//! little), and a change is given two windows to show before the next one
//! (a new level applies from zstd's next job). A source faster than the
//! configured level then streams near its own speed, at the price of some
//! stored size; a slower one keeps the configured level.

use std::time::Duration;

/// The fastest level adapting goes down to.
pub const FLOOR: i32 = 1;
/// Plaintext bytes between two decisions.
pub const WINDOW_BYTES: u64 = 16 << 20;

/// Where one window's wall time went, as the encoder saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub wall: Duration,
    /// Handing input to zstd (it blocks while its workers are all busy).
    pub compressing: Duration,
    /// Waiting for the upload to take a part.
    pub waited_out: Duration,
}

/// Smoothed busy share over which the level goes down, and under which it
/// goes back up. Measured on the lab (2 cores, etcd on the same machine):
/// at level 3 a 900 MB snapshot keeps zstd busy 5-15% of the time and etcd
/// waits on it; at 9, 30-40%.
const BUSY: f64 = 0.15;
const IDLE: f64 = 0.05;
/// Windows left alone after a change.
const SETTLE: u32 = 2;

/// The level in use, its bounds, and the smoothed busy share.
#[derive(Debug, Clone, PartialEq)]
pub struct Adapt {
    top: i32,
    level: i32,
    busy: Option<f64>,
    settle: u32,
    /// The lowest level used so far (for the record).
    pub lowest: i32,
}

impl Adapt {
    /// Starts at the configured level, its ceiling.
    pub fn new(level: i32) -> Adapt {
        Adapt {
            top: level,
            level,
            busy: None,
            settle: 0,
            lowest: level,
        }
    }

    pub fn level(&self) -> i32 {
        self.level
    }

    /// The level for the next window, when it changes.
    pub fn next(&mut self, w: Window) -> Option<i32> {
        let wall = w.wall.as_secs_f64();
        if wall <= 0.0 {
            return None;
        }
        let now = (w.compressing.as_secs_f64() / wall).min(1.0);
        let busy = self.busy.map_or(now, |b| 0.75 * b + 0.25 * now);
        self.busy = Some(busy);
        if self.settle > 0 {
            self.settle -= 1;
            return None;
        }
        let idle_out = w.waited_out.as_secs_f64() / wall;
        let want = if idle_out > 0.25 || busy < IDLE {
            // The upload or the source is slower: compress harder, for free.
            self.level + 1
        } else if busy > BUSY {
            // Everything waits on compression.
            self.level - 1
        } else {
            self.level
        };
        let want = want.clamp(FLOOR.min(self.top), self.top);
        if want == self.level {
            return None;
        }
        self.level = want;
        self.lowest = self.lowest.min(want);
        self.settle = SETTLE;
        Some(want)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(wall_ms: u64, compressing_ms: u64, out_ms: u64) -> Window {
        Window {
            wall: Duration::from_millis(wall_ms),
            compressing: Duration::from_millis(compressing_ms),
            waited_out: Duration::from_millis(out_ms),
        }
    }

    /// The levels after each of `windows` (busy ms per 1000 ms, upload-wait ms).
    fn levels(a: &mut Adapt, windows: &[(u64, u64)]) -> Vec<i32> {
        windows
            .iter()
            .map(|&(busy, out)| {
                a.next(w(1000, busy, out));
                a.level()
            })
            .collect()
    }

    #[test]
    fn the_level_goes_down_while_compression_is_what_waits_with_time_to_settle() {
        let mut a = Adapt::new(5);
        // Busy compressing: down one step, two windows to settle, down again,
        // never under the floor.
        let busy = [(600, 0); 14];
        assert_eq!(
            levels(&mut a, &busy),
            [4, 4, 4, 3, 3, 3, 2, 2, 2, 1, 1, 1, 1, 1]
        );
        assert_eq!(a.lowest, 1);
        // Busy 40% of one window and 0% of the next is not idle: it stays.
        assert_eq!(levels(&mut a, &[(400, 0), (0, 0)]), [1, 1]);
    }

    #[test]
    fn one_quiet_window_does_not_undo_a_busy_run_and_a_quiet_run_does() {
        let mut a = Adapt::new(3);
        assert_eq!(levels(&mut a, &[(800, 0), (50, 0), (800, 0)]), [2, 2, 2]);
        // The smoothed share falls under 5% only after several quiet
        // windows (it still says busy at first, and the level goes on down);
        // then back up, a step at a time, to the configured level, no further.
        let quiet = [(20, 0); 18];
        assert_eq!(
            levels(&mut a, &quiet),
            [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3]
        );
    }

    #[test]
    fn a_slow_upload_raises_the_level_at_once() {
        let mut a = Adapt::new(3);
        assert_eq!(levels(&mut a, &[(900, 0), (900, 0), (900, 0)]), [2, 2, 2]);
        assert_eq!(levels(&mut a, &[(400, 300)]), [3]);
        // A window that took no time says nothing.
        assert_eq!(a.next(w(0, 0, 0)), None);
    }

    #[test]
    fn a_configured_level_under_the_floor_is_kept() {
        let mut a = Adapt::new(1);
        assert_eq!(levels(&mut a, &[(1000, 0), (0, 0), (0, 900)]), [1, 1, 1]);
    }
}
