#!/usr/bin/env bash
# A local RTMP server for development: Debian's nginx + libnginx-mod-rtmp, own config and
# prefix under the data directory, loopback only. Never touches the system nginx.
#
#   scripts/rtmp-server.sh start [DATA_DIR]   # background; pid in DATA_DIR/rtmp/nginx.pid
#   scripts/rtmp-server.sh stop  [DATA_DIR]
#   scripts/rtmp-server.sh status [DATA_DIR]
#
# Env: RTMP_HOST (127.0.0.1), RTMP_PORT (1935). Push to rtmp://HOST:PORT/live/<key>, play the
# same URL (ffplay, VLC). avatarcast: --rtmp-ingest-url rtmp://127.0.0.1:1935/live
set -euo pipefail

cmd=${1:-start}
data_dir=${2:-${DATA_DIR:-./avatarcast-data}}
host=${RTMP_HOST:-127.0.0.1}
port=${RTMP_PORT:-1935}
nginx=${NGINX:-/usr/sbin/nginx}
module=/usr/lib/nginx/modules/ngx_rtmp_module.so
prefix=$(mkdir -p "$data_dir/rtmp/logs" && cd "$data_dir/rtmp" && pwd)
pidfile=$prefix/nginx.pid

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

case $cmd in
start)
  if running; then echo "RTMP server already running (pid $(cat "$pidfile"))"; exit 0; fi
  [ -x "$nginx" ] && [ -f "$module" ] || {
    echo "needs nginx and libnginx-mod-rtmp (apt-get install nginx libnginx-mod-rtmp)" >&2; exit 1; }
  cat > "$prefix/nginx.conf" <<CONF
load_module $module;
daemon on; master_process on; worker_processes 1;
pid $pidfile; error_log $prefix/logs/error.log warn;
events { worker_connections 256; }
rtmp { server { listen $host:$port; chunk_size 4096;
  application live { live on; record off; wait_key on; } } }
CONF
  "$nginx" -c "$prefix/nginx.conf" -p "$prefix/"
  for _ in $(seq 50); do running && break; sleep 0.1; done
  running || { echo "RTMP server did not start; see $prefix/logs/error.log" >&2; exit 1; }
  echo "RTMP server on rtmp://$host:$port/live (pid $(cat "$pidfile"), logs in $prefix/logs)"
  ;;
stop)
  if running; then
    pid=$(cat "$pidfile"); kill -TERM "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    echo "RTMP server stopped"
  else
    echo "RTMP server not running"
  fi
  ;;
status)
  if running; then echo "running (pid $(cat "$pidfile"))"; else echo "not running"; exit 1; fi
  ;;
*) echo "usage: $0 start|stop|status [DATA_DIR]" >&2; exit 2 ;;
esac
