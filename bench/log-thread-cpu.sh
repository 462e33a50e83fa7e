#!/bin/bash
# The gateway's CPU per request by thread (tokio workers, the request log's writer, the config
# watch) at 5,000 req/s: the full-policy config from gen-config against `loadgen mock`,
# everything on 127.0.0.1, one warm-up second, then SECONDS of load. With `perf` as the
# fourth argument it also records `perf record -g` of the gateway into the work directory.
#
#   bash bench/log-thread-cpu.sh target/release sqlite|none SECONDS [perf]
#
# CPU comes from /proc/<pid>/task/*/stat (10 ms ticks: 0.25 µs/request over 8 s). Every
# process started here is stopped by its PID.
set -e
BIN=$(cd "$1" && pwd); LOGS=$2; SECS=$3; PERF=$4
W=$(mktemp -d)
cd $W
$BIN/loadgen mock --listen 127.0.0.1:0 > mock.out 2>&1 & MOCK=$!
for i in $(seq 50); do grep -q "listening on" mock.out && break; sleep 0.1; done
UP=$(grep -o "http://[0-9.:]*" mock.out | head -1)
$BIN/gen-config --out cfg.yaml --keys-out keys.txt --keys 1000 --teams 50 --customers 10 --policy full --logs $LOGS --upstream $UP/v1 >/dev/null
TOLLGATE_LOG=warn TOLLGATE_BENCH_UPSTREAM=$UP $BIN/tollgate serve -c cfg.yaml > gw.out 2>&1 & GW=$!
for i in $(seq 100); do grep -q "data plane listening on" gw.out && break; sleep 0.1; done
URL=$(grep "data plane listening on" gw.out | grep -o "http://[0-9.:]*" | head -1)
$BIN/loadgen run --target $URL/v1/chat/completions --rate 5000 --duration 1s --keys-file keys.txt --connections 64 >/dev/null 2>&1 || true
tick() { awk '{print $14+$15}' /proc/$GW/stat; }
for t in /proc/$GW/task/*; do echo "$(cat $t/comm) $(awk '{print $14+$15}' $t/stat)"; done | sort > threads0
T0=$(tick)
if [ -n "$PERF" ]; then perf record -F 1999 -g -o $W/perf.data -p $GW -- sleep $((SECS-2)) >/dev/null 2>&1 & PP=$!; fi
$BIN/loadgen run --target $URL/v1/chat/completions --rate 5000 --duration ${SECS}s --keys-file keys.txt --connections 64 --json lg.json >/dev/null 2>&1 || true
T1=$(tick)
for t in /proc/$GW/task/*; do echo "$(cat $t/comm) $(awk '{print $14+$15}' $t/stat)"; done | sort > threads1
[ -n "$PERF" ] && wait $PP
python3 - "$T0" "$T1" "$SECS" <<PY
import sys,json
t0,t1,secs=int(sys.argv[1]),int(sys.argv[2]),int(sys.argv[3])
d=json.load(open('lg.json'))
t=d['target']; n=t['requests']
print(f"gateway CPU {(t1-t0)*1e4/n:.1f} µs/req  rate {t['rate']} errors {t['errors']}")
import collections
a=collections.Counter(); b=collections.Counter()
for f,c in (('threads0',a),('threads1',b)):
    for line in open(f):
        name,v=line.rsplit(' ',1); c[name]+=int(v)
for k in sorted(b, key=lambda k: -(b[k]-a[k])):
    if b[k]-a[k]>0: print(f"  {k:24s} {(b[k]-a[k])*1e4/n:.1f} µs/req")
PY
kill $GW; wait $GW 2>/dev/null || true; kill $MOCK; wait $MOCK 2>/dev/null || true
echo "dir $W"
