# socklab in a container: the course, its pinned Python environment and the
# Linux tools the lessons use, for learners on macOS and Windows (Docker Desktop,
# Podman), VS Code and Codespaces (.devcontainer/), and hubs on Kubernetes
# (docs/hub.md).
#
#   docker build -t socklab .
#   docker run --rm -it -p 127.0.0.1:8888:8888 -v socklab-work:/home/learner/work \
#     --security-opt seccomp=unconfined --security-opt systempaths=unconfined socklab
#
# then open the http://127.0.0.1:8888/lab?token=... link it prints.  What each
# flag changes, measured: docs/hub.md, "What works in a container".
#
# The base image is a build argument: where Docker Hub cannot be reached, make a
# Debian base from Debian's packages (tools/image/make-base.sh) and pass
#   --build-arg BASE=socklab-base:bookworm
ARG BASE=debian:bookworm
FROM ${BASE}

# The system packages of .ci/run, less the browser tests' (chromium, fonts, node):
# gcc and libc6-dev for the %%c cells, make for `make`, strace (lesson 12),
# iproute2 for ss and ip, procps for ps, curl (lesson 13), libssl-dev and openssl
# (lesson 14), iperf3 (lesson 12's reference figure).  tini is the container's
# first process: it reaps the orphans a lesson's programs may leave, and passes
# Ctrl-C and `docker stop` on to JupyterLab.
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      python3 python3-venv ca-certificates tini \
      gcc libc6-dev make strace iproute2 procps curl libssl-dev openssl iperf3 \
 && rm -rf /var/lib/apt/lists/*

# An ordinary user, uid 1000, as Jupyter's own images have (theirs is jovyan):
# the lessons are written for a learner who is not root.
ARG USER=learner
RUN useradd --uid 1000 --user-group --create-home --shell /bin/bash "${USER}"

# The course, and its .venv built by `make` exactly as on a laptop: the pinned
# packages of pyproject.toml, socklab itself, the "Python 3 (socklab)" kernel.
# The learner owns it, so `make test` and pip work inside the container too.
# No npm in the image: make says that only the hub's own test is skipped then.
ENV LANG=C.UTF-8 \
    PATH=/opt/socklab/.venv/bin:$PATH

# A build machine that reaches PyPI through a proxy with a certificate authority
# of its own puts that CA's certificates (PEM, *.crt) in
# tools/image/ca-certificates/ (tools/image/test-image.sh copies the host's
# local ones there): pip and uv trust them for this step only, and they are
# deleted from the image's course folder afterwards.
COPY --chown=1000:1000 . /opt/socklab
WORKDIR /opt/socklab
USER 1000
RUN set -eu; \
    bundle=/etc/ssl/certs/ca-certificates.crt; \
    if ls tools/image/ca-certificates/*.crt >/dev/null 2>&1; then \
      bundle=/tmp/build-ca.pem; \
      cat /etc/ssl/certs/ca-certificates.crt tools/image/ca-certificates/*.crt >"$bundle"; \
    fi; \
    SSL_CERT_FILE=$bundle PIP_CERT=$bundle UV_NO_CACHE=1 PIP_NO_CACHE_DIR=1 \
      make .venv/.socklab-ready; \
    rm -rf tools/image/ca-certificates /tmp/build-ca.pem /home/${USER}/.cache

# The learner's own folder: keep it in a volume (-v socklab-work:/home/learner/work).
# The exercise checks' results go there too (python -m socklab progress).
# tools/image/start.sh copies the lessons into it on every start, adding what is
# missing and never overwriting a file the learner has changed, then starts
# JupyterLab on lesson 00 (or runs the command it is given).
RUN mkdir -p /home/${USER}/work
ENV SOCKLAB_DATA=/home/${USER}/work/.socklab
WORKDIR /home/${USER}/work
EXPOSE 8888
ENTRYPOINT ["tini", "-g", "--", "/opt/socklab/tools/image/start.sh"]
