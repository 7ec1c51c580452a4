"""CPU accounting for benchmarks: this process, its child processes (Prism), and a
sampling profile of this process split by what the time went to.

The profile is py-spy's (``py-spy record --format raw``; it samples every thread on CPU,
including the Beam worker threads that Prism's LOOPBACK mode runs in this process). Each
sample is charged to the innermost frame that belongs to a known component; frames of the
standard library's plumbing (asyncio, threading, sockets, selectors) are looked through,
so a ``socket.send`` made by kafka-python is Kafka's and one made by aiohttp is HTTP's.
``LLM_ENRICH_KEEP_PROFILE=FILE`` keeps py-spy's raw samples there, for a finer look.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# (component, pattern over a frame's file path), first match wins per frame
COMPONENTS = [
    ("HTTP client", r"/(aiohttp|yarl|multidict|httpx2?|httpcore|h11|openai|anyio|propcache)/"),
    ("JSON / validation", r"/(json|pydantic|pydantic_core|json_repair|jiter)/|/core/answers/"),
    ("Avro", r"/(fastavro|avro)/|/core/formats/"),
    ("Kafka", r"/(kafka|snappy|lz4|zstandard|crc32c)/|/transforms/kafka/"),
    ("Beam (Fn API, gRPC, coders)", r"/(apache_beam|grpc|google/protobuf)/"),
    ("prompt (Jinja2)", r"/(jinja2|markupsafe)/|/core/prompting/"),
    ("stage logic", r"/(transforms|pipelines)/"),
]
TRANSPARENT = re.compile(
    r"/(asyncio|concurrent|threading|selectors|socket|ssl|queue|contextlib|functools|"
    r"logging|weakref|typing|abc|enum|copy|collections)[/.]"
)
_FRAME = re.compile(r"^(?P<name>.*) \((?P<path>[^()]*):\d+\)$")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int | str) -> float:
    """A live process's peak resident memory (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(name: str) -> list[int]:
    """Live child processes of this one whose command name is ``name``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm, rest = stat.split("(", 1)[1].rsplit(")", 1)
        if comm == name and int(rest.split()[1]) == os.getpid():
            found.append(int(entry.name))
    return found


@contextmanager
def profiled(rate_hz: int = 100) -> Iterator[Counter[str]]:
    """Sample this process while the block runs; the yielded Counter is filled on exit
    with samples per component."""
    split: Counter[str] = Counter()
    spy = Path(sys.executable).with_name("py-spy")
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "raw.txt"
        process = subprocess.Popen(
            [
                str(spy),
                "record",
                "--pid",
                str(os.getpid()),
                "--rate",
                str(rate_hz),
                "--format",
                "raw",
                "--output",
                str(out),
                "--nonblocking",
                "--threads",
                "--full-filenames",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            yield split
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)
        if out.exists():
            split.update(_split(out.read_text()))
            if os.environ.get("LLM_ENRICH_KEEP_PROFILE"):
                Path(os.environ["LLM_ENRICH_KEEP_PROFILE"]).write_text(out.read_text())


def _split(raw: str) -> Counter[str]:
    split: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        split[_component(stack.split(";")[1:])] += int(count)
    return split


def _component(frames: list[str]) -> str:
    for frame in reversed(frames):  # innermost first
        match = _FRAME.match(frame)
        path = match.group("path") if match else frame
        if TRANSPARENT.search(path):
            continue
        for name, pattern in COMPONENTS:
            if re.search(pattern, path):
                return name
        if "site-packages" not in path and "/lib/python" in path:
            continue  # other standard library plumbing: charge the caller
        return "other"
    return "other"


def print_split(split: Counter[str], extra: dict[str, float]) -> None:
    """``extra``: CPU seconds of components outside this process (e.g. Prism)."""
    total = sum(split.values())
    if not total:
        print("profile   no samples (py-spy missing or not permitted?)")
        return
    print(f"profile   {total} samples of this process's CPU (py-spy):")
    for name, count in split.most_common():
        print(f"          {name:30s} {100 * count / total:5.1f} %")
    for name, seconds in extra.items():
        print(f"          outside this process: {name} {seconds:.1f} s CPU")
