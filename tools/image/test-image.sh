#!/usr/bin/env bash
# make test-image: the course in a container, as a learner on macOS or Windows
# runs it (README, "macOS and Windows").  Needs a running Docker engine; makes
# the Debian base image first where Docker Hub cannot be reached (as root).
#
#   1. the base image (tools/image/make-base.sh; kept once made), then the image;
#   2. with the README's flags, as the image's user (uid 1000): the doctor has
#      nothing missing, lessons 00 and 05 pass strict nbval, and lesson 11 (with
#      02 and 03, which need privileges too) runs live with every output as
#      stored but for the cells that say who the learner is (as
#      tests/test_kernel.py judges them for user nobody);
#   3. `docker run -p` as the README says: JupyterLab answers on the published
#      port (127.0.0.1, a port Docker picks) with lesson 00 there, a cell runs in
#      the kernel it starts, and the learner's work survives the container in
#      its volume;
#   4. with no extra flag: the doctor names the flags for what is missing, and
#      every lesson runs without a traceback (tools/image/run-lessons.py).
#
# Environment: SOCKLAB_BASE (default socklab-base:bookworm, made here; give
# debian:bookworm where Docker Hub answers), SOCKLAB_IMAGE (default
# socklab:test), NBVAL (the Makefile passes its own).  Containers and the
# volume this script makes are removed at the end; the images are kept, so a
# second run builds from Docker's cache.
set -euo pipefail
cd "$(dirname "$0")/../.."

BASE=${SOCKLAB_BASE:-socklab-base:bookworm}
IMAGE=${SOCKLAB_IMAGE:-socklab:test}
# The README's flags (docs/hub.md, measured): the engine's default seccomp
# profile refuses unshare(), and with it the lessons' kernel its network of its
# own; a read-only /proc/sys keeps the kernel from allowing ping sockets in it.
FLAGS=(--security-opt seccomp=unconfined --security-opt systempaths=unconfined)
# The Makefile's NBVAL, but for the kernel: --nbval-current-env runs the lessons
# in a plain kernel, which as uid 1000 has no privileges; the kernel the lessons
# ask for, "Python 3 (socklab)", has them in its own network, as a learner's does.
NBVAL=${NBVAL:---nbval --nbval-current-env --nbval-cell-timeout=60 --nbval-sanitize-with tools/nbval-sanitize.cfg}
NBVAL=${NBVAL/--nbval-current-env/--nbval-kernel-name=socklab}
LESSONS_STRICT=(notebooks/en/00-start-here.ipynb notebooks/en/05-echo.ipynb)
LAB_START_LIMIT=180   # seconds for JupyterLab to print its link, on a busy machine
VOLUME=socklab-test-work-$$

started=$(date +%s)
containers=()
cleanup() {
  for id in "${containers[@]}"; do docker rm -f "$id" >/dev/null 2>&1 || true; done
  docker volume rm "$VOLUME" >/dev/null 2>&1 || true
}
trap cleanup EXIT
step() { echo; echo "==> [$(( $(date +%s) - started )) s] $*"; }
fail() { echo "test-image: FAILED: $*" >&2; exit 1; }

# -- 1. The images -------------------------------------------------------------
if [ "$BASE" = socklab-base:bookworm ]; then
  step "base image $BASE"
  tools/image/make-base.sh "$BASE"
fi
step "docker build (base $BASE) -> $IMAGE"
# A host behind a TLS proxy trusts its CA from /usr/local/share/ca-certificates
# (Debian's place for local ones); the build needs it to reach PyPI (Dockerfile).
rm -rf tools/image/ca-certificates
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
  mkdir -p tools/image/ca-certificates
  cp /usr/local/share/ca-certificates/*.crt tools/image/ca-certificates/
fi
build_start=$(date +%s)
docker build -q --build-arg BASE="$BASE" -t "$IMAGE" . >/dev/null
rm -rf tools/image/ca-certificates
echo "built in $(( $(date +%s) - build_start )) s;" \
  "$(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}')"

# -- 2. With the README's flag: the doctor, and strict nbval ------------------
step "doctor, with the README's flags: ${FLAGS[*]}"
doctor=$(docker run --rm "${FLAGS[@]}" "$IMAGE" python -m socklab doctor) ||
  { echo "$doctor"; fail "the doctor reports something missing"; }
echo "$doctor"
for expected in '^container +ok +Docker' '^private network +ok' '^strace +ok' '^gcc +ok'; do
  grep -Eq "$expected" <<<"$doctor" || fail "the doctor has no line matching '$expected'"
done
[ "$(docker run --rm "$IMAGE" id -u)" = 1000 ] || fail "the image does not run as uid 1000"

step "strict nbval of ${LESSONS_STRICT[*]}, with the README's flags, as uid 1000"
# shellcheck disable=SC2086  # NBVAL is a list of options, split on purpose
docker run --rm "${FLAGS[@]}" -w /opt/socklab "$IMAGE" \
  python -m pytest $NBVAL -p no:cacheprovider -q "${LESSONS_STRICT[@]}" ||
  fail "strict nbval in the container"

# The stored outputs of the lessons that need privileges were made by root; as
# uid 1000 the learner is root of a user namespace, and a few cells of lesson 11
# say so (who may open what, the ping range in their group).  tests/test_kernel.py
# runs them as nobody and judges them by nbval's rules but for those cells (its
# WHO_YOU_ARE), none of them a recording.
LESSONS_LIVE=(02-socket-types 03-tcp-server 08-options-and-more 11-raw-sockets)
step "lessons ${LESSONS_LIVE[*]} live, with the README's flags, as uid 1000 (tests/test_kernel.py's judgement)"
docker run --rm "${FLAGS[@]}" -w /opt/socklab "$IMAGE" \
  python tools/image/run-live.py "${LESSONS_LIVE[@]}" ||
  fail "a lesson did not run live as stored in the container"

# -- 3. JupyterLab on the published port; the work volume ---------------------
step "docker run -p 127.0.0.1::8888 -v $VOLUME:/home/learner/work $IMAGE"
lab=$(docker run -d "${FLAGS[@]}" -p 127.0.0.1::8888 \
        -v "$VOLUME":/home/learner/work "$IMAGE")
containers+=("$lab")
link=
for _ in $(seq $(( LAB_START_LIMIT * 2 ))); do   # until the link is printed, or the limit
  link=$(docker logs "$lab" 2>&1 | grep -Eo 'http://127\.0\.0\.1:8888/[^ ]*token=[0-9a-f]+' | head -1) || true
  [ -n "$link" ] && break
  [ "$(docker inspect -f '{{.State.Running}}' "$lab")" = true ] ||
    { docker logs "$lab" | tail -20; fail "JupyterLab's container ended"; }
  sleep 0.5
done
[ -n "$link" ] || { docker logs "$lab" 2>&1 | tail -20; fail "no token link within ${LAB_START_LIMIT} s"; }
echo "it printed: $link"
token=${link##*token=}
published=$(docker port "$lab" 8888/tcp | grep -Eo '^127\.0\.0\.1:[0-9]+$' | head -1)
[ -n "$published" ] || fail "port 8888 is not published on 127.0.0.1: $(docker port "$lab")"
host_link=${link/127.0.0.1:8888/$published}
api="http://$published/api/contents/notebooks/en"
status=$(curl -s -o /dev/null -w '%{http_code}' --max-time 30 "$host_link")
[ "$status" = 200 ] || fail "the printed link, on the published port, answered $status"
status=$(curl -s -o /dev/null -w '%{http_code}' --max-time 30 "$api/00-start-here.ipynb")
[ "$status" = 403 ] || fail "without the token the lab answered $status, not 403"
auth=(-H "Authorization: token $token")
curl -sf --max-time 30 "${auth[@]}" "$api/00-start-here.ipynb?content=0" |
  grep -q '"name": *"00-start-here.ipynb"' || fail "lesson 00 is not in the learner's folder"
echo "JupyterLab answers on $published (the printed link, lesson 00 there; 403 without the token)"

# The lab starts the lessons' kernel, as when the learner opens a lesson, and a
# cell run through its websocket echoes through socklab in a network of its own.
said=$(docker exec "$lab" python /opt/socklab/tools/image/lab-kernel.py "$token") ||
  fail "a cell in the lab's socklab kernel: $said"
[ "$said" = "hello private" ] || fail "the lab's socklab kernel said '$said', not 'hello private'"
echo "a cell in the lab's \"Python 3 (socklab)\" kernel echoed, in a network of its own"

# The learner changes lesson 00 and saves it, through the lab.
python3 - "$api/00-start-here.ipynb" "$token" <<'EOF' || fail "saving through the lab"
import json, sys, urllib.request
url, token = sys.argv[1], sys.argv[2]
headers = {"Authorization": f"token {token}", "Content-Type": "application/json"}
with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
    model = json.load(r)
model["content"]["cells"].append({"cell_type": "markdown", "id": "learner1",
                                  "metadata": {}, "source": "my own notes"})
body = json.dumps({"type": "notebook", "content": model["content"]}).encode()
urllib.request.urlopen(urllib.request.Request(url, body, headers, method="PUT"), timeout=30)
EOF
docker stop -t 30 "$lab" >/dev/null
# A new container on the same volume: the learner's lesson as they left it.
docker run --rm -v "$VOLUME":/home/learner/work "$IMAGE" \
  grep -q '"my own notes"' notebooks/en/00-start-here.ipynb ||
  fail "the learner's change to lesson 00 did not survive a new container"
echo "the learner's change to lesson 00 survived a new container on the volume"

# -- 4. With no extra flag -------------------------------------------------------
step "doctor, with no extra flag"
docker run --rm "$IMAGE" python -m socklab doctor >"${TMPDIR:-/tmp}/doctor-$$.txt" || true
doctor=$(cat "${TMPDIR:-/tmp}/doctor-$$.txt"); rm -f "${TMPDIR:-/tmp}/doctor-$$.txt"
echo "$doctor"
grep -Eq '^private network +warn +refused' <<<"$doctor" ||
  fail "the default seccomp profile was expected to refuse the private network"
grep -q -- 'docker run --security-opt seccomp=unconfined' <<<"$doctor" ||
  fail "the doctor does not name --security-opt seccomp=unconfined"

step "every lesson, with no extra flag, as uid 1000: no traceback"
docker run --rm -w /opt/socklab "$IMAGE" python tools/image/run-lessons.py ||
  fail "a lesson had a traceback in a default container"

step "test-image passed"
