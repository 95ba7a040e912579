"""The socklab kernel gives a learner without root a network of their own.

Each test runs this file as a script, as user nobody (tests/unprivileged.py),
and the script starts "Python 3 (socklab)" kernels the way Jupyter does:

* ``lessons``: lessons 02, 03, 08 and 11 -- raw sockets, packet capture, ping
  -- run in a socklab kernel as nobody, live (every output as stored, made by
  root, but for the cells that say who the learner is; none of them a
  recording), in a network namespace that is not the script's own;
* ``same-port``: two kernels listen on 127.0.0.1:8080 at once, each reaching
  its own server;
* ``shell``: ``python -m socklab shell KERNEL`` opens a shell in that kernel's
  network, where the kernel's listener is seen;
* ``refused``: where Linux refuses new namespaces (here: inside a user
  namespace whose limits are 0), the kernel runs as a plain kernel, says so once,
  and the same lessons run without an error nobody expected.
"""

import json
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
LIVE_LESSONS = ["02-socket-types", "03-tcp-server", "08-options-and-more", "11-raw-sockets"]
LESSONS = ["03-tcp-server", "11-raw-sockets"]  # where the private network is refused
TIMEOUT = 300  # seconds for a script; each lesson takes seconds
PROBE = ("import json as _j, os as _o, socklab.kernel as _k\n"
         "print(_j.dumps({'net': _o.readlink('/proc/self/ns/net'), 'uid': _o.getuid(),"
         " 'user': _o.readlink('/proc/self/ns/user'), 'network': _k.network()}))")
SAME_PORT = """
import socket, socklab
server = socklab.TCPEchoServer(port=8080, name="mine")
with socket.create_connection(("127.0.0.1", 8080), timeout=5) as sock:
    sock.sendall(WORD)
    print(sock.recv(100).decode())
"""
# Cells whose output says who the learner is, which differs on purpose: in the
# private network the learner is root of a user namespace that maps one uid and
# one group, and the kernel allows that group ping sockets there.
WHO_YOU_ARE = {
    "privileges-report-py": "the ping socket is allowed",
    "privileges-others-py": "no user nobody in the namespace",
    "ping-range-py": "the range is the learner's group",
    'ping-c-code': "a ping socket opens",
    "ping-change-py": "ping sockets are allowed already",
    "cleanup-py": "the range it finds is the kernel's",
}
NO_NAMESPACES = ("echo 0 > /proc/sys/user/max_user_namespaces && "
                 "echo 0 > /proc/sys/user/max_net_namespaces && exec \"$@\"")

pytestmark = pytest.mark.skipif(
    not pathlib.Path(sys.prefix, "share", "jupyter", "kernels", "socklab").is_dir(),
    reason="the socklab kernel is not installed: run make (python -m socklab.kernel install)")


def run_script(tmp_path, mode, wrap=(), lessons=()):
    """Run this file as nobody in ``mode`` (on ``lessons``); its JSON report."""
    import unprivileged  # tests/: root only, so imported here

    if not unprivileged.can_become_nobody():
        pytest.skip("becoming nobody needs root (CI runs as root)")
    report = tmp_path / "nobody-home" / "report.json"
    done = unprivileged.run([*wrap, sys.executable, __file__, mode, str(report), *lessons],
                            tmp_path,
                            cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(report.read_text())


@pytest.mark.parametrize("lesson", LIVE_LESSONS)  # one a test: they spread over workers
def test_lessons_run_live_in_a_private_network_as_nobody(tmp_path, lesson):
    report = run_script(tmp_path, "lessons", lessons=[lesson])
    assert report["uid"] == 65534
    ran = report[lesson]
    assert ran["probe"]["network"] == ["private", ""]
    assert ran["probe"]["uid"] == 0  # root inside its user namespace
    assert ran["probe"]["net"] != report["net"], "the kernel shares the script's network"
    assert ran["recorded"] == [], f"{lesson} showed recordings: cells {ran['recorded']}"
    assert ran["problems"] == [], "\n".join(ran["problems"])


def test_two_kernels_listen_on_the_same_port(tmp_path):
    report = run_script(tmp_path, "same-port")
    assert report["answers"] == ["ada", "alan"]
    assert report["nets"][0] != report["nets"][1]


def test_a_shell_joins_a_kernels_network(tmp_path):
    report = run_script(tmp_path, "shell")
    assert report["exit"] == 0, report["stderr"]
    assert report["net"] == report["kernel_net"]  # the shell's, read inside it
    assert f":{8080:04X} " in report["tcp"]  # the kernel's listener, in /proc/net/tcp
    assert "a shell in the network of kernel" in report["stderr"]


def test_where_namespaces_are_refused_the_kernel_is_plain_and_says_so(tmp_path):
    report = run_script(tmp_path, "refused", wrap=["unshare", "--user", "--map-root-user",
                                                   "sh", "-c", NO_NAMESPACES, "sh"])
    for lesson in LESSONS:
        ran = report[lesson]
        assert ran["probe"]["network"][0] == "shared"
        assert "user.max_user_namespaces" in ran["probe"]["network"][1]
        assert ran["probe"]["net"] == report["net"]
        assert ran["errors"] == [], f"{lesson}: unexpected errors in cells {ran['errors']}"
        said = ran["first_stderr"]
        assert said.count("socklab: no private network for this kernel") == 1, said
    assert "user.max_user_namespaces" in report["doctor_says"]  # the doctor's reason
    assert report["11-raw-sockets"]["recorded"], "without a private network, lesson 11 shows recordings"


# Where a user namespace can be made but a network namespace cannot (as with
# Ubuntu's AppArmor restriction): the limit of network namespaces is 0, and the
# script runs as an ordinary user (uid 1000 of a namespace inside that one).
NO_NETWORK_NAMESPACES = ("echo 0 > /proc/sys/user/max_net_namespaces && exec unshare "
                         "--user --map-user=1000 --map-group=1000 -- \"$@\"")


def test_where_only_the_network_is_refused_the_kernel_stays_out_of_a_user_namespace(tmp_path):
    report = run_script(tmp_path, "probe", wrap=["unshare", "--user", "--map-root-user",
                                                 "sh", "-c", NO_NETWORK_NAMESPACES, "sh"])
    probe = report["probe"]
    assert probe["network"][0] == "shared"
    assert "user.max_net_namespaces" in probe["network"][1]
    assert probe["user"] == report["user"], "the kernel entered a user namespace it cannot use"


# -- the script, run as nobody ---------------------------------------------------------

def run_lesson(name):
    import nbcompare

    stored, nb, probe = nbcompare.run_fresh(name, "socklab", PROBE, timeout=120)
    pairs = [(old, new) for old, new in zip(stored.cells, nb.cells) if old.cell_type == "code"]
    texts = [json.dumps(new.outputs) for _, new in pairs]
    first = next(new for _, new in pairs)
    return {
        "probe": probe,
        "problems": [f"cell {number}: {problem}" for number, (old, new) in enumerate(pairs)
                     if old.get("id") not in WHO_YOU_ARE
                     and (problem := nbcompare.problem(old, new.outputs))],
        "errors": [number for number, (old, new) in enumerate(pairs)
                   if nbcompare.unexpected_error(old, new.outputs)],
        "recorded": [number for number, text in enumerate(texts) if "(recorded " in text],
        "first_stderr": "".join(out.get("text", "") for out in first.outputs
                                if out.get("name") == "stderr"),
    }


def same_port():
    from jupyter_client.manager import start_new_kernel

    kernels = [start_new_kernel(kernel_name="socklab") for _ in range(2)]
    answers, nets = [], []
    try:
        for (_, client), word in zip(kernels, ["ada", "alan"]):
            shown = []
            client.execute_interactive(f"WORD = {word.encode()!r}\n" + SAME_PORT + PROBE,
                                       timeout=60, output_hook=lambda msg: shown.append(msg))
            text = "".join(m["content"].get("text", "") for m in shown
                           if m["msg_type"] == "stream")
            errors = [m["content"] for m in shown if m["msg_type"] == "error"]
            assert not errors, errors
            answer, probe = text.splitlines()
            answers.append(answer)
            nets.append(json.loads(probe)["net"])
    finally:
        for manager, client in kernels:
            client.stop_channels()
            manager.shutdown_kernel(now=True)
    return {"answers": answers, "nets": nets}


def probe_one_kernel():
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name="socklab")
    try:
        shown = []
        client.execute_interactive(PROBE, timeout=60, output_hook=shown.append)
        return json.loads("".join(m["content"].get("text", "") for m in shown
                                  if m["msg_type"] == "stream" and m["content"]["name"] == "stdout"))
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def shell():
    import os
    import subprocess

    from jupyter_client.manager import start_new_kernel

    from socklab import kernel

    manager, client = start_new_kernel(kernel_name="socklab")
    try:
        client.execute_interactive(
            "import socklab\nserver = socklab.TCPEchoServer(port=8080, name='in-the-kernel')",
            timeout=60)
        (pid,) = [pid for pid, connection in kernel.running_kernels().items()
                  if connection == manager.connection_file]
        done = subprocess.run(
            [sys.executable, "-m", "socklab", "shell", os.path.basename(manager.connection_file)],
            input="readlink /proc/self/ns/net; cat /proc/net/tcp\n", capture_output=True,
            text=True, timeout=60, env={**os.environ, "SHELL": "/bin/sh"})
        net, _, tcp = done.stdout.partition("\n")
        return {"exit": done.returncode, "stderr": done.stderr, "net": net, "tcp": tcp,
                "kernel_net": os.readlink(f"/proc/{pid}/ns/net")}
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def main(mode, report_path, *lessons):
    import os

    sys.path.insert(0, str(ROOT / "tests"))
    report = {"uid": os.getuid(), "net": os.readlink("/proc/self/ns/net"),
              "user": os.readlink("/proc/self/ns/user")}
    if mode == "probe":
        report["probe"] = probe_one_kernel()
    elif mode == "same-port":
        report.update(same_port())
    elif mode == "shell":
        report.update(shell())
    else:
        if mode == "refused":
            from socklab import kernel
            report["doctor_says"] = kernel.private_network_refused()
        report.update({lesson: run_lesson(lesson) for lesson in lessons or LESSONS})
    pathlib.Path(report_path).write_text(json.dumps(report))


if __name__ == "__main__":
    main(*sys.argv[1:])
