//! Leader election on a `coordination.k8s.io/v1` Lease, so two replicas are safe: only the
//! holder reconciles. The decision is a plain function ([`decide`]); [`Elector`] applies it with
//! optimistic concurrency (every write carries the resourceVersion it read, so two candidates
//! racing for an expired lease cannot both win).

use chrono::{DateTime, Duration, Utc};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};

/// What a replica does with the lease it read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseAction {
    /// No lease yet: create it, holding it.
    Create,
    /// We hold it: renew.
    Renew,
    /// Another holder let it expire (or released it): take it over.
    TakeOver,
    /// Another replica holds a live lease: stand by.
    StandBy,
}

/// The lease's holder and last renewal, as [`decide`] reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseView {
    pub holder: Option<String>,
    pub renewed_at: Option<DateTime<Utc>>,
    pub duration: Duration,
}

/// What a replica does with the lease it read. `unchanged_for`: how long this replica has seen
/// the lease's holder and renewal time unchanged, by its *own* monotonic clock (zero when they
/// just changed or were first seen). Another holder's lease lapses only after it stayed
/// unchanged for its whole duration as this replica saw it: the holder's `renewTime` is never
/// compared with this machine's clock, so clock skew between machines cannot make two leaders
/// (the rule client-go's leader election follows).
pub fn decide(
    lease: Option<&LeaseView>,
    me: &str,
    unchanged_for: std::time::Duration,
) -> LeaseAction {
    let Some(lease) = lease else {
        return LeaseAction::Create;
    };
    match lease.holder.as_deref().filter(|h| !h.is_empty()) {
        Some(h) if h == me => LeaseAction::Renew,
        None => LeaseAction::TakeOver,
        Some(_) => {
            let duration = lease.duration.to_std().unwrap_or_default();
            if unchanged_for >= duration {
                LeaseAction::TakeOver
            } else {
                LeaseAction::StandBy
            }
        }
    }
}

fn to_chrono(t: &MicroTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32)
}

fn micro(t: DateTime<Utc>) -> MicroTime {
    MicroTime(
        k8s_openapi::jiff::Timestamp::new(t.timestamp(), t.timestamp_subsec_nanos() as i32)
            .expect("a valid time"),
    )
}

pub fn view(lease: &Lease) -> LeaseView {
    let spec = lease.spec.clone().unwrap_or_default();
    LeaseView {
        holder: spec.holder_identity,
        renewed_at: spec.renew_time.as_ref().and_then(to_chrono),
        duration: Duration::seconds(spec.lease_duration_seconds.unwrap_or(15) as i64),
    }
}

pub struct Elector {
    pub api: Api<Lease>,
    pub name: String,
    pub identity: String,
    pub duration: std::time::Duration,
    /// The lease's `leaseTransitions` as this replica last wrote it while holding it: the epoch
    /// of its leadership, stamped into every runtime ConfigMap it writes.
    pub epoch: std::sync::atomic::AtomicU64,
    /// The lease's (holder, renewTime) as last read, and when (this replica's monotonic clock)
    /// it was first read so.
    pub observed: std::sync::Mutex<Option<(LeaseView, std::time::Instant)>>,
}

impl Elector {
    /// How long the lease has looked the same to this replica (zero when it just changed).
    fn unchanged_for(&self, current: Option<&LeaseView>) -> std::time::Duration {
        let mut observed = self.observed.lock().unwrap_or_else(|e| e.into_inner());
        match (current, observed.as_ref()) {
            (Some(c), Some((seen, since))) if seen == c => since.elapsed(),
            (Some(c), _) => {
                *observed = Some((c.clone(), std::time::Instant::now()));
                std::time::Duration::ZERO
            }
            (None, _) => {
                *observed = None;
                std::time::Duration::ZERO
            }
        }
    }
}

impl Elector {
    /// One round: reads the lease and acts. `Ok(true)` while this replica holds it.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let now = Utc::now();
        let current = self.api.get_opt(&self.name).await?;
        let seen = current.as_ref().map(view);
        let action = decide(
            seen.as_ref(),
            &self.identity,
            self.unchanged_for(seen.as_ref()),
        );
        let secs = self.duration.as_secs().max(1) as i32;
        use std::sync::atomic::Ordering;
        let result = match (action, current) {
            (LeaseAction::StandBy, _) => return Ok(false),
            (LeaseAction::Create, _) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..Default::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.identity.clone()),
                        lease_duration_seconds: Some(secs),
                        acquire_time: Some(micro(now)),
                        renew_time: Some(micro(now)),
                        lease_transitions: Some(0),
                        ..Default::default()
                    }),
                };
                self.api
                    .create(&PostParams::default(), &lease)
                    .await
                    .inspect(|_| self.epoch.store(0, Ordering::SeqCst))
            }
            (action, Some(mut lease)) => {
                let spec = lease.spec.get_or_insert_with(Default::default);
                if action == LeaseAction::TakeOver {
                    spec.holder_identity = Some(self.identity.clone());
                    spec.acquire_time = Some(micro(now));
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                }
                spec.lease_duration_seconds = Some(secs);
                spec.renew_time = Some(micro(now));
                // `replace` sends the resourceVersion read above: a concurrent writer makes
                // this fail with 409 instead of two holders.
                let epoch = spec.lease_transitions.unwrap_or(0).max(0) as u64;
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
                    .inspect(|_| self.epoch.store(epoch, Ordering::SeqCst))
            }
            (_, None) => return Ok(false),
        };
        match result {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the lease up (on shutdown), so a standby takes over at once.
    pub async fn release(&self) -> Result<(), kube::Error> {
        if let Some(mut lease) = self.api.get_opt(&self.name).await? {
            let spec = lease.spec.get_or_insert_with(Default::default);
            if spec.holder_identity.as_deref() == Some(self.identity.as_str()) {
                spec.holder_identity = None;
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await?;
            }
        }
        Ok(())
    }
}
