"""`make lab` serves JupyterLab with both course kernels."""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

from course_utils import config


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fetch(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read()


@pytest.mark.slow
def test_make_lab_serves_jupyterlab_with_both_kernels(tmp_path):
    port, token = free_port(), "course-test-token"
    args = f"--no-browser --ip=127.0.0.1 --port={port} --ServerApp.token={token} --ServerApp.port_retries=0"
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path), MAKEFLAGS="")
    server = subprocess.Popen(
        ["make", "-s", "lab", f"LAB_ARGS={args}"],
        cwd=config.REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline, status, page = time.monotonic() + 90, None, b""
        while time.monotonic() < deadline:
            try:
                status, page = fetch(f"http://127.0.0.1:{port}/lab?token={token}")
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail("make lab exited before serving")
                time.sleep(1)
        assert status == 200 and b"JupyterLab" in page
        _, specs = fetch(f"http://127.0.0.1:{port}/api/kernelspecs?token={token}")
        names = set(json.loads(specs)["kernelspecs"])
        assert {config.CPU_KERNEL, config.GPU_KERNEL} <= names
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
