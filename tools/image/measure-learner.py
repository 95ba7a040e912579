"""One learner's memory and CPU in the course's container, while lessons run.

    python3 tools/image/measure-learner.py [LESSON...]   (default: 05-echo 10-concurrency)

For docs/hub.md ("Zero to JupyterHub"): what to give each learner's pod.  The
container is started as the README says (JupyterLab on lesson 00, the README's
flags); once JupyterLab answers, its memory is read idle.  Then each lesson
runs in turn, top to bottom, in the lessons' kernel, by
tools/image/run-lessons.py through `docker exec`, while this script reads the
container's cgroup every SAMPLE seconds: memory as `docker stats` counts it
(usage less the page cache the kernel may drop: inactive files), and CPU time.

The runner stands in for the learner's browser but lives in the container, so
its own peak memory is reported apart and taken off.  Needs a running Docker
engine, the image (make test-image builds it), and the host's cgroup files
(root, cgroup v1 or v2).  Only the standard library: it runs on the host.
"""

import json
import pathlib
import re
import subprocess
import sys
import threading
import time

IMAGE = "socklab:test"
FLAGS = ["--security-opt", "seccomp=unconfined", "--security-opt", "systempaths=unconfined"]
SAMPLE = 0.2          # seconds between readings of the cgroup
START_LIMIT = 180     # seconds for JupyterLab to print its link
MB = 1e6


def docker(*args, **kwargs):
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True,
                          **kwargs).stdout.strip()


class Cgroup:
    """The container's memory and CPU counters, cgroup v1 or v2."""

    def __init__(self, container_id):
        root = pathlib.Path("/sys/fs/cgroup")
        v1 = root / "memory" / "docker" / container_id
        if v1.is_dir():
            self.memory, self.cpu = v1, root / "cpuacct" / "docker" / container_id
            self.v2 = False
        else:
            for folder in (root / "system.slice" / f"docker-{container_id}.scope",
                           root / "docker" / container_id):
                if folder.is_dir():
                    self.memory = self.cpu = folder
                    self.v2 = True
                    break
            else:
                sys.exit(f"no cgroup folder found for container {container_id[:12]}")

    def stat(self, name):
        text = (self.memory / "memory.stat").read_text()
        return int(re.search(rf"^{name} (\d+)$", text, re.M).group(1))

    def used_bytes(self):
        """Memory in use as `docker stats` shows it: usage less inactive file pages."""
        if self.v2:
            usage = int((self.memory / "memory.current").read_text())
            return usage - self.stat("inactive_file")
        usage = int((self.memory / "memory.usage_in_bytes").read_text())
        return usage - self.stat("total_inactive_file")

    def cpu_seconds(self):
        if self.v2:
            text = (self.cpu / "cpu.stat").read_text()
            return int(re.search(r"^usage_usec (\d+)$", text, re.M).group(1)) / 1e6
        return int((self.cpu / "cpuacct.usage").read_text()) / 1e9


class Sampler(threading.Thread):
    """Reads the cgroup every SAMPLE seconds: peak memory, busiest CPU interval."""

    def __init__(self, cgroup):
        super().__init__(daemon=True)
        self.cgroup, self.done = cgroup, threading.Event()
        self.peak, self.busiest = 0, 0.0

    def run(self):
        last_time, last_cpu = time.monotonic(), self.cgroup.cpu_seconds()
        while not self.done.wait(SAMPLE):
            self.peak = max(self.peak, self.cgroup.used_bytes())
            now, cpu = time.monotonic(), self.cgroup.cpu_seconds()
            self.busiest = max(self.busiest, (cpu - last_cpu) / (now - last_time))
            last_time, last_cpu = now, cpu


def wait_for_lab(container):
    deadline = time.monotonic() + START_LIMIT
    while time.monotonic() < deadline:
        logs = subprocess.run(["docker", "logs", container], capture_output=True,
                              text=True).stderr
        if re.search(r"http://127\.0\.0\.1:8888/\S*token=", logs):
            return
        time.sleep(0.5)   # polling the log for the line, up to the limit
    sys.exit("JupyterLab printed no link in time")


def main(lessons):
    lessons = lessons or ["05-echo", "10-concurrency"]
    container = docker("run", "-d", *FLAGS, IMAGE)
    try:
        wait_for_lab(container)
        cgroup = Cgroup(docker("inspect", "-f", "{{.Id}}", container))
        idle = cgroup.used_bytes()
        print(f"JupyterLab, idle, lesson 00 not yet opened: {idle / MB:.0f} MB")
        for lesson in lessons:
            sampler = Sampler(cgroup)
            start_cpu, start = cgroup.cpu_seconds(), time.monotonic()
            sampler.start()
            out = docker("exec", "-w", "/opt/socklab", container,
                         "python", "tools/image/run-lessons.py", "--one", lesson)
            sampler.done.set()
            sampler.join()
            wall, cpu = time.monotonic() - start, cgroup.cpu_seconds() - start_cpu
            report = json.loads(out.splitlines()[-1])
            probe = report["probe"]
            runner = probe["runner_peak_mb"]
            print(f"{lesson}: {wall:.0f} s; container peak {sampler.peak / MB:.0f} MB"
                  f" (less the runner's {runner} MB: {sampler.peak / MB - runner:.0f} MB);"
                  f" kernel peak {probe['kernel_peak_mb']} MB; CPU {cpu:.1f} s in all"
                  f" (mean {cpu / wall:.2f} cores, busiest {SAMPLE} s: {sampler.busiest:.2f});"
                  f" network {probe['network']}; problems: {len(report['problems'])}")
    finally:
        docker("rm", "-f", container)


if __name__ == "__main__":
    main(sys.argv[1:])
