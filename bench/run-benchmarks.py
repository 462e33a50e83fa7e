#!/usr/bin/env python3
"""Runs the benchmarks of docs/BENCHMARKS.md and prints their tables (Python 3 stdlib only).

Everything listens on 127.0.0.1 (free ports), every run is bounded in time, and every process
started here is stopped by its PID. Needs release binaries (cargo build --release --bins), and
for the comparisons `nginx` (apt) and `oha` (cargo install oha).

  python3 bench/run-benchmarks.py [--bin target/release] [--out DIR] [--duration 10]
      [--repeats 3] [--rates 1000,5000,10000] [--sections closed,open,versus]

Sections:
  closed  closed-loop throughput, 64 connections (oha): mock directly, nginx, the gateway on
          the full-policy, keys-only and minimal configs, and full-policy on one tokio worker
  open    open-loop `loadgen run --direct`: {nginx, gateway full policy, gateway minimal}
          x {1k, 5k, 10k} req/s x {non-stream, stream} x {mock latency 0, 50 ms}
  versus  the gateway as target and nginx as "direct", interleaved in one run: the difference
          is gateway hop minus nginx hop, at 5k req/s (full policy, stream or not; keys only)
  logging the full-policy gateway with its request log as target and the same gateway with
          `logs: {kind: none}` as "direct", interleaved: the cost of the request log at 5k req/s;
          then each of the two alone against the mock (rows in the open-loop table)
  cache   the minimal and full-policy gateways with `cache: {mode: exact}` at 5k req/s, every
          request after the warm-up a repeat: the cost of an exact hit (open-loop table)

The full-policy config (gen-config): 1,000 keys, 50 teams, 10 customers, limits on every tier,
100 routing rules, 5 guardrails, memory state, the request log in SQLite (`full-nolog`: the
same without it). The keys-only and minimal configs keep no request log.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_KEY = "tg-bench-key"  # the key of bench/minimal.yaml
CHAT = "/v1/chat/completions"
# gateway-full: the generated config with every policy; gateway-keys: the same keys and
# providers without limits, rules or guardrails; gateway-minimal: bench/minimal.yaml.
CLOSED_KINDS = ["mock", "nginx", "gateway-full", "gateway-keys", "gateway-minimal",
                "gateway-full-1worker"]
OPEN_KINDS = ["nginx", "gateway-full", "gateway-minimal"]
ALL_KINDS = CLOSED_KINDS + ["gateway-full-nolog", "gateway-minimal-cache", "gateway-full-cache"]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A child process whose stdout goes to a file; optionally waits for a line prefix."""

    def __init__(self, name, cmd, workdir, env=None, wait_for=()):
        self.name = name
        self.out = open(workdir / f"{name}.out", "w+")
        self.err = open(workdir / f"{name}.err", "w+")
        self.p = subprocess.Popen(
            cmd,
            stdout=self.out,
            stderr=self.err,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
        self.lines = [self._wait(prefix) for prefix in wait_for]

    @property
    def pid(self):
        return self.p.pid

    def _wait(self, prefix, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.out.seek(0)
            for line in self.out.read().splitlines():
                if line.startswith(prefix):
                    return line[len(prefix):].strip()
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        self.err.seek(0)
        self.stop()
        raise RuntimeError(f"{self.name} never printed `{prefix}`: {self.err.read()[-2000:]}")

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.out.close()
        self.err.close()


def cpu_ticks(pid):
    """utime + stime of one process, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


def status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def machine_ticks():
    """(busy, total) clock ticks of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]  # idle + iowait
    return sum(v) - idle, sum(v)


def children_cpu():
    """CPU seconds of every child process already waited for (loadgen, oha runs)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def wait_quiet(max_wait=120, busy_below=0.15):
    """Waits until the machine is mostly idle (other sessions share it); returns seconds waited."""
    started = time.time()
    while time.time() - started < max_wait:
        b0, t0 = machine_ticks()
        time.sleep(1)
        b1, t1 = machine_ticks()
        if (b1 - b0) / max(t1 - t0, 1) < busy_below:
            break
    return round(time.time() - started - 1, 1)


class Target:
    """Something `loadgen` and `oha` send requests to, with the processes that make it up."""

    def __init__(self, name, url, procs, admin_url=None, key=None, keys_file=None):
        self.name, self.url, self.procs = name, url, procs
        self.admin_url, self.key, self.keys_file = admin_url, key, keys_file

    def pids(self):
        pids = [p.pid for p in self.procs]
        for p in list(pids):
            pids += children(p)  # nginx workers
        return pids

    def cpu(self):
        return sum(cpu_ticks(p) for p in self.pids()) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mb(self):
        return sum(status_kb(p, "VmHWM") for p in self.pids()) / 1024

    def rss_mb(self):
        """Resident now (at the end of the load), not the start-up peak."""
        return sum(status_kb(p, "VmRSS") for p in self.pids()) / 1024

    def metrics(self):
        if not self.admin_url:
            return None
        import urllib.request

        with urllib.request.urlopen(self.admin_url + "/metrics", timeout=5) as r:
            return r.read().decode()

    def stop(self):
        for p in self.procs:
            p.stop()


def overhead_buckets(text):
    """Cumulative (upper bound in seconds, count) of tollgate_overhead_seconds."""
    out = []
    for m in re.finditer(r'^tollgate_overhead_seconds_bucket\{le="([^"]+)"\} (\d+)$', text, re.M):
        bound = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
        out.append((bound, int(m.group(2))))
    return out


def bucket_quantiles(before, after, qs=(0.5, 0.9, 0.99)):
    """Approximate quantiles (µs) of the samples recorded between two scrapes, interpolating
    linearly inside a bucket; also the share of samples at or under 25 µs."""
    if not before or not after:
        return None
    prev = dict(before)
    cum = [(b, c - prev.get(b, 0)) for b, c in after]
    total = cum[-1][1]
    if total == 0:
        return None
    res = {"count": total}
    for q in qs:
        rank = q * total
        lo_b, lo_c = 0.0, 0
        for b, c in cum:
            if c >= rank:
                if b == float("inf"):
                    v = lo_b
                else:
                    frac = (rank - lo_c) / max(c - lo_c, 1)
                    v = lo_b + (b - lo_b) * frac
                res[f"p{round(q * 100, 1):g}"] = round(v * 1e6, 1)
                break
            lo_b, lo_c = b, c
    res["share_le_25us"] = round(next(c for b, c in cum if b >= 25e-6) / total, 5)
    return res


class Bench:
    def __init__(self, args):
        self.args = args
        self.bin = Path(args.bin).resolve()
        self.work = Path(tempfile.mkdtemp(prefix="tollgate-bench-"))
        self.out = Path(args.out).resolve()
        self.out.mkdir(parents=True, exist_ok=True)
        self.results = []
        self.mocks = {}

    # ---- processes -------------------------------------------------------------------------

    def mock(self, latency_ms):
        if latency_ms not in self.mocks:
            p = Proc(
                f"mock{latency_ms}",
                [str(self.bin / "loadgen"), "mock", "--listen", "127.0.0.1:0",
                 "--latency", f"{latency_ms}ms"],
                self.work,
                wait_for=["loadgen mock listening on "],
            )
            self.mocks[latency_ms] = (p, p.lines[0])
        return self.mocks[latency_ms][1]

    def gateway(self, config, latency_ms):
        upstream = self.mock(latency_ms)
        name = f"gateway-{config}"
        # `full-1worker`: the same gateway on a one-thread tokio runtime (TOKIO_WORKER_THREADS);
        # `full-nolog`: without the request log.
        config, _, variant = config.partition("-")
        env = {"TOKIO_WORKER_THREADS": "1"} if variant == "1worker" else {}
        if config in ("full", "keys"):
            logs = "sqlite" if config == "full" and variant != "nolog" else "none"
            cfg = self.work / f"{config}-{variant or 'base'}-{latency_ms}.yaml"
            keys = self.work / f"{config}-keys.txt"
            subprocess.run(
                [str(self.bin / "gen-config"), "--out", str(cfg), "--keys-out", str(keys),
                 "--keys", "1000", "--teams", "50", "--customers", "10", "--policy", config,
                 "--logs", logs, "--upstream", upstream + "/v1"],
                check=True, stdout=subprocess.DEVNULL,
            )
            key, keys_file = None, keys
        else:
            cfg, key, keys_file = ROOT / "bench" / "minimal.yaml", BENCH_KEY, None
        if variant == "cache":
            # The same config answering repeated requests from the exact cache (memory store).
            cached = self.work / f"{config}-cache-{latency_ms}.yaml"
            cached.write_text(Path(cfg).read_text() + "\ncache: {mode: exact, ttl: 1h}\n")
            cfg = cached
        p = Proc(
            name,
            [str(self.bin / "tollgate"), "serve", "-c", str(cfg)],
            self.work,
            env={"TOLLGATE_BENCH_UPSTREAM": upstream, "TOLLGATE_LOG": "warn", **env},
            wait_for=["tollgate data plane listening on ", "tollgate admin listening on "],
        )
        return Target(name, p.lines[0], [p], admin_url=p.lines[1], key=key, keys_file=keys_file)

    def nginx(self, latency_ms):
        upstream = self.mock(latency_ms).removeprefix("http://")
        port = free_port()
        d = self.work / f"nginx-{latency_ms}"
        d.mkdir(exist_ok=True)
        conf = d / "nginx.conf"
        conf.write_text(f"""# A plain reverse proxy to the mock, with upstream keep-alive.
worker_processes auto;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    upstream mock {{ server {upstream}; keepalive 1024; }}
    server {{
        listen 127.0.0.1:{port};
        keepalive_requests 1000000;
        location / {{
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
""")
        p = Proc("nginx", ["nginx", "-p", str(d), "-e", str(d / "error.log"), "-c", str(conf)],
                 self.work)
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or p.p.poll() is not None:
                    p.stop()
                    raise RuntimeError(f"nginx did not start: {(d / 'error.log').read_text()}")
                time.sleep(0.05)
        return Target("nginx", url, [p], key=BENCH_KEY)

    def start(self, kind, latency_ms):
        if kind == "nginx":
            return self.nginx(latency_ms)
        return self.gateway(kind.removeprefix("gateway-"), latency_ms)

    # ---- load ------------------------------------------------------------------------------

    def loadgen(self, target, rate, seconds, stream, direct=None, connections=64, json_out=None):
        cmd = [str(self.bin / "loadgen"), "run", "--target", target.url + CHAT,
               "--rate", str(rate), "--duration", f"{seconds}s",
               "--connections", str(connections), "--timeout", "10s"]
        cmd += ["--keys-file", str(target.keys_file)] if target.keys_file else ["--key", target.key]
        if direct:
            cmd += ["--direct", direct + CHAT]
        if stream:
            cmd.append("--stream")
        if json_out:
            cmd += ["--json", str(json_out)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
        if r.returncode == 2:
            raise RuntimeError(f"loadgen setup failed: {r.stderr}")
        return json.loads(Path(json_out).read_text()) if json_out else None

    def sample(self, targets):
        """CPU seconds so far: each target, the mocks, finished children (loadgen, oha) and
        the whole machine. Two samples give the CPU each used during a run, and what the rest
        of this shared machine used meanwhile (`other_cores`: noise)."""
        busy, _ = machine_ticks()
        return {
            "targets": [t.cpu() for t in targets],
            "mocks": sum(cpu_ticks(p.pid) for p, _ in self.mocks.values())
            / os.sysconf("SC_CLK_TCK"),
            "children": children_cpu(),
            "machine": busy / os.sysconf("SC_CLK_TCK"),
            "at": time.time(),
        }

    @staticmethod
    def usage(a, b):
        secs = b["at"] - a["at"]
        mine = sum(y - x for x, y in zip(a["targets"], b["targets"]))
        mine += b["mocks"] - a["mocks"] + b["children"] - a["children"]
        return {
            "target_cpu_s": b["targets"][0] - a["targets"][0] if a["targets"] else 0,
            "load_cpu_s": b["children"] - a["children"],
            "other_cores": round(max(b["machine"] - a["machine"] - mine, 0) / secs, 2),
        }

    def open_loop(self, kind, rate, stream, latency_ms, rep, direct_kind="mock"):
        secs = self.args.duration
        connections = 64 if latency_ms == 0 else 1024
        target = self.start(kind, latency_ms)
        other = None
        try:
            if direct_kind == "mock":
                direct = self.mock(latency_ms)
            else:
                other = self.start(direct_kind, latency_ms)
                direct = other.url
            # Warm-up: upstream connections, allocator, caches.
            self.loadgen(target, rate, 1, stream, connections=connections)
            waited = wait_quiet()
            m0, s0 = target.metrics(), self.sample([target] + ([other] if other else []))
            tag = f"{kind}-vs-{direct_kind}-{rate}-{'s' if stream else 'n'}-{latency_ms}ms-{rep}"
            report = self.loadgen(target, rate, secs, stream, direct=direct,
                                  connections=connections,
                                  json_out=self.out / f"open-{tag}.json")
            s1, m1 = self.sample([target] + ([other] if other else [])), target.metrics()
            rss, rss_now = target.peak_rss_mb(), target.rss_mb()
        finally:
            target.stop()
            if other:
                other.stop()
        t, u = report["target"], self.usage(s0, s1)
        res = {
            "section": {"mock": "open", "nginx": "versus"}.get(direct_kind, "logging"),
            "target": kind, "direct": direct_kind, "rate": rate, "stream": stream,
            "latency_ms": latency_ms, "rep": rep,
            "achieved": t["rate"], "errors": t["errors"] + report["direct"]["errors"],
            "p50": t["p50"], "p99": t["p99"],
            "direct_p50": report["direct"]["p50"], "direct_p99": report["direct"]["p99"],
            "d_p50": report["overhead_us"]["p50"], "d_p90": report["overhead_us"]["p90"],
            "d_p99": report["overhead_us"]["p99"], "d_p999": report["overhead_us"]["p999"],
            "lag_p99": report["scheduler_lag_us"]["p99"],
            # CPU of the target per request it served (it gets half the schedule).
            "cpu_us_per_req": round(u["target_cpu_s"] * 1e6 / max(t["requests"], 1), 1),
            "peak_rss_mb": round(rss, 1),
            "rss_mb": round(rss_now, 1),
            "other_cores": u["other_cores"],
            "waited_quiet_s": waited,
        }
        if report.get("overhead_ttfb_us"):
            res["d_ttfb_p50"] = report["overhead_ttfb_us"]["p50"]
            res["d_ttfb_p99"] = report["overhead_ttfb_us"]["p99"]
        q = bucket_quantiles(overhead_buckets(m0), overhead_buckets(m1)) if m0 else None
        if q:
            res["in_gw"] = q
        self.record(res)

    def closed_loop(self, kind, rep):
        secs = self.args.duration
        if kind == "mock":
            url, key, target = self.mock(0), BENCH_KEY, None
        else:
            target = self.start(kind, 0)
            url, key = target.url, target.key or "tg-bench-00000-00000000"
            if target.keys_file:
                key = Path(target.keys_file).read_text().splitlines()[1].split()[0]
        body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello"}]}'
        cmd = ["oha", "--no-tui", "--output-format", "json", "-c", "64", "-m", "POST",
               "-T", "application/json", "-H", f"authorization: Bearer {key}", "-d", body]
        targets = [target] if target else []
        try:
            subprocess.run(cmd + ["-z", "1s", url + CHAT], capture_output=True, timeout=30)
            waited = wait_quiet()
            s0 = self.sample(targets)
            r = subprocess.run(cmd + ["-z", f"{secs}s", url + CHAT], capture_output=True,
                               text=True, timeout=secs + 30)
            s1 = self.sample(targets)
            rss = target.peak_rss_mb() if target else 0
            rss_now = target.rss_mb() if target else 0
        finally:
            if target:
                target.stop()
        u = self.usage(s0, s1)
        (self.out / f"closed-{kind}-{rep}.json").write_text(r.stdout)
        o = json.loads(r.stdout)
        ok = sum(v for k, v in o.get("statusCodeDistribution", {}).items() if k.startswith("2"))
        self.record({
            "section": "closed", "target": kind, "rep": rep,
            "rps": round(ok / secs, 1),
            "non_2xx": sum(v for k, v in o.get("statusCodeDistribution", {}).items()
                           if not k.startswith("2")),
            # oha aborts the requests in flight at the deadline; those are not errors.
            "errors": sum(v for k, v in o.get("errorDistribution", {}).items()
                          if "deadline" not in k),
            "p50_ms": round(o["latencyPercentiles"]["p50"] * 1e3, 3),
            "p99_ms": round(o["latencyPercentiles"]["p99"] * 1e3, 3),
            "cpu_cores": round(u["target_cpu_s"] / secs, 2) if target else None,
            "load_cores": round(u["load_cpu_s"] / secs, 2),
            "peak_rss_mb": round(rss, 1) if target else None,
            "rss_mb": round(rss_now, 1) if target else None,
            "other_cores": u["other_cores"],
            "waited_quiet_s": waited,
        })

    def record(self, res):
        self.results.append(res)
        log(json.dumps(res))
        (self.out / "results.json").write_text(json.dumps(self.results, indent=1))

    def run(self):
        a = self.args
        sections = a.sections.split(",")
        rates = [int(r) for r in a.rates.split(",")]
        try:
            for rep in range(a.repeats):
                if "closed" in sections:
                    for kind in CLOSED_KINDS:
                        self.closed_loop(kind, rep)
                if "versus" in sections:
                    for stream in [False, True]:
                        self.open_loop("gateway-full", 5000, stream, 0, rep, direct_kind="nginx")
                    self.open_loop("gateway-keys", 5000, False, 0, rep, direct_kind="nginx")
                if "cache" in sections:
                    # Every request after the warm-up repeats one seen before: all hits.
                    for kind in ["gateway-minimal-cache", "gateway-full-cache"]:
                        self.open_loop(kind, 5000, False, 0, rep)
                if "logging" in sections:
                    for stream in [False, True]:
                        self.open_loop("gateway-full", 5000, stream, 0, rep,
                                       direct_kind="gateway-full-nolog")
                    # Each alone against the mock: the machine is not shared by two gateways.
                    for kind in ["gateway-full", "gateway-full-nolog"]:
                        self.open_loop(kind, 5000, False, 0, rep)
                if "open" in sections:
                    for latency in [0, 50]:
                        for stream in [False, True]:
                            for rate in rates:
                                for kind in OPEN_KINDS:
                                    self.open_loop(kind, rate, stream, latency, rep)
        finally:
            for p, _ in self.mocks.values():
                p.stop()
            shutil.rmtree(self.work, ignore_errors=True)
        print(tables(self.results))
        (self.out / "tables.md").write_text(tables(self.results))


def med(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def fmt(v, digits=1):
    if v is None:
        return "–"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:,.{digits}f}"
    return f"{int(v):,}"


def tables(results):
    out = []
    closed = [r for r in results if r["section"] == "closed"]
    if closed:
        n = len({r["rep"] for r in closed})
        out.append(f"### Closed loop, 64 connections, mock latency 0 (median of {n})\n")
        out.append("| target | req/s | p50 ms | p99 ms | errors | target CPU cores | oha CPU cores "
                   "| RSS MB end / peak | others' CPU cores |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for kind in CLOSED_KINDS:
            rows = [r for r in closed if r["target"] == kind]
            if rows:
                out.append(
                    f"| {kind} | {fmt(med(rows, 'rps'))} | {med(rows, 'p50_ms')} | "
                    f"{med(rows, 'p99_ms')} | {sum(r['errors'] + r['non_2xx'] for r in rows)} | "
                    f"{fmt(med(rows, 'cpu_cores'), 2)} | {fmt(med(rows, 'load_cores'), 2)} | "
                    f"{fmt(med(rows, 'rss_mb'))} / {fmt(med(rows, 'peak_rss_mb'))} | "
                    f"{fmt(med(rows, 'other_cores'), 2)} |")
        out.append("")
    for section, title in [("versus", "Gateway vs nginx, interleaved in one run"),
                           ("logging", "Request log on vs off, interleaved in one run"),
                           ("open", "Open loop, overhead = target − mock directly")]:
        rows = [r for r in results if r["section"] == section]
        if not rows:
            continue
        n = len({r["rep"] for r in rows})
        out.append(f"### {title} (µs, median of {n})\n")
        out.append("| target | mock latency | stream | rate | achieved | errors | Δp50 | Δp90 | Δp99 "
                   "| Δp99.9 | in-gateway p50 / p99 | ≤25 µs | CPU µs/req | RSS MB end / peak | lag p99 | others' CPU |")
        out.append("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        keys = sorted({(r["latency_ms"], r["stream"], r["rate"], r["target"]) for r in rows},
                      key=lambda k: (k[0], k[1], k[2], ALL_KINDS.index(k[3])))
        for lat, stream, rate, kind in keys:
            g = [r for r in rows if (r["latency_ms"], r["stream"], r["rate"], r["target"])
                 == (lat, stream, rate, kind)]
            ing = [r["in_gw"] for r in g if r.get("in_gw")]
            in_gw = (f"{statistics.median(i['p50'] for i in ing):.1f} / "
                     f"{statistics.median(i['p99'] for i in ing):.1f}") if ing else "–"
            share = f"{statistics.median(i['share_le_25us'] for i in ing):.2%}" if ing else "–"
            name = {"open": kind, "versus": f"{kind} − nginx",
                    "logging": f"{kind} (log on) − log off"}[section]
            out.append(
                f"| {name} | {lat} ms | {'yes' if stream else 'no'} | {rate:,} | "
                f"{fmt(med(g, 'achieved'))} | {sum(r['errors'] for r in g)} | "
                f"{fmt(med(g, 'd_p50'))} | {fmt(med(g, 'd_p90'))} | {fmt(med(g, 'd_p99'))} | "
                f"{fmt(med(g, 'd_p999'))} | {in_gw} | {share} | {fmt(med(g, 'cpu_us_per_req'))} | "
                f"{fmt(med(g, 'rss_mb'))} / {fmt(med(g, 'peak_rss_mb'))} | "
                f"{fmt(med(g, 'lag_p99'))} | "
                f"{fmt(med(g, 'other_cores'), 2)} |")
        out.append("")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bin", default=str(ROOT / "target" / "release"))
    ap.add_argument("--out", default=str(ROOT / "target" / "bench-results"))
    ap.add_argument("--duration", type=int, default=10, help="seconds per measured run (≤ 30)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rates", default="1000,5000,10000")
    ap.add_argument("--sections", default="closed,versus,open")
    ap.add_argument("--tables-from", help="only print the tables of an earlier results.json")
    args = ap.parse_args()
    if args.tables_from:
        print(tables(json.loads(Path(args.tables_from).read_text())))
        return
    if not 1 <= args.duration <= 30:
        sys.exit("--duration must be 1..30 seconds")
    Bench(args).run()


if __name__ == "__main__":
    main()
