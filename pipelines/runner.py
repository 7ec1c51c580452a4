"""Where a run executes: Prism (built by deploy/setup.sh) unless the user picks a runner:
``--runner flink`` submits to the local Flink cluster of ``deploy/flink.sh``
(``flink_workers``), any other runner name goes to Beam as it is.

``llm-enrich run`` starts its own Prism job server in a session of its own, so that a
Ctrl-C in the terminal reaches the launcher (which stops the run cleanly) and not Prism
(which would abort the job). The server dies with the launcher (``PR_SET_PDEATHSIG`` on
Linux; elsewhere it is stopped when the run ends). It gets no secret: its environment is
an allow-list (``prism_environment``). The SDK workers that call the providers and Kafka
(LOOPBACK threads in the launcher, or the ``--workers N`` pool) keep the launcher's.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from apache_beam.options.pipeline_options import PipelineOptions

from transforms.core.errors import EnrichError

__all__ = [
    "BEAM_BOOT_VERSION",
    "FLINK_PARALLELISM",
    "FLINK_REPLAY_ARGS",
    "PRISM_VERSION",
    "FlinkNotReady",
    "PrismNotInstalled",
    "WorkerPool",
    "boot_location",
    "flink_job_endpoint",
    "flink_workers",
    "in_one_process",
    "pipeline_options",
    "prism_environment",
    "prism_location",
    "prism_server",
    "worker_pool",
]

PRISM_VERSION = "2.77.0"
PRISM_BUILD = f"{PRISM_VERSION}-p1"  # deploy/prism.sh BUILD: the version and its patches
BEAM_BOOT_VERSION = "2.77.0"  # Beam's Python SDK boot program, built by deploy/flink.sh
_PR_SET_PDEATHSIG = 1


def _cache() -> Path:
    return Path(os.environ.get("LLM_ENRICH_CACHE", Path.home() / ".cache" / "llm-enrich"))


def prism_location() -> Path:
    """Where deploy/setup.sh caches Prism (``go install``); ``LLM_ENRICH_PRISM`` overrides."""
    override = os.environ.get("LLM_ENRICH_PRISM")
    if override:
        return Path(override)
    return _cache() / f"prism-{PRISM_BUILD}" / "prism"


def boot_location() -> Path:
    """Where deploy/flink.sh caches Beam's Python SDK boot program (``go install``), which
    the TaskManagers run for each PROCESS worker; ``LLM_ENRICH_BEAM_BOOT`` overrides."""
    override = os.environ.get("LLM_ENRICH_BEAM_BOOT")
    if override:
        return Path(override)
    return _cache() / f"beam-boot-{BEAM_BOOT_VERSION}" / "boot"


class PrismNotInstalled(EnrichError, FileNotFoundError):
    """deploy/setup.sh has not built Prism (or LLM_ENRICH_PRISM points nowhere)."""


def _installed_prism() -> Path:
    location = prism_location()
    if not location.is_file():
        raise PrismNotInstalled(
            f"Prism is not installed at {location}: run deploy/setup.sh "
            "(or pass a runner after --, e.g. -- --runner=DirectRunner)"
        )
    return location


def _die_with_parent() -> None:  # runs in the child, before exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _kills_itself_with_parent() -> bool:
    return os.path.exists("/proc/self")  # Linux: PR_SET_PDEATHSIG is honoured


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(
    process: subprocess.Popen[bytes], port: int, what: str, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start (exit code {process.poll()})")
        time.sleep(0.05)


# What Prism's job server may see of the launcher's environment: the basics of a process,
# the Go runtime's knobs, and the one Beam variable Prism reads. Nothing else, so no API key,
# SASL or cache password reaches it (it only schedules bundles). Prism passes its own
# environment to SDK workers it starts itself (``--environment_type=PROCESS``): those would
# get no secret either; ``--workers N`` starts them from the launcher instead.
PRISM_ENVIRONMENT = frozenset(
    {"PATH", "HOME", "TMPDIR", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ"}
    | {"GODEBUG", "GOMAXPROCS", "GOMEMLIMIT", "GOGC", "GOTRACEBACK"}
    | {"BEAM_WORKER_POOL_IN_DOCKER_VM"}
)


def prism_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The part of ``environ`` Prism's job server is started with (an allow-list)."""
    return {
        name: value
        for name, value in environ.items()
        if name in PRISM_ENVIRONMENT or name.startswith("LC_")
    }


@contextlib.contextmanager
def prism_server(timeout_s: float = 30.0) -> Iterator[str]:
    """Start a Prism job server in its own session; yield its endpoint; stop it."""
    port = _free_port()
    process = subprocess.Popen(
        [str(_installed_prism()), "--job_port", str(port), "--serve_http=false"],
        env=prism_environment(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    try:
        _wait_for_port(process, port, "Prism", timeout_s)
        yield f"localhost:{port}"
    finally:
        # On Linux the server dies with this process: stopping it now would cut the Beam
        # worker threads that are still connected to it (tracebacks on stderr) while the
        # launcher prints its summary. Elsewhere, stop it here.
        if not _kills_itself_with_parent():
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)


@dataclass(frozen=True)
class WorkerPool:
    endpoint: str  # for --environment_type=EXTERNAL --environment_config=<endpoint>
    pid: int  # the pool's process; the SDK worker processes are its children


def _die_with_parent_gently() -> None:  # runs in the child, before exec
    with contextlib.suppress(Exception):  # SIGINT: the pool stops its workers, then exits
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGINT)


@contextlib.contextmanager
def worker_pool(timeout_s: float = 30.0) -> Iterator[WorkerPool]:
    """Start Beam's worker pool (``apache_beam.runners.worker.worker_pool_main``) in its
    own session, for Prism's EXTERNAL environments: Prism asks it for one SDK worker per
    environment of the pipeline, and it starts each as a Python process of its own
    (``pipelines.worker_boot``, which says why not the pool's default command). Stop, halt
    and pause reach the workers through a shared folder (``transforms.core.run.control``),
    named for the launcher too while the block lasts. Stopped (with its workers) when the
    block ends."""
    from transforms.core.run import control

    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="llm-enrich-control-") as folder:
        boot = Path(folder) / "boot-worker"
        boot.write_text(f"#!/bin/sh\nexec '{sys.executable}' -m pipelines.worker_boot \"$@\"\n")
        boot.chmod(0o755)
        environment = dict(os.environ, **{control.CONTROL_DIR_ENV: folder})
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "apache_beam.runners.worker.worker_pool_main",
                f"--service_port={port}",
                f"--container_executable={boot}",
            ],
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent_gently,
        )
        try:
            _wait_for_port(process, port, "the Beam worker pool", timeout_s)
            with control_folder(Path(folder)):
                yield WorkerPool(f"localhost:{port}", process.pid)
        finally:
            process.send_signal(signal.SIGINT)  # it stops its workers (atexit), then exits
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


FLINK_PARALLELISM = 4  # deploy/flink.sh: two TaskManagers with two slots each
# Replay on the local cluster runs streaming, like run: Flink's batch mode needs shuffle
# buffers and off-heap memory the small TaskManagers of deploy/flink.sh do not have (512
# network buffers per sort-shuffle; a 64 MB batch-shuffle pool), while the streaming path
# drains the bounded ranges the same way and fires the GroupByKey and the side input when
# the watermark passes the end of input. At parallelism 4 its graph (two readers, a side
# input, a GroupByKey) ran a TaskManager out of direct memory (128 MB: the gRPC buffers of
# the SDK workers' data channels); 2 is enough for a replay.
FLINK_REPLAY_ARGS = ("--parallelism=2",)


class FlinkNotReady(EnrichError, RuntimeError):
    """deploy/flink.sh has not installed the boot program, or its job server is not up."""


def flink_job_endpoint() -> str:
    """Beam's Flink job server started by ``deploy/flink.sh start`` (same port variable)."""
    return f"127.0.0.1:{os.environ.get('LLM_ENRICH_FLINK_JOB_PORT', '18099')}"


# Variables a worker is given from the launcher's environment: where secrets are read from
# (a folder, not a secret). Provider keys themselves are not copied into the worker's
# script: a TaskManager's workers resolve them from its own environment or from that folder.
WORKER_PASSED_ENVIRONMENT = ("LLM_ENRICH_SECRETS_DIR",)


# The boot program, with its TaskManager watched: a TaskManager killed with -9 (or by the OOM
# killer) stops nothing on its own, and the boot program restarts a Python worker that lost
# its runner, so the worker would stay forever, orphaned. A TERM from the TaskManager (the
# job ended) is passed on; the boot program stops its Python workers on TERM.
_WATCHED_BOOT = """
taskmanager=$PPID
"BOOT" --semi_persist_dir="$scratch" "$@" &
worker=$!
trap 'kill -TERM "$worker" 2>/dev/null' TERM INT
while kill -0 "$worker" 2>/dev/null; do
  if ! kill -0 "$taskmanager" 2>/dev/null; then
    kill -TERM "$worker" 2>/dev/null
    break
  fi
  sleep 1 &
  wait $!
done
wait "$worker"
"""


@contextlib.contextmanager
def flink_workers(
    beam_args: Sequence[str] = (), family: str = "llm-enrich:run:task"
) -> Iterator[list[str]]:
    """The Beam arguments that run a pipeline on the local Flink cluster
        (``deploy/flink.sh start``): its job server, a parallelism over both TaskManagers
        (unless ``beam_args`` sets one) and PROCESS SDK workers. Each worker is the boot
        program behind a small script written here: this interpreter's folder first on
        ``PATH`` (``python`` with apache_beam and the project's packages), this checkout on
        ``PYTHONPATH``, no virtualenv of the boot program's own, a scratch folder per worker
    (its working folder too: the boot program writes the job's options file there),
        and ``LLM_ENRICH_CONTROL_DIR`` naming a folder through which stop and halt reach the
        workers (``transforms.core.run.control``), as for a local worker pool. The script
        stops its worker when the TaskManager that started it dies. The folder is the run's
        folder (``pipelines.flink_jobs.RunFolder``: the launcher's pid and heartbeat), and the
        job is named for its ``family`` and the run (``--job_name``), so that a job whose
        launcher is gone stops itself and is found by the next run; a launcher that stops
        waiting for its job (it lost the job server, or was interrupted) cancels it through
        Flink's REST API. Valid until the block ends (the folder is removed)."""
    from pipelines.flink_jobs import RunFolder, job_name
    from transforms.core.run import control

    boot = boot_location()
    if not boot.is_file():
        raise FlinkNotReady(f"Beam's boot program is not at {boot}: run deploy/flink.sh install")
    endpoint = flink_job_endpoint()
    host, port = endpoint.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), 2).close()
    except OSError as exc:
        raise FlinkNotReady(
            f"no Beam Flink job server at {endpoint} ({exc.strerror or exc}): "
            "run deploy/flink.sh start"
        ) from exc
    checkout = Path(__file__).resolve().parents[1]
    run_id = uuid.uuid4().hex[:12]
    with RunFolder(run_id) as run_folder:
        folder = str(run_folder.path)
        exports = {
            "PATH": f"{Path(sys.executable).parent}:${{PATH}}",
            "PYTHONPATH": str(checkout),
            "RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT": "1",
            control.CONTROL_DIR_ENV: folder,
            **{k: os.environ[k] for k in WORKER_PASSED_ENVIRONMENT if k in os.environ},
        }
        lines = [f'export {name}="{value}"' for name, value in exports.items()]
        script = Path(folder) / "boot-worker"
        script.write_text(
            "#!/bin/sh\n"
            + "\n".join(lines)
            + f'\nscratch=$(mktemp -d "{folder}/worker.XXXXXX")'
            # the boot program writes pipeline_options.json into its working folder
            + '\ncd "$scratch" || exit 1'
            + _WATCHED_BOOT.replace("BOOT", str(boot))
        )
        script.chmod(0o755)
        args = [
            "--runner=PortableRunner",
            f"--job_endpoint={endpoint}",
            "--environment_type=PROCESS",
            f'--environment_config={{"command": "{script}"}}',
        ]
        if not any(a.startswith("--parallelism") for a in beam_args):
            args.append(f"--parallelism={FLINK_PARALLELISM}")
        name = _option(beam_args, "--job_name")
        if name is None:
            name = job_name(family, run_id)
            args.append(f"--job_name={name}")
        with control_folder(Path(folder)):
            try:
                yield args
            except BaseException:
                _cancel_on_flink(name)
                raise


@contextlib.contextmanager
def control_folder(folder: Path) -> Iterator[None]:
    """Name ``folder`` as this process's control folder while the block lasts (the
    launcher's ``RunControl`` then shares stop, halt and pause through it with the workers
    the runner started with the same folder)."""
    from transforms.core.run.control import CONTROL_DIR_ENV

    before = os.environ.get(CONTROL_DIR_ENV)
    os.environ[CONTROL_DIR_ENV] = str(folder)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(CONTROL_DIR_ENV, None)
        else:
            os.environ[CONTROL_DIR_ENV] = before


def _option(args: Sequence[str], name: str) -> str | None:
    """The value of ``--name=value`` or ``--name value`` in ``args`` (the last one)."""
    found = None
    for index, arg in enumerate(args):
        if arg.startswith(f"{name}="):
            found = arg.split("=", 1)[1]
        elif arg == name and index + 1 < len(args):
            found = args[index + 1]
    return found


def _cancel_on_flink(job_name: str) -> None:
    """The launcher stopped waiting for its job (it lost the job server, or was interrupted):
    a job that goes on running on Flink would race the next run for the same records, so
    cancel it through Flink's REST API."""
    from pipelines.flink_jobs import cancel_jobs_named, rest_url

    try:
        cancelled = cancel_jobs_named(job_name)
    except OSError as exc:
        print(
            f"llm-enrich: could not cancel the Flink job {job_name} ({exc}); cancel it in "
            f"Flink's UI ({rest_url()}) before running again",
            file=sys.stderr,
        )
        return
    if cancelled:
        print(
            f"llm-enrich: cancelled the Flink job {job_name} ({', '.join(cancelled)}) through "
            "Flink's REST API",
            file=sys.stderr,
        )


def pipeline_options(
    beam_args: Sequence[str],
    *,
    streaming: bool,
    job_endpoint: str | None = None,
    pool: WorkerPool | None = None,
) -> PipelineOptions:
    """The user's Beam arguments, with Prism as the default runner (at ``job_endpoint`` if
    given; its SDK workers from ``pool`` if given, else LOOPBACK threads in this process).
    The enrich stage runs streaming (drain or follow) and commits as it goes; replay runs
    in batch."""
    args = list(beam_args)
    if not any(a.startswith("--runner") for a in args):
        args.append("--runner=PrismRunner")
        if job_endpoint:
            args.append(f"--job_endpoint={job_endpoint}")
        else:
            args.append(f"--prism_location={_installed_prism()}")
        if pool is not None:
            args += ["--environment_type=EXTERNAL", f"--environment_config={pool.endpoint}"]
        if pool is not None or not streaming:  # runs whose commit step is stateful
            args.append(f"--experiments={PRISM_NO_SPLITS}")
    if streaming and "--streaming" not in args:
        args.append("--streaming")
    if not any(a.startswith(("--job_server_timeout", "--job-server-timeout")) for a in args):
        # Beam opens the job's state stream with this as its gRPC deadline (default 300 s):
        # any run longer than that would end in DEADLINE_EXCEEDED while the job goes on.
        args.append(f"--job_server_timeout={JOB_STREAM_DEADLINE_S}")
    return PipelineOptions(args)


# Prism (2.77) splits a bundle that made no progress for a tick (100 ms) and runs the rest
# as a new bundle at once; for a stateful step it releases the keys of the rest although
# the first part still holds them, so two bundles of one key run together, each on the
# state as it was before, and the last to finish overwrites the other's. The commit step
# (``transforms.beam.commit``) lost a partition's progress that way on a worker pool when
# a Kafka commit or a worker's first bundle stalled it: a drain ended with settled offsets
# left uncommitted (exit 1). Replay's commit step runs in batch on LOOPBACK workers, where
# a stateful step lost its count the same way. The readers refuse dynamic splits
# already. Fused runs (LOOPBACK, streaming) commit without Beam state
# (``transforms.beam.settle``) and keep Prism's splits.
PRISM_NO_SPLITS = "prism_disable_sdf_split"
JOB_STREAM_DEADLINE_S = 10 * 365 * 24 * 3600  # a run may follow a topic for years


def in_one_process(options: PipelineOptions) -> bool:
    """Readers and enrichment share a process (Prism with LOOPBACK workers, or the
    DirectRunner): process-wide backpressure between them works."""
    from apache_beam.options.pipeline_options import StandardOptions

    runner = str(options.view_as(StandardOptions).runner or "")
    if runner.endswith("DirectRunner"):
        return True
    return fused(options)


def fused(options: PipelineOptions) -> bool:
    """Prism with LOOPBACK workers: the readers and the processing steps run fused, in
    this process, so a bundle may leave slow calls to later ones
    (``transforms.beam.outstanding``). Not the DirectRunner: it may fall back to a runner
    that does not fuse them."""
    from apache_beam.options.pipeline_options import PortableOptions, StandardOptions

    runner = str(options.view_as(StandardOptions).runner or "")
    environment = options.view_as(PortableOptions).environment_type
    return runner.endswith("PrismRunner") and environment in (None, "LOOPBACK")
