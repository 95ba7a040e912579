#!/bin/sh
# The container's entry point (Dockerfile): put the lessons in the learner's
# work folder, then start JupyterLab on lesson 00 -- or run the command given,
# as `docker run IMAGE python -m socklab doctor` or a hub's
# `jupyterhub-singleuser` do.
#
# The work folder is meant to be a volume (-v socklab-work:/home/learner/work),
# so it outlives the container.  The lessons and their images are copied into it
# on every start with cp -n: a lesson the learner has changed is never
# overwritten, and a newer image adds the lessons it brings.  To get a lesson
# back as it was, delete it in JupyterLab and restart the container.
#
#   SOCKLAB_EDITION=zh   open the Chinese edition, JupyterLab's menus in Chinese
set -eu

course=/opt/socklab
work=${SOCKLAB_WORK:-$HOME/work}
mkdir -p "$work"
# The lessons link to ../../images, so both keep the repository's layout.
cp -R -n "$course/notebooks" "$course/images" "$work/"

if [ "$#" -gt 0 ]; then
  exec "$@"
fi

edition=${SOCKLAB_EDITION:-en}
case "$edition" in
  en) settings= ;;
  zh) settings=--LabApp.user_settings_dir=$course/.venv/share/socklab/lab-zh/user-settings ;;
  *) echo "start.sh: SOCKLAB_EDITION is en or zh, not '$edition'" >&2; exit 2 ;;
esac
# 0.0.0.0: inside the container, so that the published port (-p) reaches it;
# on the host, publish it on 127.0.0.1 only.  The token still guards it.
exec jupyter lab --no-browser \
  --ServerApp.ip=0.0.0.0 --ServerApp.port=8888 \
  --ServerApp.root_dir="$work" \
  --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate \
  $settings "notebooks/$edition/00-start-here.ipynb"
