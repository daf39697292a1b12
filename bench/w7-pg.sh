#!/usr/bin/env bash
# W7 on PostgreSQL (issue 16; not yet part of make bench): holdfast-load
# against holdfast-server on its log, on PostgreSQL (1 node), and 2 and 3
# nodes on one PostgreSQL (--shared-database, the clients split evenly),
# at 100 and 1,000 clients, 10 s each (SECS). Prints one line per run:
# acknowledged changes/s, the first and last 2 s window, p50/p99 ack (the
# worst node's), and the servers' summed peak RSS. Starts its own
# PostgreSQL (Debian's, initdb into a temporary directory; run as root,
# as the postgres user). Needs the release builds of holdfast-server and
# holdfast-load ($CARGO_TARGET_DIR or target/).
set -u
BIN=${CARGO_TARGET_DIR:-$(cd "$(dirname "$0")/.." && pwd)/target}/release
SECS=${SECS:-10}
PGB=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
D=$(mktemp -d /tmp/hfpg-XXXX)
as_pg=()
if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$D"; as_pg=(runuser -u postgres --); fi
"${as_pg[@]}" $PGB/initdb -D $D/data -A trust -U holdfast --no-sync -E UTF8 --locale C >/dev/null
"${as_pg[@]}" $PGB/pg_ctl -D $D/data -o "-c listen_addresses='' -k $D -p 5999" -l $D/log -w start >/dev/null
URL="host=$D port=5999 user=holdfast dbname=postgres"
start_server() { # args...
  local out=$(mktemp); "$BIN/holdfast-server" --listen 127.0.0.1:0 "$@" > $out 2>&1 &
  local pid=$!
  for i in $(seq 100); do grep -q "listening on" $out && break; sleep 0.1; done
  echo "$pid $(grep -o 'ws://[0-9.:]*' $out | head -1)"
}
reset_db() { "${as_pg[@]}" $PGB/psql -h $D -p 5999 -U holdfast -d postgres -qc "SET client_min_messages = warning; DROP TABLE IF EXISTS holdfast_records; DROP TABLE IF EXISTS holdfast_schema;" >/dev/null; }
run() { # label nodes clients args...
  local label=$1 nodes=$2 clients=$3; shift 3
  local pids=() urls=()
  for n in $(seq $nodes); do read pid url < <(start_server "$@"); pids+=($pid); urls+=($url); done
  local per=$(( clients / nodes )); local outs=() lpids=()
  for u in "${urls[@]}"; do o=$(mktemp); outs+=($o); (ulimit -n 65536 2>/dev/null; exec "$BIN/holdfast-load" --url "$u/" --clients $per --seconds $SECS > $o 2>$o.err) & lpids+=($!); done
  wait "${lpids[@]}"
  local rss=0; for p in "${pids[@]}"; do r=$(grep VmHWM /proc/$p/status | awk '{print $2}'); rss=$((rss + r)); kill $p; done
  node -e '
    const fs=require("fs"); const rs=process.argv.slice(3).map(f=>JSON.parse(fs.readFileSync(f,"utf8")));
    const acks=rs.reduce((s,r)=>s+r.acks,0); const secs=rs[0].seconds;
    const p50=Math.max(...rs.map(r=>r.p50_ms)), p99=Math.max(...rs.map(r=>r.p99_ms));
    const first=rs.reduce((s,r)=>s+r.rate_windows[0],0), last=rs.reduce((s,r)=>s+r.rate_windows.at(-1),0);
    console.log(`${process.argv[1]}: ${(acks/secs).toFixed(0)} acked/s (first window ${first.toFixed(0)}, last ${last.toFixed(0)}), p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms (max over nodes), RSS ${(process.argv[2]/1024).toFixed(0)} MiB (sum)`);
  ' "$label" $rss "${outs[@]}"
  sleep 1
}
for N in 100 1000; do
  L=$(mktemp -d); run "log 1 node $N clients" 1 $N --data $L; rm -rf $L
  reset_db; run "pg 1 node $N clients" 1 $N --postgres "$URL"
  reset_db; run "pg 2 nodes $N clients" 2 $N --postgres "$URL" --shared-database
  reset_db; run "pg 3 nodes $N clients" 3 $N --postgres "$URL" --shared-database
done
"${as_pg[@]}" $PGB/pg_ctl -D $D/data -m fast -w stop >/dev/null; rm -rf $D
