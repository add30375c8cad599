//! The event bus: every committed change of a job — created, claimed,
//! progress, completed, failed, cancelled, a cancel asked for, released back
//! to the queue — as a [`JobEvent`].
//!
//! Where events come from depends on the database (see
//! [`crate::db::EventFeed`]): PostgreSQL announces each change itself, inside
//! the transaction that makes it, to every process; SQLite cannot, so the
//! process that makes a change publishes it after its commit, and changes of
//! other processes on the same file are found by a poll
//! ([`crate::Engine::subscribe`] starts whichever applies).
//!
//! Subscribers say what they follow ([`Interest`]) and get only that. A
//! subscriber never slows a publisher: each has a bounded buffer, and one
//! that falls behind loses events and is told so ([`Notice::Missed`]), after
//! which it re-reads the state it follows. The engine's own listeners (idle
//! workers, the webhook dispatcher, running jobs waiting for a cancel) are
//! [hooks](EventBus::on_event): cheap synchronous callbacks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::ids::{AccountId, JobId};
use crate::job::{Job, JobState};
use crate::time::Millis;

/// Events a subscriber may have waiting before it counts as too slow.
const BUFFER: usize = 256;

/// One committed change of a job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobEvent {
    pub job_id: JobId,
    pub account_id: AccountId,
    /// The dialect that accepted the job.
    pub dialect: String,
    pub state: JobState,
    pub progress: u8,
    /// A client's correlation id (the Provider dialect's `session_id`).
    pub correlation_id: Option<String>,
    /// A PROCESSING job whose owner asked for it to stop.
    pub cancel_requested: bool,
    /// The job's `updated_at` after the change (ms since the epoch).
    pub at: Millis,
    /// The whole job after the change, when the process that made it had
    /// the row at hand (and someone was listening): subscribers then need
    /// not read it. Never sent between processes.
    #[serde(skip)]
    pub job: Option<Arc<Job>>,
}

impl JobEvent {
    /// The event announcing `job` as it now is.
    pub fn of(job: &Job) -> Self {
        Self {
            job_id: job.id,
            account_id: job.account_id,
            dialect: job.dialect.clone(),
            state: job.state,
            progress: job.progress,
            correlation_id: job.correlation_id.clone(),
            cancel_requested: false,
            at: job.updated_at,
            job: None,
        }
    }

    /// As [`Self::of`], carrying the job itself.
    pub fn with_job(job: Arc<Job>) -> Self {
        Self {
            job: Some(job.clone()),
            ..Self::of(&job)
        }
    }

    /// The same job after a change to `state` and `progress` at `at`.
    pub fn changed(&self, state: JobState, progress: u8, at: Millis) -> Self {
        Self {
            state,
            progress,
            at,
            cancel_requested: false,
            job: None,
            ..self.clone()
        }
    }
}

/// What a subscriber follows.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Interest {
    /// One job (of this account).
    Job(AccountId, JobId),
    Account(AccountId),
    /// An account's jobs with one correlation id (a studio session).
    Session(AccountId, String),
}

impl Interest {
    /// The account whose jobs this follows (all or some).
    pub fn account(&self) -> AccountId {
        match self {
            Interest::Job(account, _)
            | Interest::Account(account)
            | Interest::Session(account, _) => *account,
        }
    }
}

/// What a subscription yields.
#[derive(Clone, Debug)]
pub enum Notice {
    Changed(Arc<JobEvent>),
    /// Events were lost (this subscriber fell behind, or the connection that
    /// carries other processes' events was lost and restored): re-read the
    /// state of what you follow.
    Missed,
}

/// What a hook sees.
pub enum Signal<'a> {
    Changed(&'a JobEvent),
    Missed,
}

type Hook = Box<dyn Fn(Signal<'_>) + Send + Sync>;

struct Slot {
    id: u64,
    tx: mpsc::Sender<Notice>,
    missed: Arc<AtomicBool>,
}

impl Slot {
    /// Never waits: a full buffer loses the notice and marks the loss.
    fn offer(&self, notice: Notice) {
        if self.tx.try_send(notice).is_err() {
            self.missed.store(true, Ordering::Release);
        }
    }
}

#[derive(Default)]
struct Subscribers {
    by_job: HashMap<JobId, Vec<Slot>>,
    /// How many job subscriptions each account has (for
    /// [`EventBus::followed_accounts`]).
    jobs_of_account: HashMap<AccountId, usize>,
    by_account: HashMap<AccountId, Vec<Slot>>,
    /// By account, then correlation id: a publish looks up by `&str`.
    by_session: HashMap<AccountId, HashMap<String, Vec<Slot>>>,
}

fn drop_slot<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Vec<Slot>>, key: &K, id: u64) {
    if let Some(slots) = map.get_mut(key) {
        slots.retain(|s| s.id != id);
        if slots.is_empty() {
            map.remove(key);
        }
    }
}

impl Subscribers {
    fn add(&mut self, interest: &Interest, slot: Slot) {
        match interest {
            Interest::Job(account, job) => {
                self.by_job.entry(*job).or_default().push(slot);
                *self.jobs_of_account.entry(*account).or_default() += 1;
            }
            Interest::Account(account) => self.by_account.entry(*account).or_default().push(slot),
            Interest::Session(account, session) => self
                .by_session
                .entry(*account)
                .or_default()
                .entry(session.clone())
                .or_default()
                .push(slot),
        }
    }

    fn remove(&mut self, interest: &Interest, id: u64) {
        match interest {
            Interest::Job(account, job) => {
                drop_slot(&mut self.by_job, job, id);
                if let Some(count) = self.jobs_of_account.get_mut(account) {
                    *count -= 1;
                    if *count == 0 {
                        self.jobs_of_account.remove(account);
                    }
                }
            }
            Interest::Account(account) => drop_slot(&mut self.by_account, account, id),
            Interest::Session(account, session) => {
                if let Some(sessions) = self.by_session.get_mut(account) {
                    drop_slot(sessions, session, id);
                    if sessions.is_empty() {
                        self.by_session.remove(account);
                    }
                }
            }
        }
    }

    /// The slots an event goes to.
    fn matching<'a>(&'a self, event: &'a JobEvent) -> impl Iterator<Item = &'a Slot> {
        let session = event.correlation_id.as_deref().and_then(|session| {
            self.by_session
                .get(&event.account_id)
                .and_then(|sessions| sessions.get(session))
        });
        self.by_job
            .get(&event.job_id)
            .into_iter()
            .chain(self.by_account.get(&event.account_id))
            .chain(session)
            .flatten()
    }

    fn all(&self) -> impl Iterator<Item = &Slot> {
        self.by_job
            .values()
            .chain(self.by_account.values())
            .chain(self.by_session.values().flat_map(|s| s.values()))
            .flatten()
    }

    fn is_empty(&self) -> bool {
        self.by_job.is_empty() && self.by_account.is_empty() && self.by_session.is_empty()
    }
}

/// The in-process bus (cheap to clone).
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<Inner>,
}

struct Inner {
    /// Whether this process publishes its own changes (false when the
    /// database announces them to every process, this one included).
    publishes_locally: bool,
    next_id: AtomicU64,
    subscribers: RwLock<Subscribers>,
    hooks: RwLock<Vec<(u64, Hook)>>,
    /// The time of the last event delivered per followed job, so that a
    /// poll for other processes' changes skips what was already announced.
    delivered: Mutex<HashMap<JobId, Millis>>,
}

impl EventBus {
    /// `publishes_locally`: see [`Self::publish_local`].
    pub fn new(publishes_locally: bool) -> Self {
        Self {
            inner: Arc::new(Inner {
                publishes_locally,
                next_id: AtomicU64::new(1),
                subscribers: Default::default(),
                hooks: Default::default(),
                delivered: Default::default(),
            }),
        }
    }

    /// Follows `interest`. Dropping the subscription ends it.
    pub fn subscribe(&self, interest: Interest) -> Subscription {
        let (tx, rx) = mpsc::channel(BUFFER);
        let missed = Arc::new(AtomicBool::new(false));
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Slot {
            id,
            tx,
            missed: missed.clone(),
        };
        self.inner
            .subscribers
            .write()
            .expect("not poisoned")
            .add(&interest, slot);
        Subscription {
            id,
            interest,
            rx,
            missed,
            bus: Arc::downgrade(&self.inner),
        }
    }

    /// Calls `hook` for every event and every loss, on the publisher's
    /// thread: it must be quick and must not block. Dropping the guard
    /// removes it.
    pub fn on_event(&self, hook: impl Fn(Signal<'_>) + Send + Sync + 'static) -> HookGuard {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        self.inner
            .hooks
            .write()
            .expect("not poisoned")
            .push((id, Box::new(hook)));
        HookGuard {
            id,
            bus: Arc::downgrade(&self.inner),
        }
    }

    /// Whether this process announces its own changes: true unless the
    /// database does it for every process.
    pub fn publishes_locally(&self) -> bool {
        self.inner.publishes_locally
    }

    /// A change this process committed. Published only when the database
    /// does not announce it itself (otherwise it arrives through
    /// [`Self::publish`] like every other process's).
    pub fn publish_local(&self, event: JobEvent) {
        if self.inner.publishes_locally {
            self.publish(event);
        }
    }

    /// Delivers an event to its subscribers and the hooks.
    pub fn publish(&self, event: JobEvent) {
        let event = Arc::new(event);
        let mut delivered = false;
        {
            let subscribers = self.inner.subscribers.read().expect("not poisoned");
            for slot in subscribers.matching(&event) {
                slot.offer(Notice::Changed(event.clone()));
                delivered = true;
            }
        }
        if delivered {
            self.inner
                .delivered
                .lock()
                .expect("not poisoned")
                .insert(event.job_id, event.at);
        }
        for (_, hook) in self.inner.hooks.read().expect("not poisoned").iter() {
            hook(Signal::Changed(&event));
        }
    }

    /// Tells every subscriber and hook that events may have been lost.
    pub fn missed_all(&self) {
        {
            let subscribers = self.inner.subscribers.read().expect("not poisoned");
            for slot in subscribers.all() {
                slot.offer(Notice::Missed);
            }
        }
        for (_, hook) in self.inner.hooks.read().expect("not poisoned").iter() {
            hook(Signal::Missed);
        }
    }

    /// What subscribers follow now: jobs, and accounts (wholly or a
    /// session's jobs).
    pub fn followed(&self) -> (Vec<JobId>, Vec<AccountId>) {
        let subscribers = self.inner.subscribers.read().expect("not poisoned");
        let mut accounts: Vec<AccountId> = subscribers
            .by_account
            .keys()
            .chain(subscribers.by_session.keys())
            .copied()
            .collect();
        accounts.sort_unstable();
        accounts.dedup();
        (subscribers.by_job.keys().copied().collect(), accounts)
    }

    /// Every account whose jobs someone here follows, wholly or in part.
    pub fn followed_accounts(&self) -> Vec<AccountId> {
        let subscribers = self.inner.subscribers.read().expect("not poisoned");
        let mut accounts: Vec<AccountId> = subscribers
            .by_account
            .keys()
            .chain(subscribers.by_session.keys())
            .chain(subscribers.jobs_of_account.keys())
            .copied()
            .collect();
        accounts.sort_unstable();
        accounts.dedup();
        accounts
    }

    /// How many subscribers follow something now.
    pub fn subscriber_count(&self) -> usize {
        self.inner
            .subscribers
            .read()
            .expect("not poisoned")
            .all()
            .count()
    }

    /// Whether anyone follows anything.
    pub fn has_subscribers(&self) -> bool {
        !self
            .inner
            .subscribers
            .read()
            .expect("not poisoned")
            .is_empty()
    }

    /// Whether an event of `job` at `at` (or later) was already delivered.
    pub fn delivered_since(&self, job: JobId, at: Millis) -> bool {
        self.inner
            .delivered
            .lock()
            .expect("not poisoned")
            .get(&job)
            .is_some_and(|last| *last >= at)
    }

    /// Forgets delivery times older than `before`.
    pub fn forget_deliveries_before(&self, before: Millis) {
        self.inner
            .delivered
            .lock()
            .expect("not poisoned")
            .retain(|_, at| *at >= before);
    }

    pub(crate) fn downgrade(&self) -> WeakBus {
        WeakBus(Arc::downgrade(&self.inner))
    }
}

/// A bus reference that does not keep it alive (for background tasks).
pub(crate) struct WeakBus(Weak<Inner>);

impl WeakBus {
    pub(crate) fn upgrade(&self) -> Option<EventBus> {
        self.0.upgrade().map(|inner| EventBus { inner })
    }
}

/// A stream of [`Notice`]s for one [`Interest`].
pub struct Subscription {
    id: u64,
    interest: Interest,
    rx: mpsc::Receiver<Notice>,
    missed: Arc<AtomicBool>,
    bus: Weak<Inner>,
}

impl Subscription {
    /// The next notice; `None` once the bus is gone.
    pub async fn recv(&mut self) -> Option<Notice> {
        // Events are lost only when the buffer is full, so they come after
        // everything buffered: report the loss once the buffer is drained.
        match self.rx.try_recv() {
            Ok(notice) => return Some(notice),
            Err(mpsc::error::TryRecvError::Disconnected) => return None,
            Err(mpsc::error::TryRecvError::Empty) => {}
        }
        if self.missed.swap(false, Ordering::AcqRel) {
            return Some(Notice::Missed);
        }
        self.rx.recv().await
    }

    pub fn interest(&self) -> &Interest {
        &self.interest
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(bus) = self.bus.upgrade() {
            bus.subscribers
                .write()
                .expect("not poisoned")
                .remove(&self.interest, self.id);
        }
    }
}

/// Keeps a hook registered; dropping it removes the hook.
pub struct HookGuard {
    id: u64,
    bus: Weak<Inner>,
}

impl Drop for HookGuard {
    fn drop(&mut self) {
        if let Some(bus) = self.bus.upgrade() {
            bus.hooks
                .write()
                .expect("not poisoned")
                .retain(|(id, _)| *id != self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn event(job: JobId, account: AccountId, progress: u8) -> JobEvent {
        JobEvent {
            job_id: job,
            account_id: account,
            dialect: "test".into(),
            state: JobState::Processing,
            progress,
            correlation_id: None,
            cancel_requested: false,
            at: i64::from(progress),
            job: None,
        }
    }

    async fn progress_of(sub: &mut Subscription) -> Option<u8> {
        match sub.recv().await? {
            Notice::Changed(e) => Some(e.progress),
            Notice::Missed => None,
        }
    }

    #[tokio::test]
    async fn subscribers_get_only_what_they_follow() {
        let bus = EventBus::new(true);
        let (a, b) = (JobId::new(), JobId::new());
        let account = AccountId::new();
        let mut on_a = bus.subscribe(Interest::Job(account, a));
        let mut on_account = bus.subscribe(Interest::Account(account));
        bus.publish(event(b, AccountId::new(), 1));
        bus.publish(event(a, account, 2));
        bus.publish(event(b, account, 3));
        assert_eq!(progress_of(&mut on_a).await, Some(2));
        assert_eq!(progress_of(&mut on_account).await, Some(2));
        assert_eq!(progress_of(&mut on_account).await, Some(3));
        assert!(bus.delivered_since(a, 2));
        assert!(!bus.delivered_since(a, 3));
        let elsewhere = AccountId::new();
        let on_b = bus.subscribe(Interest::Job(elsewhere, b));
        let mut both = vec![account, elsewhere];
        both.sort_unstable();
        assert_eq!(bus.followed_accounts(), both);
        drop((on_a, on_b));
        assert_eq!(bus.followed(), (vec![], vec![account]));
        assert_eq!(bus.followed_accounts(), vec![account]);
    }

    #[tokio::test]
    async fn a_session_subscriber_gets_its_sessions_jobs_only() {
        let bus = EventBus::new(true);
        let account = AccountId::new();
        let mut studio = bus.subscribe(Interest::Session(account, "s1".into()));
        let tagged = |session: &str, progress| JobEvent {
            correlation_id: Some(session.into()),
            ..event(JobId::new(), account, progress)
        };
        bus.publish(event(JobId::new(), account, 1));
        bus.publish(tagged("s2", 2));
        bus.publish(JobEvent {
            account_id: AccountId::new(),
            ..tagged("s1", 3)
        });
        bus.publish(tagged("s1", 4));
        assert_eq!(progress_of(&mut studio).await, Some(4));
        assert_eq!(bus.followed(), (vec![], vec![account]));
        drop(studio);
        assert!(!bus.has_subscribers());
    }

    #[tokio::test]
    async fn a_subscriber_that_does_not_read_misses_events_and_is_told() {
        let bus = EventBus::new(true);
        let (job, account) = (JobId::new(), AccountId::new());
        let mut slow = bus.subscribe(Interest::Job(account, job));
        for i in 0..(BUFFER + 10) {
            bus.publish(event(job, account, (i % 200) as u8));
        }
        for _ in 0..BUFFER {
            assert!(progress_of(&mut slow).await.is_some());
        }
        assert!(matches!(slow.recv().await, Some(Notice::Missed)));
        bus.publish(event(job, account, 7));
        assert_eq!(progress_of(&mut slow).await, Some(7));
    }

    #[tokio::test]
    async fn hooks_see_everything_until_dropped_and_local_publishing_can_be_off() {
        let bus = EventBus::new(false);
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        let guard = bus.on_event(move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
        });
        bus.publish_local(event(JobId::new(), AccountId::new(), 1));
        assert_eq!(seen.load(Ordering::Relaxed), 0, "the database announces");
        bus.publish(event(JobId::new(), AccountId::new(), 1));
        bus.missed_all();
        assert_eq!(seen.load(Ordering::Relaxed), 2);
        drop(guard);
        bus.publish(event(JobId::new(), AccountId::new(), 1));
        assert_eq!(seen.load(Ordering::Relaxed), 2);
    }
}
