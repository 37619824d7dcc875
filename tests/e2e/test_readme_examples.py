"""Every shell and Python example of the README, run as written and in order against the run
command (started as tests/e2e/test_run_command.py starts it: its own ports and data directory).

The examples are the README's fenced ```sh and ```python blocks, read from the file; a block
that is not run says why in an `<!-- example: not run ... -->` line right above it. They run from
the repository's root as one shell session: each shell block starts with the environment the
previous one left (so `$API_KEY` from step 1 reaches the later steps, also the Python ones). The
only change made to their text is the port of each API and of the broker (`127.0.0.1:8001` ->
this run's `REGISTRY_API_PORT`, ...). Between blocks the test waits for what a reader waits for:
the Kafka door's mutations to be applied, and the access service to have caught up before the
audit reads the log."""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.test_run_command import REPO, RunCommand
from tests.support import wait_until

README = REPO / "README.md"
NOT_RUN = "<!-- example: not run"
DEFAULT_PORTS = {"8001": "REGISTRY_API_PORT", "8002": "AUTH_API_PORT", "8003": "ACCESS_API_PORT",
                 "8004": "RETENTION_API_PORT", "9092": "BROKER_PORT"}

pytestmark = pytest.mark.timeout(400)


def examples(text: str) -> list[tuple[str, str, int]]:
    """(language, code, line) of every ```sh / ```python block not marked as not run."""
    found = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        fence = re.match(r"^```(sh|python)\s*$", lines[index])
        if fence:
            end = lines.index("```", index + 1)
            above = next((line for line in reversed(lines[:index]) if line.strip()), "")
            if not above.startswith(NOT_RUN):
                found.append((fence.group(1), "\n".join(lines[index + 1:end]), index + 1))
            index = end
        index += 1
    return found


def test_the_readme_examples_are_found_and_only_the_run_command_block_is_skipped():
    text = README.read_text(encoding="utf-8")
    blocks = examples(text)
    assert [language for language, _, _ in blocks] == ["sh", "sh", "python", "python", "sh", "sh", "sh"]
    skipped = [line for line in text.splitlines() if line.startswith(NOT_RUN)]
    assert len(skipped) == 1 and "deploy/run.sh" in text.split(NOT_RUN)[1].split("```")[1]


def localised(code: str, run: RunCommand) -> str:
    return re.sub(r"127\.0\.0\.1:(8001|8002|8003|8004|9092)\b",
                  lambda m: f"127.0.0.1:{run.ports[DEFAULT_PORTS[m.group(1)]]}", code)


def mutation_status(run: RunCommand, api_key: str, mutation_id: str) -> str | None:
    request = urllib.request.Request(f"{run.registry}/v1/mutations/{mutation_id}",
                                     headers={"Authorization": f"Bearer {api_key}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return str(json.loads(response.read())["status"])
    except urllib.error.HTTPError:
        return None


def test_every_readme_example_runs_as_written_against_the_run_command(tmp_path):
    run = RunCommand(tmp_path / "data")
    env = run.env()
    env.pop("VIRTUAL_ENV", None)
    # The audit's broker, as KAFKA_BOOTSTRAP_SERVERS names it (its default is the run command's 9092).
    env["KAFKA_BOOTSTRAP_SERVERS"] = run.bootstrap
    # As a reader's shell on this machine: the system's tools, python3 among them.
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    state = tmp_path / "env"
    outputs: list[str] = []
    try:
        run.start()
        # The run command makes its data directory ignore everything in it (keys, databases).
        assert (run.data_dir / ".gitignore").read_text().strip() == "*"
        for language, code, line in examples(README.read_text(encoding="utf-8")):
            code = localised(code, run)
            if "samenveilig-audit" in code:
                # What a reader waits for before an audit: the access service has applied the log.
                audit = [str(REPO / ".venv" / "bin" / "samenveilig-audit"), "--json", "replay",
                         "--access-db", f"sqlite:///{run.data_dir}/access.sqlite"]
                replays: list[subprocess.CompletedProcess[bytes]] = []

                def caught_up(audit: list[str] = audit, env: dict[str, str] = env,
                              replays: list[subprocess.CompletedProcess[bytes]] = replays) -> bool:
                    replays.append(subprocess.run(audit, cwd=REPO, env=env, capture_output=True, timeout=120))
                    return replays[-1].returncode == 0

                try:
                    wait_until(caught_up, timeout_s=90, interval_s=1, message="the access service to catch up")
                except AssertionError:
                    raise AssertionError(replays[-1].stdout.decode()[-3000:] + replays[-1].stderr.decode()[-3000:]
                                         ) from None
            if language == "sh":
                script = f"set -euo pipefail\n{code}\nenv -0 > {state}\n"
                done = subprocess.run(["bash", "-c", script], cwd=REPO, env=env, capture_output=True, timeout=300)
            else:
                done = subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-c", code], cwd=REPO, env=env,
                                      capture_output=True, timeout=120)
            outputs.append(f"README line {line} ({language}):\n{done.stdout.decode()}\n{done.stderr.decode()}")
            assert done.returncode == 0, outputs[-1]
            if language == "sh":
                env = dict(item.split("=", 1) for item in state.read_bytes().decode().split("\0") if "=" in item)
            for mutation_id in re.findall(r'"mutation_id": "([\w-]+)"', code) if "KafkaProducer" in code else ():
                wait_until(lambda mid=mutation_id, key=env["API_KEY"]: mutation_status(run, key, mid) == "accepted",
                           timeout_s=60, message=f"{mutation_id} through the Kafka door")
        everything = "\n".join(outputs)
        # What the examples say they answer, they answered.
        assert '"status":"scheduled"' in everything.replace(" ", "")
        assert "'staff_id':" in everything  # the Python example printed the entity ids
        assert '"staff_ref":"emp-1043"' in everything.replace(" ", "")
        assert '"dossier_ref":"hv-2026-0001"' in everything.replace(" ", "")
        assert (run.data_dir / "rapport.html").read_text(encoding="utf-8").startswith("<!doctype html>")
        assert "Traceback" not in run.output.read_text()
    finally:
        if run.process and run.process.poll() is None:
            run.ctrl_c()


def test_examples_reads_blocks_and_their_markers():
    text = "intro\n```sh\necho a\n```\n<!-- example: not run: why -->\n```python\nprint(1)\n```\n```text\nx\n```\n"
    assert examples(text) == [("sh", "echo a", 2)]
    assert Path(__file__).name == "test_readme_examples.py"
