"""deploy/llm.sh: a portable build, cached by its flags, and one line when the server dies."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import subprocess
from pathlib import Path

import openai

from tests.conftest import REPO
from tests.integration.conftest import LLM_URL


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_server_that_dies_at_start_is_explained_in_one_line(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "LLM_ENRICH_LLM_PORT": str(_free_port()),
        "LLM_ENRICH_STATE": str(tmp_path),
        "LLM_ENRICH_LLM_ARGS": "--no-such-flag",
    }
    done = subprocess.run(
        ["bash", str(REPO / "deploy/llm.sh"), "start"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("llm.sh: llama-server exited at start: ")
    assert "--no-such-flag" in lines[0]


def test_the_server_is_a_portable_build_cached_under_its_flags(llm_server: None) -> None:
    script = (REPO / "deploy/llm.sh").read_text()
    flags = re.search(r'^BUILD_FLAGS="([^"]+)"', script, re.MULTILINE)
    assert flags and "-DGGML_NATIVE=OFF" in flags[1] and "-DGGML_AVX2=ON" in flags[1]
    key = hashlib.sha256(f"{flags[1]}\n".encode()).hexdigest()[:12]
    path = subprocess.run(
        ["bash", str(REPO / "deploy/llm.sh"), "path"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert path.endswith(f"-{key}/bin/llama-server") and Path(path).is_file()
    # and it serves: a native build crashes here on CPUs with AMX (ggml_backend_amx_mul_mat)
    reply = openai.OpenAI(base_url=LLM_URL, api_key="x", max_retries=0).chat.completions.create(
        model="smollm2-135m", messages=[{"role": "user", "content": "Say hi."}], max_tokens=5
    )
    assert reply.choices and reply.usage and reply.usage.completion_tokens > 0
