"""A real ``omniactor serve`` process on a free loopback port, serving the tiny trained checkpoint."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

TOKEN = "test-token-0123456789abcdef"


def start_server(checkpoint, tmp_path, *extra):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    command = [sys.executable, "-m", "omniactor.cli", "serve", "--checkpoint", str(checkpoint), "--port", "0",
               "--token-file", str(token_file), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = process.stdout.readline()
    if "http://" not in line:
        process.kill()
        raise RuntimeError(f"the server did not start: {line}{process.stderr.read()[-3000:]}")
    url = line.split(" on ", 1)[1].split()[0]
    import httpx

    for _ in range(200):  # the port is bound before uvicorn answers
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("the server never answered /healthz")


@pytest.fixture(scope="module")
def server(trained_checkpoint, tmp_path_factory):
    """``(url, process)`` of a server with small limits: 1 MB bodies, 1,000,000 pixels, 40 sessions."""
    process, url = start_server(trained_checkpoint[0], tmp_path_factory.mktemp("serve"), "--max-body-mb", "1",
                                "--max-pixels", "1000000", "--max-sessions", "40", "--max-wait-ms", "20")
    yield url, process
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def client(server):
    from omniactor.serving import Client

    client = Client(server[0], token=TOKEN)
    yield client
    client.close()


def image(seed, size=64):
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
