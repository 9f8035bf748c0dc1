"""The service's state machine with a fake clock and a fake worker: no threads, no sleeping."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.backup.progress import Progress, Step
from app.backup.restore import Mode, Plan, RestoreRequest, RestoreResult
from app.backup.result import Outcome, SyncResult
from app.errors import BackupDamaged, FailureKind
from app.service.events import (
    Changed,
    JobDone,
    Pause,
    Progressed,
    Quit,
    RestoreDone,
    RestoreNow,
    Resume,
    SyncNow,
    Tick,
)
from app.service.retry import Backoff, EpisodeEvent, FailingSince, Grace, Persisting, Recovered
from app.service.service import Service, Timing
from app.service.status import ServiceState, Status
from app.service.worker import Job, RestoreJob

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Harness:
    """A Service whose jobs land in a list and whose clock the test moves."""

    def __init__(self, startup_sync: bool = False, grace: Grace | None = None) -> None:
        self.now = 0.0
        self.jobs: list[Job | RestoreJob] = []
        self.alerts: list[EpisodeEvent] = []
        self.statuses: list[Status] = []
        self.replies: list[tuple[str, SyncResult]] = []
        self.cancelled = 0
        me = self

        class _Notifier:
            def episode(self, event: EpisodeEvent) -> None:
                me.alerts.append(event)

        self.service = Service(
            self.jobs.append,
            timing=Timing(delay=5, interval=30, backoff=Backoff(5, 600), grace=grace or Grace(120, 2)),
            cancel=self._cancel,
            reply=lambda rid, res: self.replies.append((rid, res)),
            notifier=_Notifier(),
            listeners=[self.statuses.append],
            clock=lambda: self.now,
            wall=lambda: T0 + timedelta(seconds=self.now),
            startup_sync=startup_sync,
        )

    def _cancel(self) -> None:
        self.cancelled += 1

    def at(self, t: float, *events: object) -> None:
        self.now = t
        for e in events or (Tick(),):
            self.service.handle(e)  # type: ignore[arg-type]

    def finish(self, t: float, result: str = "ok", kind: str | None = None) -> None:
        job = self.jobs[-1]
        when = T0 + timedelta(seconds=t)
        failure = FailureKind(kind) if kind else None
        res = SyncResult(Outcome(result), when, when, kind=failure, error="boom" if kind else "")
        self.at(t, JobDone(res, job.job_id))

    @property
    def state(self) -> ServiceState:
        return self.service.status.state

    @property
    def status(self) -> Status:
        return self.service.status


def test_startup_runs_one_full_sync_at_once() -> None:
    h = Harness(startup_sync=True)
    h.at(0)
    assert len(h.jobs) == 1 and h.jobs[0].options.dirty is None
    assert h.state is ServiceState.SYNCING


def test_a_burst_becomes_one_sync_with_every_changed_path_after_the_delay() -> None:
    h = Harness()
    h.at(0, Changed(paths=("storage/message/s/a.json",)))
    h.at(2, Changed(), Changed(paths=("storage/part/m/p.json",)))
    assert h.state is ServiceState.WAITING and h.status.pending == 3 and not h.jobs
    h.at(4.9)
    assert not h.jobs
    h.at(5.0)
    assert len(h.jobs) == 1
    assert h.jobs[0].options.dirty == ("storage/message/s/a.json", "storage/part/m/p.json")
    h.finish(6)
    assert h.state is ServiceState.IDLE and h.status.syncs == 1 and h.status.last_outcome is Outcome.OK


def test_a_change_during_a_sync_leads_to_another_sync_30_s_after_the_first_started() -> None:
    h = Harness()
    h.at(0, Changed())
    h.at(5)
    h.at(6, Changed())
    h.finish(8)
    assert h.state is ServiceState.WAITING and len(h.jobs) == 1
    h.at(34.9)
    assert len(h.jobs) == 1
    h.at(35)
    assert len(h.jobs) == 2


def test_sync_now_bypasses_the_interval_and_answers_the_caller() -> None:
    h = Harness()
    h.at(0, Changed())
    h.at(5)
    h.finish(6)
    h.at(7, SyncNow(request_id="r1"))
    assert len(h.jobs) == 2
    h.finish(8)
    assert [rid for rid, _ in h.replies] == ["r1"]


def test_pause_holds_changes_and_resume_syncs_them() -> None:
    h = Harness()
    h.at(0, Pause(), Changed())
    h.at(100)
    assert not h.jobs and h.state is ServiceState.PAUSED and h.status.pending == 1
    h.at(101, Resume())
    assert len(h.jobs) == 1


def test_a_locked_destination_is_retried_with_doubling_backoff_and_alerted_once() -> None:
    h = Harness()
    h.at(0, Changed())
    h.at(5)
    h.finish(6, "failed", "locked")
    assert h.state is ServiceState.RETRYING and h.status.next_retry == T0 + timedelta(seconds=11)
    assert not h.alerts  # one failure is within the grace
    starts: list[float] = []
    t = 6.0
    for _ in range(8):
        h.at(t + 0.001)  # not yet
        assert len(h.jobs) == len(starts) + 1
        retry_at = (h.status.next_retry or T0) - T0
        t = retry_at.total_seconds()
        h.at(t)
        starts.append(t)
        h.finish(t, "failed", "locked")
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps[:5] == [10, 20, 40, 80, 160] and max(gaps) <= 600
    assert [type(a) for a in h.alerts] == [FailingSince]  # one alert per episode
    assert t < 1800
    h.at(t + 600)  # past 30 min: the lock is still there, so one follow-up says what to do
    assert [type(a) for a in h.alerts] == [FailingSince, Persisting]
    h.finish(t + 601)
    assert h.state is ServiceState.IDLE and [type(a) for a in h.alerts] == [
        FailingSince,
        Persisting,
        Recovered,
    ]


def test_an_unreachable_folder_gets_one_alert_and_no_follow_up_however_long_it_lasts() -> None:
    h = Harness()
    h.at(0, Changed())
    h.at(5)
    t = 5.0
    for _ in range(12):
        h.finish(t, "failed", "dest_missing")
        t = ((h.status.next_retry or T0) - T0).total_seconds()
        h.at(t)
    assert t > 3600 and [type(a) for a in h.alerts] == [FailingSince]


def test_a_tripped_guard_alerts_at_once() -> None:
    h = Harness()
    h.at(0, Changed())
    h.at(5)
    h.finish(6, "failed", "guard")
    assert h.state is ServiceState.FAILED and [(type(a), a.kind) for a in h.alerts] == [
        (FailingSince, FailureKind.GUARD)
    ]


def test_a_single_short_failure_is_never_alerted() -> None:
    h = Harness()
    h.at(0, Changed())
    h.at(5)
    h.finish(6, "failed", "dest_missing")
    h.at(11)
    h.finish(12)
    assert h.alerts == [] and h.state is ServiceState.IDLE


def test_a_long_failure_is_alerted_after_the_grace_period_even_without_a_second_attempt() -> None:
    h = Harness(grace=Grace(seconds=120, failures=99))
    h.at(0, Changed())
    h.at(5)
    h.finish(6, "failed", "fatal")
    assert h.state is ServiceState.FAILED and not h.alerts
    h.at(125)
    assert not h.alerts
    h.at(126)
    assert [type(a) for a in h.alerts] == [FailingSince]


def test_guard_failure_waits_for_a_change_or_a_manual_sync() -> None:
    h = Harness()
    h.at(0, Changed())
    h.at(5)
    h.finish(6, "failed", "guard")
    h.at(10_000)
    assert len(h.jobs) == 1 and h.state is ServiceState.FAILED and h.status.next_retry is None
    h.at(10_001, Changed())
    h.at(10_006)
    assert len(h.jobs) == 2
    h.finish(10_007, "failed", "fatal")
    h.at(10_008, SyncNow())
    assert len(h.jobs) == 3


def test_a_failed_sync_keeps_its_changed_paths_for_the_next_attempt() -> None:
    h = Harness()
    h.at(0, Changed(paths=("storage/a.json",)))
    h.at(5)
    h.finish(6, "failed", "locked")
    h.at(11)
    assert h.jobs[-1].options.dirty == ("storage/a.json",)


def test_quit_cancels_the_running_sync_and_says_stopped() -> None:
    h = Harness()
    h.at(0, SyncNow(request_id="later"))
    h.at(1, Quit())
    assert h.cancelled == 1 and h.state is ServiceState.STOPPING
    h.finish(2, "failed", "fatal")
    assert len(h.jobs) == 1  # nothing new starts while stopping


def test_a_change_after_six_hours_gets_a_full_walk_but_idle_time_alone_starts_nothing() -> None:
    h = Harness()
    h.at(0, Changed(paths=("storage/a.json",)))
    h.at(5)
    h.finish(6)
    assert h.jobs[-1].options.dirty == ("storage/a.json",)
    h.at(7 * 3600)
    assert len(h.jobs) == 1  # no sync without a change
    h.at(7 * 3600 + 1, Changed(paths=("storage/b.json",)))
    h.at(7 * 3600 + 6)
    assert len(h.jobs) == 2 and h.jobs[-1].options.dirty is None


def _plan() -> tuple[Plan, RestoreRequest]:
    req = RestoreRequest(Path("/b/laptop"), Path("/d/opencode.db"), Path("/w"), ids=("ses_a",))
    return Plan(Mode.SESSIONS, req.db, ()), req


def test_a_restore_waits_for_the_running_sync_runs_on_the_worker_and_is_backed_up_after() -> None:
    h = Harness(startup_sync=True)
    h.at(0)
    assert h.state is ServiceState.SYNCING
    plan, req = _plan()
    ask = RestoreNow(plan, req)
    h.at(1, ask, Changed())
    assert h.state is ServiceState.RESTORING and len(h.jobs) == 1  # the sync is left to finish
    h.finish(2)
    job = h.jobs[-1]
    assert isinstance(job, RestoreJob) and job.plan is plan and not ask.done.done()
    h.at(40, Changed())  # the restore writes opencode's database: no sync meanwhile
    assert h.jobs[-1] is job and h.state is ServiceState.RESTORING
    h.at(41, RestoreDone(RestoreResult(restored=[("ses_a", 12)]), job.job_id))
    assert ask.done.result().restored == [("ses_a", 12)]
    assert isinstance(h.jobs[-1], Job) and h.state is ServiceState.SYNCING  # what it restored is backed up


def test_a_paused_service_still_restores_and_keeps_the_users_pause() -> None:
    h = Harness()
    h.at(0, Pause())
    plan, req = _plan()
    ask = RestoreNow(plan, req)
    h.at(1, ask)
    job = h.jobs[-1]
    assert isinstance(job, RestoreJob)
    h.at(2, RestoreDone(BackupDamaged("refusing x.json: not valid JSON"), job.job_id))
    assert isinstance(ask.done.exception(), BackupDamaged)
    assert h.state is ServiceState.PAUSED and h.jobs[-1] is job  # no sync while the user paused


def test_quitting_tells_a_waiting_restore_instead_of_leaving_it_waiting() -> None:
    h = Harness(startup_sync=True)
    h.at(0)
    plan, req = _plan()
    ask = RestoreNow(plan, req)
    h.at(1, ask, Quit())
    h.finish(2)
    h.at(7)
    h.service._finish()
    assert "stopped before the restore" in str(ask.done.exception())


def test_progress_of_the_running_job_is_shown_until_it_ends_and_a_late_report_shows_nothing() -> None:
    h = Harness(startup_sync=True)
    h.at(0)
    sync = h.jobs[-1]
    halfway = Progress(Step.SESSIONS, 640, 1800, 12.0)
    h.at(1, Progressed(halfway, sync.job_id))
    assert h.status.progress == halfway and h.state is ServiceState.SYNCING
    h.at(2, Progressed(Progress(Step.SESSIONS, 1, 1), sync.job_id + 99))  # not the running job
    assert h.status.progress == halfway
    h.finish(3)
    assert h.status.progress is None
    h.at(4, Progressed(halfway, sync.job_id))  # the worker's last report, arriving after its result
    assert h.status.progress is None

    plan, req = _plan()
    h.at(5, RestoreNow(plan, req))
    restore = h.jobs[-1]
    assert isinstance(restore, RestoreJob)
    restoring = Progress(Step.RESTORING, 3, 40, 2.0)
    h.at(6, Progressed(restoring, restore.job_id))
    assert h.status.progress == restoring and h.state is ServiceState.RESTORING
    h.at(7, RestoreDone(RestoreResult(), restore.job_id))
    assert h.status.progress is None
