"""A local Ray cluster of two nodes on 127.0.0.1 (a head and a second ``ray start --address`` node, one
CPU each), started and stopped by the test that uses it; no fixed ports."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_start(args: list[str], log: Path, extra_env: dict[str, str]) -> subprocess.Popen:
    ray = str(Path(sys.executable).parent / "ray")
    ports = [f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
             f"--runtime-env-agent-port={free_port()}", f"--metrics-export-port={free_port()}",
             f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}"]
    cmd = [ray, "start", "--block", "--num-cpus=1", "--disable-usage-stats", *ports, *args]
    env = {**os.environ, **RAY_ENV, **extra_env}
    return subprocess.Popen(cmd, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True, env=env)


#: Ray 2.x clusters started by ``ray start`` require a token by default while drivers do not send one
#: unless told to; this throwaway test cluster runs without (a real one: share the token, docs/scale-out.md)
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
DRIVER_ENV = RAY_ENV


def alive_nodes(address: str) -> int:
    code = ("import ray, logging; ray.init(address=%r, logging_level=logging.ERROR, log_to_driver=False); "
            "print(sum(n['Alive'] for n in ray.nodes()))" % address)
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                             env={**os.environ, **DRIVER_ENV})
    except subprocess.TimeoutExpired:
        return 0
    try:
        return int(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return 0


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the process group this test started (``ray start --block`` stops its node on it)."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


class TwoNodeCluster:
    def __init__(self, logs: Path) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen] = []
        self.logs = logs

    def start(self, timeout_s: float = 180.0) -> "TwoNodeCluster":
        try:
            return self._start(timeout_s)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout_s: float) -> "TwoNodeCluster":
        # Ray resolves 127.0.0.1 to the machine's own address; both nodes and the drivers agree on it
        self.procs.append(_ray_start(["--head", f"--port={self.port}",
                                      "--include-dashboard=false", f"--dashboard-port={free_port()}",
                                      f"--ray-client-server-port={free_port()}"], self.logs / "head.log", {}))
        deadline = time.monotonic() + timeout_s
        while alive_nodes(self.address) < 1:
            if time.monotonic() > deadline or self.procs[0].poll() is not None:
                raise RuntimeError(f"ray head did not start: {(self.logs / 'head.log').read_text()[-2000:]}")
            time.sleep(2)
        self.procs.append(_ray_start([f"--address={self.address}"], self.logs / "node2.log", {}))
        while alive_nodes(self.address) < 2:
            if time.monotonic() > deadline or self.procs[1].poll() is not None:
                raise RuntimeError(f"second ray node did not join: {(self.logs / 'node2.log').read_text()[-2000:]}")
            time.sleep(2)
        return self

    def stop(self) -> None:
        for p in reversed(self.procs):
            stop(p)
