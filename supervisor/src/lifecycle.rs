//! The lifecycle of one service as a pure transition function.
//!
//! [`step`] takes the current [`Lifecycle`] and one [`Input`] and returns the next lifecycle and
//! the [`Effect`]s the actor must carry out (spawn, terminate, schedule a restart). It does no I/O,
//! so every rule below is unit-tested without a process:
//!
//! | from | input | to | effects |
//! |---|---|---|---|
//! | stopped, error | start | starting | spawn (retries reset) |
//! | starting, running | start | unchanged | none |
//! | stopping | start | stopping | start again once stopped |
//! | starting (spawned) | healthy | running | none |
//! | starting, running | exited / unhealthy | starting | restart after backoff, if retries are left |
//! | starting, running | exited / unhealthy, no retries left | error | none |
//! | starting, running | stop | stopping (or stopped when nothing runs) | terminate |
//! | stopping | exited | stopped (or starting, if a start came meanwhile) | spawn if so |
//! | starting | spawn failed, dependency failed | error | none |
//! | starting | backoff elapsed | starting | spawn |
//! | running | stable | running | retry count reset |
//!
//! `maxRetries = N` allows N restarts after the first failure (N + 1 spawns in a row); the delay
//! doubles from `backoffMs` (at least [`MIN_BACKOFF`], so `backoffMs: 0` cannot turn a crashing
//! service into a spawn loop) per consecutive failure up to [`MAX_BACKOFF`]. From the
//! [`FLAPPING_AFTER`]th restart in a row the service is *flapping* until it has run stable
//! (or is started by hand): a UI shows it as crash-looping, not merely starting.

use std::time::Duration;

use kojibox_manifests::model::{RestartPolicy, ServiceStatus};

/// The longest delay between restarts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The shortest delay before a restart, whatever `backoffMs` says: a service that exits at once
/// is spawned at most a few times a second, then ever less often.
pub const MIN_BACKOFF: Duration = Duration::from_millis(250);

/// Restarts in a row (without a stable run between them) from which a service is flapping.
pub const FLAPPING_AFTER: u32 = 3;

/// One service's lifecycle state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lifecycle {
    /// The contract's state.
    pub status: ServiceStatus,
    /// The main process, while one runs.
    pub pid: Option<u32>,
    /// Why it last failed.
    pub last_error: Option<String>,
    /// Consecutive restarts after failures.
    pub restarts: u32,
    /// It keeps failing: [`FLAPPING_AFTER`] restarts or more in a row, no stable run since.
    pub flapping: bool,
    /// Start again once the current stop completes (a restart, or a start during a stop).
    pub start_after_stop: bool,
    /// A restart is scheduled (waiting out the backoff).
    pub backing_off: bool,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            status: ServiceStatus::Stopped,
            pid: None,
            last_error: None,
            restarts: 0,
            flapping: false,
            start_after_stop: false,
            backing_off: false,
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A manual start (`services.start`).
    Start,
    /// A manual stop (`services.stop`).
    Stop,
    /// A manual restart (`services.restart`).
    Restart,
    /// The process was spawned.
    Spawned(u32),
    /// It could not be spawned (port conflict, setup failed, binary missing): no retry.
    SpawnFailed(String),
    /// A dependency failed while this service waited for it: no retry.
    DependencyFailed(String),
    /// The health check passed.
    Healthy,
    /// The health check failed repeatedly while running, or never passed while starting.
    Unhealthy(String),
    /// The process exited (how, for `lastError`).
    Exited(String),
    /// The restart delay is over.
    BackoffElapsed,
    /// It has been running long enough to forget earlier failures.
    Stable,
}

/// What the actor must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Wait for dependencies, check ports, run setup, spawn.
    Spawn,
    /// Stop the process group (SIGTERM, then SIGKILL after the stop timeout).
    Terminate,
    /// Spawn again after this delay.
    RestartAfter(Duration),
    /// Forget a scheduled restart or a pending spawn.
    Cancel,
}

/// The next lifecycle and its effects.
pub fn step(state: &Lifecycle, input: Input, policy: &RestartPolicy) -> (Lifecycle, Vec<Effect>) {
    use Effect::{Cancel, Spawn};
    use ServiceStatus::{Error, Running, Starting, Stopped, Stopping};
    let mut next = state.clone();
    let effects = match (state.status, input) {
        (Stopped | Error, Input::Start | Input::Restart) => {
            next = Lifecycle {
                status: Starting,
                ..Lifecycle::default()
            };
            vec![Spawn]
        }
        (Starting | Running, Input::Start) => vec![],
        (Stopping, Input::Start | Input::Restart) => {
            next.start_after_stop = true;
            vec![]
        }
        (Starting | Running, Input::Restart) => {
            next.restarts = 0;
            next.last_error = None;
            stop(&mut next, true)
        }
        (Starting, Input::Spawned(pid)) => {
            next.pid = Some(pid);
            next.backing_off = false;
            vec![]
        }
        (Starting, Input::Healthy) if state.pid.is_some() => {
            next.status = Running;
            next.last_error = None;
            vec![]
        }
        (Starting | Running, Input::Exited(why)) if state.pid.is_some() => {
            fail(&mut next, why, policy, false)
        }
        (Starting | Running, Input::Unhealthy(why)) if state.pid.is_some() => {
            fail(&mut next, why, policy, true)
        }
        (Starting, Input::SpawnFailed(why) | Input::DependencyFailed(why)) => {
            next = Lifecycle {
                status: Error,
                last_error: Some(why),
                restarts: state.restarts,
                ..Lifecycle::default()
            };
            vec![Cancel]
        }
        (Starting, Input::BackoffElapsed) if state.backing_off => {
            next.backing_off = false;
            vec![Spawn]
        }
        (Running, Input::Stable) => {
            next.restarts = 0;
            next.flapping = false;
            vec![]
        }
        (Starting | Running, Input::Stop) => stop(&mut next, false),
        (Stopping, Input::Exited(_)) => {
            let again = state.start_after_stop;
            next = Lifecycle {
                status: if again { Starting } else { Stopped },
                ..Lifecycle::default()
            };
            if again { vec![Spawn] } else { vec![] }
        }
        (Error, Input::Stop) if state.pid.is_none() => {
            next = Lifecycle::default();
            vec![]
        }
        // Gave up while the process still ran: it was told to stop; now it has.
        (Error, Input::Exited(_)) => {
            next.pid = None;
            vec![]
        }
        // Everything else is stale (a health result for a process that is gone, a second stop)
        // and changes nothing.
        _ => vec![],
    };
    (next, effects)
}

fn stop(next: &mut Lifecycle, start_again: bool) -> Vec<Effect> {
    next.start_after_stop = start_again;
    next.backing_off = false;
    if next.pid.is_some() {
        next.status = ServiceStatus::Stopping;
        vec![Effect::Cancel, Effect::Terminate]
    } else if start_again {
        next.status = ServiceStatus::Starting;
        next.start_after_stop = false;
        vec![Effect::Cancel, Effect::Spawn]
    } else {
        *next = Lifecycle::default();
        vec![Effect::Cancel]
    }
}

/// An unexpected exit or a failed health check: restart after a backoff, or give up.
fn fail(
    next: &mut Lifecycle,
    why: String,
    policy: &RestartPolicy,
    still_running: bool,
) -> Vec<Effect> {
    next.last_error = Some(why.clone());
    if next.restarts >= policy.max_retries {
        let restarts = next.restarts;
        *next = Lifecycle {
            status: ServiceStatus::Error,
            pid: if still_running { next.pid } else { None },
            last_error: Some(format!(
                "{why} (gave up after {restarts} restart(s) in a row)"
            )),
            restarts,
            flapping: next.flapping,
            ..Lifecycle::default()
        };
        return if still_running {
            vec![Effect::Terminate]
        } else {
            vec![]
        };
    }
    next.restarts += 1;
    next.flapping = next.restarts >= FLAPPING_AFTER;
    next.status = ServiceStatus::Starting;
    next.backing_off = true;
    let delay = backoff(policy, next.restarts);
    // The process is being ended (or is gone): its exit is expected and must not count as a
    // second failure, so the pid goes now.
    next.pid = None;
    if still_running {
        vec![Effect::Terminate, Effect::RestartAfter(delay)]
    } else {
        vec![Effect::RestartAfter(delay)]
    }
}

/// The delay before restart number `restart` (1-based): `max(backoffMs, MIN_BACKOFF) *
/// 2^(restart-1)`, capped at [`MAX_BACKOFF`].
pub fn backoff(policy: &RestartPolicy, restart: u32) -> Duration {
    let base = Duration::from_millis(policy.backoff_ms).max(MIN_BACKOFF);
    base.saturating_mul(
        1u32.checked_shl(restart.saturating_sub(1))
            .unwrap_or(u32::MAX),
    )
    .min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ServiceStatus::*;

    const POLICY: RestartPolicy = RestartPolicy {
        max_retries: 2,
        backoff_ms: 300,
    };

    fn run(inputs: &[Input]) -> (Lifecycle, Vec<Vec<Effect>>) {
        let mut state = Lifecycle::default();
        let mut all = Vec::new();
        for input in inputs {
            let (next, effects) = step(&state, input.clone(), &POLICY);
            state = next;
            all.push(effects);
        }
        (state, all)
    }

    #[test]
    fn start_spawns_and_health_makes_it_running() {
        let (state, effects) = run(&[Input::Start, Input::Spawned(7), Input::Healthy]);
        assert_eq!((state.status, state.pid), (Running, Some(7)));
        assert_eq!(effects, vec![vec![Effect::Spawn], vec![], vec![]]);
    }

    #[test]
    fn health_before_spawn_is_ignored() {
        let (state, _) = run(&[Input::Start, Input::Healthy]);
        assert_eq!(state.status, Starting);
    }

    #[test]
    fn a_crash_loop_backs_off_doubling_then_gives_up() {
        let crash = |n| {
            vec![
                Input::Spawned(n),
                Input::Exited(format!("exit {n}")),
                Input::BackoffElapsed,
            ]
        };
        let mut inputs = vec![Input::Start];
        inputs.extend(crash(1));
        inputs.extend(crash(2));
        inputs.push(Input::Spawned(3));
        inputs.push(Input::Exited("exit 3".into()));
        let (state, effects) = run(&inputs);
        assert_eq!(state.status, Error);
        assert_eq!(
            state.last_error.as_deref(),
            Some("exit 3 (gave up after 2 restart(s) in a row)")
        );
        let delays: Vec<Duration> = effects
            .iter()
            .flatten()
            .filter_map(|e| match e {
                Effect::RestartAfter(d) => Some(*d),
                _ => None,
            })
            .collect();
        assert_eq!(
            delays,
            [Duration::from_millis(300), Duration::from_millis(600)]
        );
        // 3 spawns in all: the first and 2 restarts.
        assert_eq!(
            effects
                .iter()
                .flatten()
                .filter(|e| **e == Effect::Spawn)
                .count(),
            3
        );
    }

    #[test]
    fn a_manual_start_after_error_resets_the_count() {
        let (state, _) = run(&[
            Input::Start,
            Input::Spawned(1),
            Input::SpawnFailed("port".into()),
            Input::Start,
        ]);
        assert_eq!(
            (state.status, state.restarts, state.last_error),
            (Starting, 0, None)
        );
    }

    #[test]
    fn staying_up_resets_the_count() {
        let (state, _) = run(&[
            Input::Start,
            Input::Spawned(1),
            Input::Exited("x".into()),
            Input::BackoffElapsed,
            Input::Spawned(2),
            Input::Healthy,
        ]);
        assert_eq!(state.restarts, 1);
        let (state, _) = step(&state, Input::Stable, &POLICY);
        assert_eq!(state.restarts, 0);
    }

    #[test]
    fn stop_terminates_and_exit_completes_it() {
        let (state, effects) = run(&[Input::Start, Input::Spawned(1), Input::Healthy, Input::Stop]);
        assert_eq!(state.status, Stopping);
        assert_eq!(effects[3], vec![Effect::Cancel, Effect::Terminate]);
        let (state, effects) = step(&state, Input::Exited("signal 15".into()), &POLICY);
        assert_eq!((state.status, state.pid), (Stopped, None));
        assert!(effects.is_empty());
    }

    #[test]
    fn stop_during_backoff_cancels_the_restart() {
        let (state, effects) = run(&[
            Input::Start,
            Input::Spawned(1),
            Input::Exited("x".into()),
            Input::Stop,
        ]);
        assert_eq!(state.status, Stopped);
        assert_eq!(effects[3], vec![Effect::Cancel]);
        let (state, effects) = step(&state, Input::BackoffElapsed, &POLICY);
        assert_eq!(state.status, Stopped);
        assert!(effects.is_empty(), "a stale timer does nothing");
    }

    #[test]
    fn restart_stops_then_starts() {
        let (state, _) = run(&[
            Input::Start,
            Input::Spawned(1),
            Input::Healthy,
            Input::Restart,
        ]);
        assert!(state.start_after_stop && state.status == Stopping);
        let (state, effects) = step(&state, Input::Exited("signal 15".into()), &POLICY);
        assert_eq!((state.status, effects), (Starting, vec![Effect::Spawn]));
    }

    #[test]
    fn unhealthy_while_running_kills_and_restarts() {
        let (state, effects) = run(&[
            Input::Start,
            Input::Spawned(1),
            Input::Healthy,
            Input::Unhealthy("no answer".into()),
        ]);
        assert_eq!(
            (state.status, state.pid, state.restarts),
            (Starting, None, 1)
        );
        assert_eq!(
            effects[3],
            vec![
                Effect::Terminate,
                Effect::RestartAfter(Duration::from_millis(300))
            ]
        );
        // The exit of the process being ended is not a second failure.
        let (state, effects) = step(&state, Input::Exited("signal 15".into()), &POLICY);
        assert_eq!((state.status, state.restarts), (Starting, 1));
        assert!(effects.is_empty());
    }

    #[test]
    fn giving_up_on_an_unhealthy_process_terminates_it_then_clears_the_pid() {
        let policy = RestartPolicy {
            max_retries: 0,
            backoff_ms: 100,
        };
        let mut state = Lifecycle::default();
        for input in [Input::Start, Input::Spawned(9), Input::Healthy] {
            state = step(&state, input, &policy).0;
        }
        let (state, effects) = step(&state, Input::Unhealthy("no answer".into()), &policy);
        assert_eq!((state.status, state.pid), (Error, Some(9)));
        assert_eq!(effects, vec![Effect::Terminate]);
        let (state, _) = step(&state, Input::Exited("signal 15".into()), &policy);
        assert_eq!((state.status, state.pid), (Error, None));
    }

    #[test]
    fn dependency_failure_is_an_error_without_retry() {
        let (state, _) = run(&[
            Input::Start,
            Input::DependencyFailed("dependency db failed".into()),
        ]);
        assert_eq!(state.status, Error);
        assert_eq!(state.last_error.as_deref(), Some("dependency db failed"));
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let policy = RestartPolicy {
            max_retries: 100,
            backoff_ms: 1000,
        };
        assert_eq!(backoff(&policy, 1), Duration::from_secs(1));
        assert_eq!(backoff(&policy, 3), Duration::from_secs(4));
        assert_eq!(backoff(&policy, 40), MAX_BACKOFF);
    }

    #[test]
    fn backoff_has_a_floor_even_when_the_policy_says_zero() {
        let policy = RestartPolicy {
            max_retries: 100,
            backoff_ms: 0,
        };
        assert_eq!(backoff(&policy, 1), MIN_BACKOFF);
        assert_eq!(backoff(&policy, 2), MIN_BACKOFF * 2);
        assert_eq!(backoff(&policy, 40), MAX_BACKOFF);
    }

    #[test]
    fn restarts_in_a_row_make_it_flapping_until_it_runs_stable() {
        let policy = RestartPolicy {
            max_retries: 10,
            backoff_ms: 0,
        };
        let mut state = step(&Lifecycle::default(), Input::Start, &policy).0;
        let mut seen = Vec::new();
        for pid in 1..=FLAPPING_AFTER + 1 {
            for input in [
                Input::Spawned(pid),
                Input::Exited("exited with code 1".into()),
                Input::BackoffElapsed,
            ] {
                state = step(&state, input, &policy).0;
            }
            seen.push(state.flapping);
        }
        assert_eq!(seen, [false, false, true, true]);
        for input in [Input::Spawned(9), Input::Healthy] {
            state = step(&state, input, &policy).0;
        }
        assert!(state.flapping, "healthy once is not yet stable");
        let state = step(&state, Input::Stable, &policy).0;
        assert!(!state.flapping);
        assert_eq!(state.restarts, 0);
    }
}
