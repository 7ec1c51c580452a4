"""Jobs on the local Flink cluster: named for their task and run, watched by their launcher's
heartbeat, and cancelled through Flink's REST API when their launcher is gone.

``llm-enrich run --runner flink`` names its job ``llm-enrich:run:<task>:<run id>`` (a
replay: ``llm-enrich:replay:...``; the part before the run id is the job's *family*: the
jobs of one family read one consumer group) and keeps a run folder,
``$LLM_ENRICH_STATE/flink/runs/<run id>/`` (the control folder its workers read,
``transforms.core.run.control``), holding ``launcher`` (its pid and host) and
``heartbeat``, touched every ``HEARTBEAT_S``. A launcher that dies without a word (kill -9,
the machine's OOM killer) leaves its job running; two things end it:

- the job itself: its workers stop (as on SIGTERM: what was read is finished and
  committed) once the heartbeat is older than ``LAUNCHER_SILENCE_S``;
- the next ``run`` (or ``replay``) of the same task (``clear_orphans``): a job of the
  family whose launcher is gone (its pid is dead on this host, or its heartbeat is silent)
  is cancelled (``PATCH /jobs/<id>?mode=cancel``) and waited for; a job whose launcher
  lives, or that was not started from this state folder, stops the new run (exit 2)
  instead of letting two runs read one consumer group. ``deploy/flink.sh jobs|cancel`` do
  the same by hand.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from transforms.core.errors import EnrichError
from transforms.core.run.control import HEARTBEAT, LAUNCHER_SILENCE_S

__all__ = [
    "HEARTBEAT_S",
    "FlinkJob",
    "OrphanError",
    "RunFolder",
    "cancel_job",
    "cancel_jobs_named",
    "clear_orphans",
    "job_family",
    "job_name",
    "running_jobs",
    "runs_folder",
]

HEARTBEAT_S = 2.0
PREFIX = "llm-enrich"
ENDED = frozenset({"FINISHED", "CANCELED", "FAILED"})
CANCEL_WAIT_S = 60.0


def runs_folder() -> Path:
    """Where run folders live: next to the cluster's own state (``deploy/flink.sh``)."""
    checkout = Path(__file__).resolve().parents[1]
    return Path(os.environ.get("LLM_ENRICH_STATE", checkout / ".local")) / "flink" / "runs"


def rest_url() -> str:
    return f"http://127.0.0.1:{os.environ.get('LLM_ENRICH_FLINK_REST_PORT', '18091')}"


def job_family(kind: str, task: str) -> str:
    """``llm-enrich:<kind>:<task>`` (``run`` or ``replay``; a task name has no ``:``)."""
    return f"{PREFIX}:{kind}:{task}"


def job_name(family: str, run_id: str) -> str:
    return f"{family}:{run_id}"


@dataclass(frozen=True)
class FlinkJob:
    jid: str
    name: str
    state: str
    started_ms: int

    @property
    def family_and_run(self) -> tuple[str, str] | None:
        """The job's family and run id, for a job ``llm-enrich`` named."""
        parts = self.name.split(":")
        if len(parts) != 4 or parts[0] != PREFIX:
            return None
        return ":".join(parts[:3]), parts[3]


def _rest(method: str, path: str, timeout_s: float = 5.0) -> object:
    request = urllib.request.Request(rest_url() + path, method=method)
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        body = response.read()
    return json.loads(body) if body else None


def running_jobs() -> list[FlinkJob]:
    """Every job of the cluster that has not ended."""
    answer = _rest("GET", "/jobs/overview")
    assert isinstance(answer, dict)
    return [
        FlinkJob(j["jid"], j["name"], j["state"], int(j.get("start-time", 0)))
        for j in answer.get("jobs", [])
        if j["state"] not in ENDED
    ]


def job_state(jid: str) -> str:
    answer = _rest("GET", f"/jobs/{jid}")
    assert isinstance(answer, dict)
    return str(answer["state"])


def cancel_job(jid: str, wait_s: float = CANCEL_WAIT_S) -> str:
    """Cancel a job and wait (up to ``wait_s``) until it has ended; its last state."""
    _rest("PATCH", f"/jobs/{jid}?mode=cancel")
    deadline = time.monotonic() + wait_s
    state = job_state(jid)
    while state not in ENDED and time.monotonic() < deadline:
        time.sleep(0.5)
        state = job_state(jid)
    return state


def cancel_jobs_named(name: str) -> list[str]:
    """Cancel every running job called ``name`` and wait for each to end; the ids cancelled.
    Raises OSError when the REST API does not answer or a job does not end in time."""
    cancelled = []
    for job in running_jobs():
        if job.name == name:
            state = cancel_job(job.jid)
            if state not in ENDED:
                raise OSError(f"job {job.jid} still {state} {CANCEL_WAIT_S:.0f} s after its cancel")
            cancelled.append(job.jid)
    return cancelled


class RunFolder:
    """A run's folder (its control folder too) and its launcher's heartbeat; a context
    manager: made and beating inside the block, removed after it."""

    def __init__(self, run_id: str, base: Path | None = None) -> None:
        self.run_id = run_id
        self.path = (base or runs_folder()) / run_id
        self._stop = threading.Event()
        self._beat = threading.Thread(
            target=self._beating, name="llm-enrich-heartbeat", daemon=True
        )

    def __enter__(self) -> RunFolder:
        self.path.mkdir(parents=True, exist_ok=False)
        launcher = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        (self.path / "launcher").write_text(json.dumps(launcher))
        (self.path / HEARTBEAT).touch()
        self._beat.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._beat.join(5)
        _remove(self.path)

    def _beating(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            with contextlib.suppress(OSError):
                os.utime(self.path / HEARTBEAT)


def _remove(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def launcher_gone(folder: Path, now: float | None = None) -> str | None:
    """Why the launcher of the run in ``folder`` is gone (None: it lives, or nothing says
    otherwise)."""
    now = time.time() if now is None else now
    try:
        launcher = json.loads((folder / "launcher").read_text())
        silent_s = now - (folder / HEARTBEAT).stat().st_mtime
    except (OSError, ValueError):
        return None
    pid = int(launcher.get("pid", 0))
    if launcher.get("host") == socket.gethostname() and pid and not _alive(pid):
        return f"its launcher (pid {pid}) is gone"
    if silent_s > LAUNCHER_SILENCE_S:
        return f"its launcher has been silent for {silent_s:.0f} s"
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class OrphanError(EnrichError, RuntimeError):
    """A job of this task runs on the cluster and is not an orphan to cancel (its launcher
    lives, or it was not started from here), an orphan would not end, or Flink's REST API
    does not answer."""


def clear_orphans(family: str, say: Callable[[str], None]) -> list[str]:
    """Cancel the jobs of ``family`` (``job_family``) whose launcher is gone (see the module
    docstring); the ids cancelled. Raises ``OrphanError`` for a job of the family that must
    be left to its owner, or that did not end within ``CANCEL_WAIT_S`` of its cancel."""
    cancelled = []
    try:
        jobs = running_jobs()
    except OSError as exc:  # urllib's errors included
        raise OrphanError(
            f"cannot list Flink's jobs at {rest_url()} ({exc}): run deploy/flink.sh start"
        ) from exc
    for job in jobs:
        named = job.family_and_run
        if named is None or named[0] != family:
            continue
        folder = runs_folder() / named[1]
        why = launcher_gone(folder) if folder.is_dir() else None
        if why is None:
            where = "its launcher is running" if folder.is_dir() else "not started from here"
            raise OrphanError(
                f"{family} is running on Flink already ({job.jid}, {where}): stop "
                f"that run first, or cancel the job: deploy/flink.sh cancel {job.jid}"
            )
        say(f"cancelling Flink job {job.jid} ({job.name}): {why}")
        state = cancel_job(job.jid)
        if state not in ENDED:
            raise OrphanError(
                f"Flink job {job.jid} is still {state} {CANCEL_WAIT_S:.0f} s after its "
                "cancel: restart the cluster (deploy/flink.sh stop; deploy/flink.sh start)"
            )
        _remove(folder)
        cancelled.append(job.jid)
    _sweep_folders()
    return cancelled


def _sweep_folders() -> None:
    """Remove the run folders of launchers that are gone and whose job is not running
    (what a kill -9 left behind)."""
    running = {named[1] for job in running_jobs() if (named := job.family_and_run)}
    base = runs_folder()
    for folder in base.iterdir() if base.is_dir() else ():
        if folder.name not in running and launcher_gone(folder) is not None:
            _remove(folder)


LIVE_EVERY_S = 5.0  # Flink's JobManager fetches the TaskManagers' metrics every 10 s
MARK = ".llm_enrich_"  # Beam's user counters as Flink metrics: <step>.llm_enrich_<name>


class LiveCounts:
    """The ``llm_enrich`` counters of the running job named ``name``, for the progress line.
    The job service's ``GetJobMetrics`` answers only once a job has ended, and Flink's
    accumulator of Beam's metrics (``/jobs/<id>/accumulators``) did not move while the job
    ran; Beam's Flink runner also reports every counter as a Flink metric of its operator
    (``<step>.llm_enrich_<name>``, dots made underscores), as each bundle ends, which the
    REST API serves summed over subtasks (``/jobs/<id>/vertices/<v>/subtasks/metrics``,
    fetched from the TaskManagers every 10 s). Called at most every ``LIVE_EVERY_S`` it asks
    Flink; between, it gives the last answer. Empty until the job is found (and when Flink
    does not answer). Names come back as the summary's for the counters the progress line
    shows (``PROGRESS``, ``planned.*``, ``replay.skipped.*``); others stay as Flink has
    them."""

    def __init__(self, name: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._name, self._clock = name, clock
        self._jid: str | None = None
        self._last: dict[str, int] = {}
        self._asked = float("-inf")

    def __call__(self) -> dict[str, int]:
        if self._clock() - self._asked >= LIVE_EVERY_S:
            self._asked = self._clock()
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                self._last = self._ask() or self._last
        return self._last

    def _ask(self) -> dict[str, int]:
        if self._jid is None:
            found = [j.jid for j in running_jobs() if j.name == self._name]
            if not found:
                return {}
            self._jid = found[0]
        job = _rest("GET", f"/jobs/{self._jid}")
        assert isinstance(job, dict)
        counts: dict[str, int] = {}
        for vertex in job["vertices"]:
            path = f"/jobs/{self._jid}/vertices/{vertex['id']}/subtasks/metrics"
            listed = _rest("GET", path)
            assert isinstance(listed, list)
            ids = [m["id"] for m in listed if MARK in m["id"]]
            if not ids:
                continue
            summed = _rest("GET", f"{path}?get={urllib.parse.quote(','.join(ids))}&agg=sum")
            assert isinstance(summed, list)
            for metric in summed:
                name = counter_name(metric["id"].rsplit(MARK, 1)[1])
                counts[name] = counts.get(name, 0) + int(metric["sum"])
        return counts


PROGRESS = ("read", "written.output", "written.dead_letter", "llm_calls")
PREFIXES = ("planned.", "replay.skipped.")


def counter_name(flink: str) -> str:
    """A counter's name from its Flink metric name (``written_output``: ``written.output``)."""
    for name in PROGRESS:
        if flink == name.replace(".", "_"):
            return name
    for prefix in PREFIXES:
        mangled = prefix.replace(".", "_")
        if flink.startswith(mangled):
            return prefix + flink.removeprefix(mangled)
    return flink
