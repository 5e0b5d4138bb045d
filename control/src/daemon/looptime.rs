//! How long the control loop's stages hold it. The IKE engines' timers
//! (retransmissions, DPD, rekeys) run only between stages, so a stage that
//! blocks delays all of them: each stage is timed and one that takes
//! [`SLOW_STAGE`] or more is logged by name, and a wake-up that comes long
//! after the loop asked for it (the process did not get the CPU) is logged
//! as that. When the engines' timers run late, the warning names the
//! slowest stage since the last one ([`Stalls::take_worst`]).

use std::cell::Cell;
use std::time::{Duration, Instant};

use tracing::warn;

/// A stage this long is logged.
pub const SLOW_STAGE: Duration = Duration::from_millis(250);

/// The slowest stage seen (name, duration), kept for the late-timer
/// warnings. One per loop thread: the loop is single-threaded.
#[derive(Default)]
pub struct Stalls {
    worst: Cell<Option<(&'static str, Duration)>>,
}

impl Stalls {
    /// Nothing recorded yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `f` as the stage `name`, timing it.
    pub fn timed<T>(&self, name: &'static str, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let r = f();
        self.record(name, t.elapsed());
        r
    }

    /// Records that stage `name` took `d`.
    pub fn record(&self, name: &'static str, d: Duration) {
        if d >= SLOW_STAGE {
            warn!(
                "control loop: {name} took {:.0} ms (IKE timers wait meanwhile)",
                d.as_secs_f64() * 1e3
            );
        }
        self.keep_worst(name, d);
    }

    fn keep_worst(&self, name: &'static str, d: Duration) {
        if self.worst.get().is_none_or(|(_, w)| d > w) {
            self.worst.set(Some((name, d)));
        }
    }

    /// The loop slept until `asked` and woke at `woke`.
    pub fn woke(&self, asked: Instant, woke: Instant) {
        let late = woke.saturating_duration_since(asked);
        if late >= SLOW_STAGE {
            warn!(
                "control loop: woke {:.0} ms after its deadline (the process did not get the CPU)",
                late.as_secs_f64() * 1e3
            );
        }
        self.keep_worst("waiting for the CPU", late);
    }

    /// The slowest stage since the last call, in words ("" if none was slow).
    pub fn take_worst(&self) -> String {
        match self.worst.take() {
            Some((name, d)) if d >= SLOW_STAGE => {
                format!(
                    "; slowest loop stage since: {name}, {:.0} ms",
                    d.as_secs_f64() * 1e3
                )
            }
            _ => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slowest_stage_is_kept_until_taken() {
        let s = Stalls::new();
        s.record("tick", Duration::from_millis(5));
        assert_eq!(s.take_worst(), "");
        s.record("tick", Duration::from_millis(300));
        s.record("CLI request", Duration::from_millis(900));
        s.record("IKE datagram", Duration::from_millis(400));
        assert_eq!(
            s.take_worst(),
            "; slowest loop stage since: CLI request, 900 ms"
        );
        assert_eq!(s.take_worst(), "");
        let t = Instant::now();
        s.woke(t, t + Duration::from_millis(1500));
        assert_eq!(
            s.take_worst(),
            "; slowest loop stage since: waiting for the CPU, 1500 ms"
        );
    }
}
