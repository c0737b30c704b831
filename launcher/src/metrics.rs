//! `metrics.snapshot`: the daemon's and its services' CPU, memory and listening ports, sampled in
//! the background so a call answers at once.
//!
//! # Theory of operation
//!
//! [`run`] samples once at start, again after [`SECOND_SAMPLE`] (so CPU figures appear soon),
//! then every [`INTERVAL`], each time on a blocking thread since it reads `/proc`
//! ([`kojibox_proc::usage`]): the daemon's own process, and each running service's main process
//! with its descendants and their listening ports. Only those pids are read, never all of
//! `/proc`. The latest sample is kept in the [`Sampler`].
//!
//! [`snapshot`] never reads `/proc`: it takes the services as the supervisor lists them *now*
//! and gives each the figures of the latest sample when the pid is the same (a service started or
//! restarted since reads zeros until the next sample), so the rows never name a stale pid.
//! `portsInUse` is every service's ports, the API's port and the proxy's ([`Sampler::set_proxy_ports`]),
//! sorted, each once; `cpuPercent` and `memMB` are the daemon's share plus every service's, so
//! the rows add up to the totals. Before the second sample CPU reads 0.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use kojibox_manifests::model::{MetricsSnapshot, ServiceMetrics};
use kojibox_proc::usage::{Meter, Target, Usage};
use kojibox_supervisor::Supervisor;
use tokio_util::sync::CancellationToken;

use crate::error::Result;

/// The gap between two samples.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// When the second sample follows the first (the first CPU figures), at least
/// [`kojibox_proc::usage::MIN_INTERVAL`].
pub const SECOND_SAMPLE: Duration = Duration::from_millis(250);

const MIB: u64 = 1024 * 1024;

/// The background sampler's latest figures.
pub struct Sampler {
    api_port: u16,
    started: Instant,
    /// The ports the proxy listens on (none until there is a proxy).
    proxy_ports: Mutex<Vec<u16>>,
    latest: Mutex<Option<Arc<Sample>>>,
}

/// One sample: the daemon's figures and each measured service's.
#[derive(Debug, Default)]
struct Sample {
    daemon: Usage,
    /// (id, main pid, figures) of each service that had a pid.
    services: Vec<(String, u32, Usage)>,
}

impl Sampler {
    /// A sampler for a daemon whose API listens on `api_port`; the daemon's uptime counts from
    /// now.
    pub fn new(api_port: u16) -> Sampler {
        Sampler {
            api_port,
            started: Instant::now(),
            proxy_ports: Mutex::new(Vec::new()),
            latest: Mutex::new(None),
        }
    }

    /// Tells the sampler which ports the proxy (served by the daemon itself) listens on, for
    /// `portsInUse`; its CPU and memory are the daemon's.
    pub fn set_proxy_ports(&self, ports: Vec<u16>) {
        *self
            .proxy_ports
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = ports;
    }

    fn latest(&self) -> Option<Arc<Sample>> {
        self.latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn store(&self, sample: Sample) {
        *self.latest.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(sample));
    }
}

/// Samples `supervisor`'s services and the daemon until `stop`.
pub async fn run(sampler: Arc<Sampler>, supervisor: Arc<Supervisor>, stop: CancellationToken) {
    let mut meter = Some(Meter::new());
    let mut delay = Duration::ZERO;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
        let services: Vec<(String, u32)> = supervisor
            .list()
            .into_iter()
            .filter_map(|s| Some((s.id, s.pid?)))
            .collect();
        let mut taken = meter.take().unwrap_or_default();
        let sampled = tokio::task::spawn_blocking(move || {
            let sample = measure(&mut taken, services);
            (taken, sample)
        })
        .await;
        // A panic while sampling loses the CPU history, nothing else.
        if let Ok((kept, sample)) = sampled {
            meter = Some(kept);
            sampler.store(sample);
        }
        delay = if delay.is_zero() {
            SECOND_SAMPLE
        } else {
            INTERVAL
        };
    }
}

/// One sample of the daemon and `services` (id, main pid).
fn measure(meter: &mut Meter, services: Vec<(String, u32)>) -> Sample {
    let mut targets = vec![Target::process(std::process::id())];
    targets.extend(services.iter().map(|(_, pid)| Target::tree(*pid)));
    let mut usages = meter.sample(&targets).into_iter();
    let daemon = usages.next().unwrap_or_default();
    Sample {
        daemon,
        services: services
            .into_iter()
            .zip(usages)
            .map(|((id, pid), usage)| (id, pid, usage))
            .collect(),
    }
}

/// `metrics.snapshot`: the latest sample of `sampler` for `supervisor`'s services.
pub fn snapshot(sampler: &Sampler, supervisor: &Supervisor) -> Result<MetricsSnapshot> {
    let latest = sampler.latest().unwrap_or_default();
    let services: Vec<ServiceMetrics> = supervisor
        .list()
        .into_iter()
        .map(|s| {
            let usage = s.pid.and_then(|pid| {
                latest
                    .services
                    .iter()
                    .find(|(id, p, _)| *id == s.id && *p == pid)
                    .map(|(_, _, usage)| usage)
            });
            ServiceMetrics {
                id: s.id,
                pid: s.pid,
                cpu_percent: usage.map_or(0.0, |u| round(u.cpu_percent)),
                mem_mb: usage.map_or(0, |u| mib(u.rss_bytes)),
                ports: usage.map(|u| u.ports.clone()).unwrap_or_default(),
            }
        })
        .collect();
    let mut ports: Vec<u16> = services.iter().flat_map(|s| s.ports.clone()).collect();
    ports.push(sampler.api_port);
    ports.extend(
        sampler
            .proxy_ports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter(),
    );
    ports.sort_unstable();
    ports.dedup();
    let cpu =
        round(latest.daemon.cpu_percent) + services.iter().map(|s| s.cpu_percent).sum::<f64>();
    let mem = mib(latest.daemon.rss_bytes) + services.iter().map(|s| s.mem_mb).sum::<u64>();
    Ok(MetricsSnapshot {
        ts: kojibox_home::clock::now(),
        uptime_sec: sampler.started.elapsed().as_secs(),
        ports_in_use: ports,
        cpu_percent: round(cpu),
        mem_mb: mem,
        services,
    })
}

/// Bytes in MiB, rounded up: a live process never reads 0.
fn mib(bytes: u64) -> u64 {
    bytes.div_ceil(MIB)
}

/// A percentage to two decimals.
fn round(percent: f64) -> f64 {
    (percent * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding() {
        assert_eq!(mib(0), 0);
        assert_eq!(mib(1), 1);
        assert_eq!(mib(MIB), 1);
        assert_eq!(mib(MIB + 1), 2);
        assert_eq!(round(12.3456), 12.35);
        assert_eq!(round(0.0), 0.0);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_sample_lists_the_daemon_and_each_service() {
        let mut meter = Meter::new();
        let me = std::process::id();
        let sample = measure(&mut meter, vec![("self".into(), me)]);
        assert_eq!(sample.daemon.pids, [me]);
        assert!(sample.daemon.rss_bytes > 0);
        assert_eq!(sample.services.len(), 1);
        assert_eq!(sample.services[0].0, "self");
        assert_eq!(sample.services[0].2.pids.first(), Some(&me));
    }
}
