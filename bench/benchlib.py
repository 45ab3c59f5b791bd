"""What the Python bench drivers share: starting `wasmpod serve` without racing it, stopping it,
and reading its metrics. Each driver keeps its own workload and report."""

import os
import re
import subprocess
import sys
import threading
import time
import urllib.request

# The pod settings a caller's environment could slip in under the flags a benchmark passes.
POD_ENV = ("CONCURRENT_RESOURCE_REQUEST", "QUEUE_DEPTH_RESOURCE_UNITS", "RESOURCE_UTILIZATION_THRESHOLD")


def clean_env():
    """This process's environment without wasmpod's settings, logging at warn."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WASMPOD_") and k not in POD_ENV}
    env["RUST_LOG"] = "warn"
    return env


def serve(wasmpod, serve_args, log_path, env, timeout=300):
    """Starts `wasmpod serve SERVE_ARGS` (which must listen on port 0) with stderr to `log_path`
    (created before the child starts) and waits for its Ready line: (process, base URL)."""
    log = open(log_path, "w")
    server = subprocess.Popen([wasmpod, "serve"] + serve_args, stdout=subprocess.PIPE, stderr=log,
                              text=True, env=env)
    deadline = time.monotonic() + timeout
    for line in server.stdout:
        m = re.match(r"Ready: serving on (http://\S+)", line)
        if m:
            threading.Thread(target=server.stdout.read, daemon=True).start()
            return server, m.group(1)
        if time.monotonic() > deadline:
            break
    stop(server)
    sys.exit(f"wasmpod did not start:\n{open(log_path).read()}")


def stop(server):
    """SIGTERM, then SIGKILL after 30 s."""
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def metrics(base):
    """Every `wasmpod_*` sample of /metrics: {series with labels: value}."""
    text = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("wasmpod_"):
            key, _, value = line.rpartition(" ")
            try:
                out[key] = float(value)
            except ValueError:
                pass
    return out
