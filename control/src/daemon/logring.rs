//! Recent log lines kept in memory for `espresso log` (a tracing layer).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// A bounded ring of formatted log lines, shared by the layer and the daemon.
#[derive(Clone)]
pub struct LogRing {
    inner: Arc<Mutex<VecDeque<String>>>,
    cap: usize,
}

impl LogRing {
    /// A ring keeping the last `cap` lines.
    pub fn new(cap: usize) -> LogRing {
        LogRing {
            inner: Arc::new(Mutex::new(VecDeque::with_capacity(cap.min(4096)))),
            cap: cap.max(1),
        }
    }

    /// Adds a line, dropping the oldest beyond capacity.
    pub fn push(&self, line: String) {
        let mut q = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() == self.cap {
            q.pop_front();
        }
        q.push_back(line);
    }

    /// The last `n` lines, oldest first.
    pub fn last(&self, n: usize) -> Vec<String> {
        let q = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        q.iter().skip(q.len().saturating_sub(n)).cloned().collect()
    }
}

struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.rest, " {}={value}", field.name());
        }
    }
}

fn timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let s = now.as_secs();
    let (h, m, sec) = ((s / 3600) % 24, (s / 60) % 60, s % 60);
    format!("{h:02}:{m:02}:{sec:02}.{:03}Z", now.subsec_millis())
}

impl<S: Subscriber> Layer<S> for LogRing {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut f = Fields {
            message: String::new(),
            rest: String::new(),
        };
        event.record(&mut f);
        self.push(format!(
            "{} {:5} {}{}",
            timestamp(),
            event.metadata().level(),
            f.message,
            f.rest
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::prelude::*;

    #[test]
    fn keeps_the_last_lines() {
        let r = LogRing::new(3);
        let sub = tracing_subscriber::registry().with(r.clone());
        tracing::subscriber::with_default(sub, || {
            for i in 0..5 {
                tracing::info!(tunnel = "a", "line {i}");
            }
        });
        let l = r.last(10);
        assert_eq!(l.len(), 3);
        assert!(
            l[0].contains("line 2") && l[0].contains("tunnel=a"),
            "{l:?}"
        );
        assert!(l[2].contains("INFO"));
        assert_eq!(r.last(1).len(), 1);
    }
}
