#!/usr/bin/env python3
"""scripts/bench's driver (standard library only; run by scripts/bench, which builds the
binaries first). Measures zun-compute-rs against the Python original in the same run on
the same machine, prints one table per measurement (ours, the reference, the ratio) and,
as its last line, one JSON object with the headline figures.

Measurements (see docs/benchmarks.md for the method):
  codec      decode + typed parse of the captured container_create / container_show
             bodies, encode of a container_show reply; messages/s (Rust harness vs the
             kombu + oslo.messaging + zun serializer chain).
  rpc        the real Python oslo client calling `noop` at concurrency 1 and 32, against
             our RPC server stack and a real oslo.messaging server (eventlet executor);
             calls/s, p50/p99, and the server process's CPU per call from /proc.
  drain      N no-op casts queued with no server running, then the time to consume them.
  e2e        N container_create casts (run=true, busybox from the local registry) through
             zun's rpcapi until all rows are Running, vs the same N creates+starts sent
             straight to the Docker API at the same concurrency.
  footprint  worker start-up time to consuming, RSS idle and with M containers tracked;
             the real zun-compute's when it can run here.
"""
import argparse
import json
import os
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CONF_DIR = os.path.join(REPO, "tests", "conformance")
CLK_TCK = os.sysconf("SC_CLK_TCK")
RABBIT = "rabbit://guest:guest@127.0.0.1:5672/"


def log(msg):
    print("# " + msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- processes

class Proc:
    """A child process whose stdout is read line by line in a thread (JSON lines or text)."""

    def __init__(self, argv, name, stdin=True, stderr_path=None, env=None):
        self.name = name
        self.lines = queue.Queue()
        self.stderr_file = open(stderr_path, "ab") if stderr_path else subprocess.DEVNULL
        self.start_time = time.monotonic()
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=self.stderr_file, env=env, text=True, bufsize=1)
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.p.stdout:
            self.lines.put((time.monotonic(), line.rstrip("\n")))
        self.lines.put((time.monotonic(), None))

    @property
    def pid(self):
        return self.p.pid

    def send(self, obj):
        self.p.stdin.write(json.dumps(obj) + "\n")
        self.p.stdin.flush()

    def read_json(self, timeout, want=None):
        """The next JSON line (with key `want` when given) within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError("%s: no answer in %.0f s" % (self.name, timeout))
            try:
                _t, line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError("%s exited (rc=%s)" % (self.name, self.p.wait()))
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if want is None or want in obj:
                return obj

    def close(self, timeout=30):
        """Closes stdin (the bench servers and clients stop on that), then SIGTERM/SIGKILL."""
        try:
            if self.p.stdin:
                self.p.stdin.close()
        except OSError:
            pass
        try:
            self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.terminate()
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()

    def terminate(self, timeout=60):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def cpu_ticks(pid):
    """utime + stime of a process (all its threads), clock ticks, from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])


def status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def rss_mb(pid):
    return status_kb(pid, "VmRSS") / 1024.0


def tree_pids(pid):
    """pid and all its descendants (zun-compute forks privsep helpers)."""
    out = [pid]
    try:
        kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    except OSError:
        kids = []
    for k in kids:
        out.extend(tree_pids(int(k)))
    return out


def rabbitmqctl(*args):
    r = subprocess.run(["rabbitmqctl"] + list(args), capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("rabbitmqctl %s: %s" % (" ".join(args), r.stderr.strip()))
    return r.stdout


class Vhost:
    def __init__(self, prefix):
        self.name = "%s-%s" % (prefix, uuid.uuid4().hex[:8])
        rabbitmqctl("add_vhost", self.name)
        rabbitmqctl("set_permissions", "-p", self.name, "guest", ".*", ".*", ".*")

    @property
    def url(self):
        return RABBIT + self.name

    def depth(self, queue_name):
        out = rabbitmqctl("list_queues", "-p", self.name, "-q", "--no-table-headers", "name", "messages")
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == queue_name:
                return int(parts[1])
        return None

    def delete(self):
        subprocess.run(["rabbitmqctl", "delete_vhost", self.name], capture_output=True)


class Db:
    def __init__(self, prefix):
        self.name = "%s_%s" % (prefix, uuid.uuid4().hex[:10])
        r = subprocess.run(["bash", os.path.join(HERE, "zun-db.sh"), "--fast", self.name], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("zun-db.sh: " + r.stderr.strip())
        self.url = r.stdout.strip().splitlines()[-1].strip()

    def delete(self):
        subprocess.run(["bash", os.path.join(HERE, "zun-db.sh"), "--drop", self.name], capture_output=True)


def docker_rm(names):
    for i in range(0, len(names), 100):
        subprocess.run(["docker", "rm", "-f"] + names[i:i + 100], capture_output=True)


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


# --------------------------------------------------------------------------- output

def fmt(v, unit=""):
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v
    if abs(v) >= 1000:
        s = "{:,.0f}".format(v)
    elif abs(v) >= 100:
        s = "%.0f" % v
    elif abs(v) >= 10:
        s = "%.1f" % v
    else:
        s = "%.2f" % v
    return s + unit


def table(title, rows, ours="zun-compute-rs", ref="Python"):
    """rows: (label, ours, reference, ratio text)."""
    head = ("", ours, ref, "ratio")
    cells = [head] + [(r[0], r[1], r[2], r[3]) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(4)]
    print()
    print("== " + title)
    for i, c in enumerate(cells):
        print("  ".join([c[0].ljust(widths[0])] + [c[j].rjust(widths[j]) for j in (1, 2, 3)]))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    sys.stdout.flush()


def table_n(title, head, rows):
    """A table with any number of columns; rows are tuples of strings."""
    cells = [tuple(head)] + [tuple(r) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    print()
    print("== " + title)
    for i, c in enumerate(cells):
        print("  ".join([c[0].ljust(widths[0])] + [c[j].rjust(widths[j]) for j in range(1, len(head))]))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    sys.stdout.flush()


def ratio(a, b, digits=1):
    if a is None or b is None or b == 0:
        return None
    return a / b


def rnd(x, digits=2):
    return None if x is None else round(x, digits)


def rtext(x):
    return "n/a" if x is None else ("%.1fx" % x if x < 100 else "%.0fx" % x)


# --------------------------------------------------------------------------- benches

class Bench:
    def __init__(self, args):
        self.a = args
        self.py = os.path.join(args.venv, "bin", "python")
        self.tmp = tempfile.mkdtemp(prefix="zunrs-bench-")
        self.cleanups = []
        self.summary = {}

    def conf(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def logpath(self, name):
        return os.path.join(self.tmp, name + ".log")

    def cleanup(self):
        for fn in reversed(self.cleanups):
            try:
                fn()
            except Exception as e:  # keep cleaning
                log("cleanup: %r" % e)
        if not self.a.keep:
            # Whatever a run left in Docker (e.g. a create that settled after its side
            # was torn down) goes by label, so nothing piles up between runs.
            try:
                ids = subprocess.run(["docker", "ps", "-aq", "--filter", "label=app=bench"],
                                     capture_output=True, text=True).stdout.split()
                if ids:
                    subprocess.run(["docker", "rm", "-f"] + ids, capture_output=True)
            except OSError as e:
                log("cleanup: %r" % e)
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- 1. codec -----------------------------------------------------------------
    def codec(self):
        a = self.a
        secs, rep = ("0.3", "1") if a.smoke else ("2", str(a.repeat))
        log("codec: Rust harness")
        r = subprocess.run([a.harness, "codec", "--seconds", secs, "--repeat", rep], capture_output=True, text=True, check=True)
        ours = json.loads(r.stdout.strip().splitlines()[-1])
        log("codec: Python chain")
        r = subprocess.run([self.py, os.path.join(CONF_DIR, "bench_codec.py"), "--seconds", secs, "--repeat", rep],
                           capture_output=True, text=True, check=True)
        ref = json.loads(r.stdout.strip().splitlines()[-1])
        rows, ratios = [], []
        for key, label in (("create_decode_per_s", "container_create decode+parse (msg/s)"),
                           ("show_decode_per_s", "container_show decode+parse (msg/s)"),
                           ("reply_encode_per_s", "container_show reply encode (msg/s)")):
            x = ratio(ours[key], ref[key])
            ratios.append(x)
            rows.append((label, fmt(ours[key]), fmt(ref[key]), rtext(x)))
        rows.append(("container_create decode (µs/msg)", fmt(1e6 / ours["create_decode_per_s"]),
                     fmt(1e6 / ref["create_decode_per_s"]), ""))
        table("1. Codec (messages/s, one core; median of %s runs)" % rep, rows, ref="Python oslo+zun")
        us = lambda per_s: 1e6 / per_s if per_s else None
        dec, dec_floor, dec_value = (us(ours["create_decode_per_s"]), us(ours["create_floor_ignored_per_s"]),
                                     us(ours["create_floor_value_per_s"]))
        # encode_us: the reply's encode alone, against serde_json writing the same reply
        # Value (the issue's definition); the object -> Value step is shown apart (a copy
        # here, a move in the worker's container_show). Older harnesses lack the key.
        enc_obj = us(ours["reply_encode_per_s"])
        enc, enc_floor = us(ours.get("reply_encode_only_per_s") or ours["reply_encode_per_s"]), us(ours["reply_encode_floor_per_s"])
        py_dec, py_enc = us(ref["create_decode_per_s"]), us(ref["reply_encode_per_s"])
        rows = [("container_create decode+parse (µs)", fmt(dec), fmt(dec_floor), rtext(ratio(dec, dec_floor)), fmt(py_dec),
                 rtext(ratio(py_dec, dec))),
                ("  floor into Value instead (µs)", "", fmt(dec_value), rtext(ratio(dec, dec_value)), "", ""),
                ("container_show reply encode (µs)", fmt(enc), fmt(enc_floor), rtext(ratio(enc, enc_floor)), "", ""),
                ("  with the object copied to a Value first (µs)", fmt(enc_obj), "", "", fmt(py_enc),
                 rtext(ratio(py_enc, enc_obj)))]
        table_n("1b. Codec against its floor: serde_json on the same bytes (decode: envelope, then oslo.message into "
                "IgnoredAny; encode: the same reply Value, then the envelope); CPU µs per message",
                ("", "zun-compute-rs", "floor", "ours/floor", "Python", "Python/ours"), rows)
        self.summary["codec_ratio"] = round(min(ratios), 1)
        self.summary.update({"decode_us": rnd(dec), "decode_floor_us": rnd(dec_floor), "decode_value_floor_us": rnd(dec_value),
                             "encode_us": rnd(enc), "encode_floor_us": rnd(enc_floor)})
        self.summary["codec"] = {"ours": ours, "python": ref}

    # -- 2. RPC server cost ---------------------------------------------------------------
    def start_server(self, side, conf_path, expect=0):
        extra = ["--expect", str(expect)] if expect else []
        if side == "ours":
            argv = [self.a.harness, "serve", "--conf", conf_path] + extra
        elif side == "floor":
            argv = [self.a.harness, "serve-floor", "--conf", conf_path] + extra
        else:
            argv = [self.py, os.path.join(CONF_DIR, "bench_oslo_server.py"), conf_path] + extra
        p = Proc(argv, "%s server" % side, stderr_path=self.logpath("server-" + side))
        ready = p.read_json(60, "ready")
        return p, ready

    def side_conf(self, side, vhost, host):
        return self.conf("rpc-%s-%s.conf" % (side, vhost.name), "[DEFAULT]\nhost = %s\ntransport_url = %s\n" % (host, vhost.url))

    def rpc(self):
        a = self.a
        secs = 1.0 if a.smoke else a.rpc_seconds
        rep = 1 if a.smoke else a.repeat
        sides = {}
        try:
            for side in ("ours", "floor", "python"):
                vh = Vhost("zunrs-bench-rpc")
                self.cleanups.append(vh.delete)
                host = "bench-%s" % side
                conf = self.side_conf(side, vh, host)
                if side == "floor":
                    # The bare loop only consumes: our server declares the topology first.
                    self.start_server("ours", conf)[0].close()
                server, _ = self.start_server(side, conf)
                client = Proc([self.py, os.path.join(CONF_DIR, "bench_rpc_client.py"), conf, host], "%s client" % side,
                              stderr_path=self.logpath("client-" + side))
                client.read_json(120, "ready")
                sides[side] = (server, client)
            results = {s: {c: [] for c in a.concurrency} for s in sides}
            for r in range(rep):
                for c in a.concurrency:
                    for side, (server, client) in sides.items():
                        log("rpc: %s, concurrency %d, run %d/%d" % (side, c, r + 1, rep))
                        t0 = cpu_ticks(server.pid)
                        client.send({"mode": "call", "concurrency": c, "seconds": secs})
                        out = client.read_json(secs + 120)
                        t1 = cpu_ticks(server.pid)
                        if "error" in out or not out.get("calls"):
                            raise RuntimeError("%s client: %s" % (side, out))
                        out["server_cpu_us_per_call"] = (t1 - t0) * 1e6 / CLK_TCK / out["calls"]
                        out["client_cpu_us_per_call"] = out["client_cpu_s"] * 1e6 / out["calls"]
                        results[side][c].append(out)
        finally:
            for server, client in sides.values():
                client.close()
                server.close()
        rows, cpu_ratios = [], []
        summary = {}
        for c in a.concurrency:
            m = {s: {k: med([o[k] for o in results[s][c]]) for k in
                     ("calls_per_s", "p50_ms", "p99_ms", "server_cpu_us_per_call", "client_cpu_us_per_call")} for s in results}
            summary[c] = m
            o, p = m["ours"], m["python"]
            rows.append(("c=%d calls/s" % c, fmt(o["calls_per_s"]), fmt(p["calls_per_s"]), rtext(ratio(o["calls_per_s"], p["calls_per_s"]))))
            rows.append(("c=%d p50 latency (ms)" % c, fmt(o["p50_ms"]), fmt(p["p50_ms"]), rtext(ratio(p["p50_ms"], o["p50_ms"]))))
            rows.append(("c=%d p99 latency (ms)" % c, fmt(o["p99_ms"]), fmt(p["p99_ms"]), rtext(ratio(p["p99_ms"], o["p99_ms"]))))
            x = ratio(p["server_cpu_us_per_call"], o["server_cpu_us_per_call"])
            cpu_ratios.append(x)
            rows.append(("c=%d server CPU per call (µs)" % c, fmt(o["server_cpu_us_per_call"]), fmt(p["server_cpu_us_per_call"]), rtext(x)))
            rows.append(("c=%d client CPU per call (µs)" % c, fmt(o["client_cpu_us_per_call"]), fmt(p["client_cpu_us_per_call"]), ""))
        table("2. RPC server cost: real oslo client -> no-op method (%gs runs, median of %d)" % (secs, rep), rows,
              ref="oslo (eventlet)")
        rows = []
        worst = None
        for c in a.concurrency:
            o, f, p = (summary[c][s] for s in ("ours", "floor", "python"))
            oc, fc, pc = o["server_cpu_us_per_call"], f["server_cpu_us_per_call"], p["server_cpu_us_per_call"]
            rows.append(("c=%d server CPU per call (µs)" % c, fmt(oc), fmt(fc), rtext(ratio(oc, fc)), fmt(pc), rtext(ratio(pc, oc))))
            rows.append(("c=%d calls/s" % c, fmt(o["calls_per_s"]), fmt(f["calls_per_s"]), "", fmt(p["calls_per_s"]), ""))
            if oc is not None and (worst is None or oc > worst[0]):
                worst = (oc, fc)
        table_n("2b. RPC server CPU against the bare lapin loop (consume + ack + fixed reply, no codec, no confirms)",
                ("", "zun-compute-rs", "lapin floor", "ours/floor", "Python", "Python/ours"), rows)
        self.summary["rpc_cpu_ratio"] = round(min(cpu_ratios), 1) if None not in cpu_ratios else None
        # The worse of the concurrencies, with the floor at the same concurrency.
        self.summary["rpc_cpu_us"] = rnd(worst[0], 1) if worst else None
        self.summary["rpc_floor_us"] = rnd(worst[1], 1) if worst else None
        self.summary["rpc"] = {str(c): v for c, v in summary.items()}

    # -- 3. Drain ---------------------------------------------------------------------------
    def drain(self):
        a = self.a
        n = 500 if a.smoke else a.drain_count
        rep = 1 if a.smoke else a.drain_repeat
        results = {"ours": [], "floor": [], "python": []}
        for r in range(rep):
            for side in ("ours", "floor", "python"):
                log("drain: %s, %d casts, run %d/%d" % (side, n, r + 1, rep))
                vh = Vhost("zunrs-bench-drain")
                try:
                    host = "drain-%s" % side
                    conf = self.side_conf(side, vh, host)
                    # Once up and down: the server declares its (non auto-delete) queues
                    # (ours for the floor, which only consumes).
                    server, _ = self.start_server("ours" if side == "floor" else side, conf)
                    server.close()
                    client = Proc([self.py, os.path.join(CONF_DIR, "bench_rpc_client.py"), conf, host, "--no-warmup"],
                                  "drain client", stderr_path=self.logpath("drain-client"))
                    client.read_json(120, "ready")
                    client.send({"mode": "cast", "count": n, "concurrency": 8})
                    sent = client.read_json(600)
                    client.close()
                    # Casts are published without confirms: wait until the broker holds them all.
                    deadline = time.monotonic() + 60
                    queued = vh.depth("zun-compute.%s" % host)
                    while queued != n and time.monotonic() < deadline:
                        time.sleep(0.5)
                        queued = vh.depth("zun-compute.%s" % host)
                    if queued != n:
                        raise RuntimeError("drain: %s queued instead of %d (was the broker restarted?)" % (queued, n))
                    server, _ = self.start_server(side, conf, expect=n)
                    out = server.read_json(600, "drained")
                    server.close()
                    # From the server's start: a server that buffers deliveries before it
                    # runs the first one would look faster measured from its first request.
                    out["rate"] = n / out["ready_to_last_s"] if out["ready_to_last_s"] > 0 else None
                    out["rate_after_first"] = (n - 1) / out["first_to_last_s"] if out["first_to_last_s"] > 0 else None
                    out["cpu_us_per_cast"] = out["cpu_ticks_since_ready"] * 1e6 / CLK_TCK / n
                    out["cast_rate_client"] = n / sent["elapsed_s"]
                    results[side].append(out)
                finally:
                    vh.delete()
        m = {s: {k: med([o[k] for o in results[s]]) for k in ("rate", "rate_after_first", "ready_to_last_s", "cpu_us_per_cast")}
             for s in results}
        o, p = m["ours"], m["python"]
        x = ratio(o["rate"], p["rate"])
        rows = [("casts consumed per second", fmt(o["rate"]), fmt(p["rate"]), rtext(x)),
                ("time to drain %d (s)" % n, fmt(o["ready_to_last_s"]), fmt(p["ready_to_last_s"]),
                 rtext(ratio(p["ready_to_last_s"], o["ready_to_last_s"]))),
                ("  rate after the first cast ran", fmt(o["rate_after_first"]), fmt(p["rate_after_first"]),
                 rtext(ratio(o["rate_after_first"], p["rate_after_first"]))),
                ("server CPU per cast (µs)", fmt(o["cpu_us_per_cast"]), fmt(p["cpu_us_per_cast"]),
                 rtext(ratio(p["cpu_us_per_cast"], o["cpu_us_per_cast"])))]
        table("3. Drain: %d queued no-op casts, server started afterwards (median of %d)" % (n, rep), rows, ref="oslo (eventlet)")
        f = m["floor"]
        y = ratio(o["rate"], f["rate"])
        rows = [("casts consumed per second", fmt(o["rate"]), fmt(f["rate"]), rtext(y)),
                ("server CPU per cast (µs)", fmt(o["cpu_us_per_cast"]), fmt(f["cpu_us_per_cast"]),
                 rtext(ratio(o["cpu_us_per_cast"], f["cpu_us_per_cast"])))]
        table("3b. Drain against the bare lapin loop (consume + ack, no codec)", rows, ref="lapin floor")
        self.summary["drain_ratio"] = round(x, 1) if x else None
        self.summary["drain_floor_ratio"] = round(y, 2) if y else None
        self.summary["drain"] = m

    # -- workers ---------------------------------------------------------------------------
    def worker_env(self, name, extra=""):
        vh = Vhost("zunrs-bench-%s" % name)
        self.cleanups.append(vh.delete)
        db = Db("zunrs_bench")
        self.cleanups.append(db.delete)
        state = os.path.join(self.tmp, "state-" + name)
        os.makedirs(state, exist_ok=True)
        host = "bench-%s-%s" % (name, uuid.uuid4().hex[:6])
        conf = self.conf("worker-%s.conf" % name,
                         "[DEFAULT]\nhost = %s\ntransport_url = %s\nstate_path = %s\nperiodic_interval_max = %d\n"
                         "[database]\nconnection = %s\n[admin]\nlisten =\n[compute]\nmax_concurrent_operations = %d\n%s\n"
                         % (host, vh.url, state, self.a.periodic, db.url, self.a.e2e_concurrency, extra))
        return host, conf

    def start_worker(self, conf, name):
        """Our worker binary; returns (Proc, seconds from spawn to 'consuming')."""
        logp = self.logpath("worker-" + name)
        env = dict(os.environ, RUST_LOG="info,lapin=warn")
        t0 = time.monotonic()
        p = subprocess.Popen([self.a.worker, "--config-file", conf], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, env=env, text=True, bufsize=1)
        got = queue.Queue()

        def pump():
            with open(logp, "a") as f:
                for line in p.stderr:
                    f.write(line)
                    if "zun-compute-rs consuming" in line:
                        got.put(time.monotonic())
            got.put(None)

        threading.Thread(target=pump, daemon=True).start()
        t = got.get(timeout=120)
        if t is None:
            raise RuntimeError("worker exited before consuming; see %s" % logp)
        return p, t - t0

    def stop_worker(self, p):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def zun_creates(self, conf, host, n, run, prefix):
        r = subprocess.run([self.py, os.path.join(CONF_DIR, "bench_e2e.py"), conf, host, "--n", str(n), "--run", str(run),
                            "--prefix", prefix, "--image", self.a.image, "--timeout", str(self.a.e2e_timeout)],
                           capture_output=True, text=True)
        lines = [l for l in r.stdout.splitlines() if l.startswith("{")]
        if r.returncode != 0 or not lines:
            raise RuntimeError("bench_e2e.py failed: %s" % r.stderr[-2000:])
        out = json.loads(lines[-1])
        self.cleanups.append(lambda u=out["uuids"]: docker_rm(["zun-" + x for x in u]))
        return out

    # -- 4. End to end ------------------------------------------------------------------------
    def e2e(self):
        a = self.a
        n = 5 if a.smoke else a.n
        rep = 1 if a.smoke else a.repeat
        host, conf = self.worker_env("e2e")
        worker, _ = self.start_worker(conf, "e2e")
        self.cleanups.append(lambda: self.stop_worker(worker))
        ours, floor, cpu = [], [], []
        try:
            for r in range(rep):
                log("e2e: %d creates through zun's rpcapi, run %d/%d" % (n, r + 1, rep))
                t0 = cpu_ticks(worker.pid)
                out = self.zun_creates(conf, host, n, 1, "e2e%d" % r)
                cpu.append((cpu_ticks(worker.pid) - t0) * 1000.0 / CLK_TCK / n)
                if not out["done"]:
                    raise RuntimeError("e2e: not all Running in %ss: %s" % (a.e2e_timeout, out.get("statuses")))
                ours.append(out["elapsed_s"])
                docker_rm(["zun-" + x for x in out["uuids"]])
                log("e2e: %d creates+starts straight to Docker, run %d/%d" % (n, r + 1, rep))
                fr = subprocess.run([a.harness, "docker-floor", "--n", str(n), "--concurrency", str(a.e2e_concurrency),
                                     "--image", a.image, "--prefix", "zunrs-bench-floor-%s" % uuid.uuid4().hex[:6]],
                                    capture_output=True, text=True)
                if fr.returncode != 0:
                    raise RuntimeError("docker-floor: %s %s" % (fr.stdout, fr.stderr))
                floor.append(json.loads(fr.stdout.strip().splitlines()[-1])["elapsed_s"])
        finally:
            self.stop_worker(worker)
        real, real_cpu = [], []
        if a.real_zun:
            try:
                real, real_cpu = self.real_zun_e2e(n, rep)
            except Exception as e:
                log("e2e: real zun-compute not measured: %r" % e)
        o, f, z = med(ours), med(floor), med(real)
        over = (o - f) / f * 100 if f else None
        rows = [("%d creates until Running (s)" % n, fmt(o), fmt(f), "%+.1f%%" % over if over is not None else "n/a"),
                ("containers/s", fmt(n / o), fmt(n / f), "")]
        table("4. End to end: %d container_create (run=true, busybox), concurrency %d (median of %d)"
              % (n, a.e2e_concurrency, rep), rows, ref="Docker API floor")
        if z:
            zover = (z - f) / f * 100 if f else None
            rows = [("%d creates until Running (s)" % n, fmt(o), fmt(z), rtext(ratio(z, o))),
                    ("containers/s", fmt(n / o), fmt(n / z), ""),
                    ("overhead over the Docker floor", "%+.1f%%" % over, "%+.1f%%" % zover if zover is not None else "n/a", "")]
            rows.append(("worker CPU per create (ms)", fmt(med(cpu)), fmt(med(real_cpu)), rtext(ratio(med(real_cpu), med(cpu)))))
            table("4b. End to end, the same creates against the real zun-compute", rows, ref="zun-compute 18")
        self.summary["e2e_overhead_pct"] = round(over, 1) if over is not None else None
        # Worker CPU (utime + stime of the process, clock ticks of 10 ms) from the first
        # cast to the last row Running, per container.
        self.summary["create_cpu_ms"] = rnd(med(cpu))
        x = ratio(med(real_cpu), med(cpu))
        self.summary["create_cpu_ratio"] = rnd(x, 1)
        self.summary["e2e"] = {"n": n, "concurrency": a.e2e_concurrency, "ours_s": o, "docker_floor_s": f,
                               "python_zun_compute_s": z, "ours_runs": ours, "floor_runs": floor, "python_runs": real,
                               "ours_cpu_ms_per_create": cpu, "python_cpu_ms_per_create": real_cpu}

    # -- 5. Footprint ------------------------------------------------------------------------
    def footprint(self):
        a = self.a
        m = 20 if a.smoke else a.tracked
        rep = 1 if a.smoke else a.repeat
        host, conf = self.worker_env("foot")
        starts = []
        worker = None
        for r in range(rep):
            log("footprint: start-up %d/%d" % (r + 1, rep))
            worker, secs = self.start_worker(conf, "foot")
            starts.append(secs)
            if r < rep - 1:
                self.stop_worker(worker)
        self.cleanups.append(lambda: self.stop_worker(worker))
        time.sleep(a.settle)
        idle = rss_mb(worker.pid)
        first = min(20, m)
        log("footprint: %d containers created (run=false) through zun's rpcapi" % first)
        out20 = self.zun_creates(conf, host, first, 0, "foot20")
        time.sleep(a.settle)
        rss20 = rss_mb(worker.pid)
        log("footprint: %d more containers created (run=false) through zun's rpcapi" % (m - first))
        out = self.zun_creates(conf, host, m - first, 0, "foot") if m > first else {"done": True, "uuids": [], "errors": 0}
        out["uuids"] = out20["uuids"] + out["uuids"]
        out["errors"] = out.get("errors", 0) + out20.get("errors", 0)
        out["done"] = out["done"] and out20["done"]
        if not out["done"] and out.get("errors", 0) == 0:
            raise RuntimeError("footprint: not all Created: %s" % out.get("statuses"))
        if out.get("errors"):
            log("footprint: %d of %d rows went to Error (state sync racing the creates); still tracked" % (out["errors"], m))
        # One state-sync period over all of them, then the figure.
        time.sleep(a.periodic + 2)
        tracked = rss_mb(worker.pid)
        peak = status_kb(worker.pid, "VmHWM") / 1024.0
        self.stop_worker(worker)
        docker_rm(["zun-" + x for x in out["uuids"]])
        self.summary["rss_idle_mb"] = round(idle, 1)
        self.summary["rss_20_mb"] = round(rss20, 1)
        self.summary["rss_500_mb"] = round(tracked, 1)
        self.summary["footprint"] = {"startup_ms": med(starts) * 1000, "rss_idle_mb": idle, "rss_tracked_mb": tracked,
                                     "rss_peak_mb": peak, "tracked": m, "rss_20_mb": rss20,
                                     "tracked_in_error": out.get("errors", 0)}
        self.summary["startup_ms"] = round(med(starts) * 1000)
        ref = self.real_zun_footprint() if a.real_zun else {}
        self.summary["footprint"]["python"] = ref
        rows = [("start-up to consuming (ms)", fmt(med(starts) * 1000), fmt(ref.get("startup_ms")),
                 rtext(ratio(ref.get("startup_ms"), med(starts) * 1000))),
                ("RSS idle (MiB)", fmt(idle), fmt(ref.get("rss_idle_mb")), rtext(ratio(ref.get("rss_idle_mb"), idle))),
                ("RSS with %d containers (MiB)" % first, fmt(rss20), "n/a", ""),
                ("RSS with %d containers tracked (MiB)" % m, fmt(tracked), "n/a", ""),
                ("peak RSS (MiB)", fmt(peak), "n/a", "")]
        table("5. Footprint (median of %d start-ups)" % rep, rows, ref="zun-compute 18")

    def real_zun_env(self, name):
        """A vhost, a database and a zun.conf for the real zun-compute."""
        vh = Vhost("zunrs-bench-real%s" % name)
        self.cleanups.append(vh.delete)
        db = Db("zunrs_bench_real")
        self.cleanups.append(db.delete)
        state = os.path.join(self.tmp, "state-real" + name)
        os.makedirs(state, exist_ok=True)
        host = "bench-real%s-%s" % (name, uuid.uuid4().hex[:6])
        logf = os.path.join(self.tmp, "realzun-%s.log" % name)
        conf = self.conf("realzun-%s.conf" % name, REAL_ZUN_CONF % {"host": host, "url": vh.url, "state": state,
                                                                   "db": db.url, "log": logf})
        return host, conf

    def start_real_zun(self, conf, name):
        """The real zun-compute (scripts/bench-zun-compute.py); returns (Proc, seconds from exec to consuming)."""
        p = Proc([self.py, os.path.join(HERE, "bench-zun-compute.py"), "--config-file", conf], "zun-compute",
                 stdin=False, stderr_path=self.logpath("realzun-" + name))
        try:
            ready = p.read_json(180, "consuming")
        except Exception:
            p.terminate()
            raise
        return p, ready["consuming"]

    def real_zun_e2e(self, n, rep):
        """The same creates against the real zun-compute; elapsed seconds per run."""
        host, conf = self.real_zun_env("e2e")
        p, _ = self.start_real_zun(conf, "e2e")
        runs, cpu = [], []
        def tree_cpu():
            total = 0
            for x in tree_pids(p.pid):
                try:
                    total += cpu_ticks(x)
                except (OSError, IndexError, ValueError):
                    pass  # a child that just exited
            return total
        try:
            time.sleep(self.a.settle)
            for r in range(rep):
                log("e2e: %d creates through zun's rpcapi to the real zun-compute, run %d/%d" % (n, r + 1, rep))
                t0 = tree_cpu()
                out = self.zun_creates(conf, host, n, 1, "real%d" % r)
                cpu.append((tree_cpu() - t0) * 1000.0 / CLK_TCK / n)
                if not out["done"]:
                    raise RuntimeError("not all Running in %ss: %s" % (self.a.e2e_timeout, out.get("statuses")))
                runs.append(out["elapsed_s"])
                docker_rm(["zun-" + x for x in out["uuids"]])
        finally:
            p.terminate()
        return runs, cpu

    def real_zun_footprint(self):
        """The real zun-compute: start-up to consuming and idle RSS (with its children)."""
        a = self.a
        try:
            host, conf = self.real_zun_env("foot")
            starts, rss = [], []
            for r in range(1 if a.smoke else min(a.repeat, 2)):
                log("footprint: real zun-compute start-up %d" % (r + 1))
                p, secs = self.start_real_zun(conf, "foot")
                try:
                    starts.append(secs)
                    time.sleep(a.settle)
                    rss.append(sum(rss_mb(x) for x in tree_pids(p.pid) if os.path.exists("/proc/%d" % x)))
                finally:
                    p.terminate()
            return {"startup_ms": med(starts) * 1000, "rss_idle_mb": med(rss)}
        except Exception as e:
            log("real zun-compute not measured: %r" % e)
            return {}


REAL_ZUN_CONF = """[DEFAULT]
host = %(host)s
transport_url = %(url)s
state_path = %(state)s
periodic_interval_max = 60
log_file = %(log)s
container_driver = docker
capsule_driver = docker
image_driver_list = docker
default_image_driver = docker
[database]
connection = %(db)s
[network]
driver = noop
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--harness", required=True, help="the zunrs_bench bench executable")
    ap.add_argument("--worker", required=True, help="the release zun-compute-rs binary")
    ap.add_argument("--venv", default=os.environ.get("ZUN_RS_VENV", "/var/tmp/zun-rs/venv"))
    ap.add_argument("--smoke", action="store_true", help="everything with tiny N (< 2 min)")
    ap.add_argument("--only", default="codec,rpc,drain,e2e,footprint")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement (median reported)")
    ap.add_argument("--rpc-seconds", type=float, default=4.0)
    ap.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 32])
    ap.add_argument("--drain-count", type=int, default=20000)
    ap.add_argument("--drain-repeat", type=int, default=2)
    ap.add_argument("-n", "--n", type=int, default=50, help="containers in the end-to-end run")
    ap.add_argument("--e2e-concurrency", type=int, default=16, help="worker max_concurrent_operations = Docker floor concurrency")
    ap.add_argument("--e2e-timeout", type=float, default=300)
    ap.add_argument("--tracked", type=int, default=500, help="containers tracked for the RSS figure")
    ap.add_argument("--periodic", type=int, default=10, help="worker periodic_interval_max in the footprint run")
    ap.add_argument("--settle", type=float, default=3.0, help="seconds idle before reading RSS")
    ap.add_argument("--image", default="127.0.0.1:5000/busybox:latest")
    ap.add_argument("--no-real-zun", dest="real_zun", action="store_false", help="skip the real zun-compute figures")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (confs, logs)")
    a = ap.parse_args()

    b = Bench(a)
    started = time.monotonic()
    wanted = [x.strip() for x in a.only.split(",") if x.strip()]
    print("zun-compute-rs benchmarks  %s  host: %s, %d CPUs, %s" % (
        time.strftime("%Y-%m-%d %H:%M"), cpu_model(), os.cpu_count(), mem_total()))
    failed = []
    try:
        for name in ("codec", "rpc", "drain", "e2e", "footprint"):
            if name in wanted:
                try:
                    getattr(b, name)()
                except Exception as e:
                    failed.append(name)
                    log("%s FAILED: %s" % (name, e))
    finally:
        b.cleanup()
    try:
        b.summary["binary_mb"] = round(os.path.getsize(a.worker) / 1e6, 2)
    except OSError:
        b.summary["binary_mb"] = None
    met, missed, unmeasured = check_targets(b.summary)
    out = {k: b.summary.get(k) for k in HEADLINE}
    out["targets_met"] = met
    out["targets_missed"] = missed
    out["targets_not_measured"] = unmeasured
    out["details"] = {k: v for k, v in b.summary.items() if k not in out}
    out["failed"] = failed
    out["smoke"] = a.smoke
    out["elapsed_s"] = round(time.monotonic() - started, 1)
    print()
    print(json.dumps(out, default=str))
    return 1 if failed else 0


HEADLINE = ("codec_ratio", "rpc_cpu_ratio", "drain_ratio", "e2e_overhead_pct", "rss_idle_mb", "startup_ms",
            "decode_us", "decode_floor_us", "decode_value_floor_us", "encode_us", "encode_floor_us", "rpc_cpu_us",
            "rpc_floor_us", "drain_floor_ratio", "create_cpu_ms", "create_cpu_ratio", "rss_20_mb", "rss_500_mb", "binary_mb")


def check_targets(s):
    """Issue 13's targets: (met, missed, not measured), as lists of JSON keys."""
    def le_floor(key, floor, k):
        return s.get(key) is not None and s.get(floor) is not None and s[key] <= k * s[floor]
    targets = {
        "decode_us": lambda: le_floor("decode_us", "decode_floor_us", 1.5),
        "encode_us": lambda: le_floor("encode_us", "encode_floor_us", 1.5),
        "rpc_cpu_us": lambda: s["rpc_cpu_us"] <= 40 and le_floor("rpc_cpu_us", "rpc_floor_us", 2.0),
        "drain_ratio": lambda: s["drain_ratio"] >= 10,
        "drain_floor_ratio": lambda: s["drain_floor_ratio"] >= 0.7,
        "create_cpu_ms": lambda: s["create_cpu_ms"] <= 2.0,
        "create_cpu_ratio": lambda: s["create_cpu_ratio"] >= 35,
        "e2e_overhead_pct": lambda: s["e2e_overhead_pct"] <= 5,
        "rss_idle_mb": lambda: s["rss_idle_mb"] <= 12,
        "rss_20_mb": lambda: s["rss_20_mb"] <= 16,
        "rss_500_mb": lambda: s["rss_500_mb"] <= 30,
        "startup_ms": lambda: s["startup_ms"] <= 100,
        "binary_mb": lambda: s["binary_mb"] <= 15,
    }
    met, missed, unmeasured = [], [], []
    for key, ok in targets.items():
        if s.get(key) is None:
            unmeasured.append(key)
        elif ok():
            met.append(key)
        else:
            missed.append(key)
    return met, missed, unmeasured


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def mem_total():
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
        return "%.0f GiB RAM" % (kb / 1024 / 1024)
    except (OSError, ValueError, IndexError):
        return "?"


if __name__ == "__main__":
    sys.exit(main())
