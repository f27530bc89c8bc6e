"""bench/c100k: hold many WebSocket connections on one machine, then fan out.

    python3 bench/c100k.py [--conns 100000] [--workers 7] [--rounds 5]
                           [--compare 15000] [--no-compare] [--set-sysctl]
                           [--markdown bench/C100K.md]

The lua-ws server (bench/c100k_server.lua) runs as --workers processes
sharing one port (ws.workers, reuseport); load generators
(bench/c100k_client.c, at most 16 000 connections each, each from its own
127.0.0.x source address) open --conns connections; every connection
subscribes to one topic, and each round publishes one 64-byte message to
it.  With --compare N the same is measured, one server process and N
connections each, for lua-ws (one worker), Node `ws` looping client.send
(bench/c100k_node.js) and a plain C fan-out over raw TCP
(bench/c100k_raw.c).

Figures: server user-space memory per connection (RssAnon of the server
processes after the connections settled and a full GC, minus before);
kernel memory (TCP socket buffers from /proc/net/sockstat, and the socket,
inode, file and epoll slab objects from /proc/slabinfo, both ends of each
connection being on this machine); connect rate; deliveries per second per
core (deliveries / server CPU seconds from /proc/PID/task/*/schedstat,
which counts nanoseconds); delivery latency from the publish request to
the client reading the message, p50/p99 over all deliveries.

Needs root only for --set-sysctl (it says what it sets) and /proc/slabinfo.
Not part of CI.  Run it with nice on a shared machine.
"""
import argparse
import glob
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from array import array

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
PER_CLIENT = 16000
LUA = os.environ.get("LUA", "lua5.4")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def sh(cmd):
    return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()


def sysctl(name):
    try:
        with open("/proc/sys/" + name.replace(".", "/")) as f:
            return " ".join(f.read().split())
    except OSError:
        return None


WANT = {
    "net.core.somaxconn": "65535",
    "net.ipv4.tcp_max_syn_backlog": "65535",
    "net.ipv4.ip_local_port_range": "1024 65535",
}


def check_sysctls(set_them):
    notes = []
    for name, want in WANT.items():
        have = sysctl(name)
        if have is None:
            continue
        if set_them and have != want:
            with open("/proc/sys/" + name.replace(".", "/"), "w") as f:
                f.write(want)
            notes.append(f"set {name} = {want} (was {have})")
        else:
            notes.append(f"{name} = {have}")
    for name in ("net.ipv4.tcp_mem", "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem", "fs.file-max", "fs.nr_open",
                 "net.netfilter.nf_conntrack_max"):
        v = sysctl(name)
        if v is not None:
            notes.append(f"{name} = {v}")
    return notes


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def status_kb(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_ns(pids):
    total = 0
    for pid in pids:
        for p in glob.glob(f"/proc/{pid}/task/*/schedstat"):
            try:
                with open(p) as f:
                    total += int(f.read().split()[0])
            except OSError:
                pass
    return total


def sockstat():
    out = {}
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                parts = line.split()[1:]
                out = {parts[i]: int(parts[i + 1]) for i in range(0, len(parts), 2)}
    return out


SLABS = ("TCP", "sock_inode_cache", "filp", "eventpoll_epi", "dentry")


def slab_bytes():
    out = {}
    try:
        with open("/proc/slabinfo") as f:
            for line in f:
                parts = line.split()
                if parts and parts[0] in SLABS:
                    out[parts[0]] = int(parts[1]) * int(parts[3])
    except OSError:
        return None
    return out


def http_get_many(ports, path):
    socks = []
    for p in ports:
        s = socket.create_connection(("127.0.0.1", p))
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        socks.append(s)
    bodies = []
    for s in socks:
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        bodies.append(data.split(b"\r\n\r\n", 1)[-1].decode())
    return bodies


def memory_after_gc(ctl_ports, pids, settle):
    """The servers' RssAnon and VmRSS sums (KiB), /proc/net/sockstat and the
    socket slabs, `settle` seconds after every server ran a full GC."""
    http_get_many(ctl_ports, "/gc")
    time.sleep(settle)
    rss = sum(status_kb(p, "RssAnon") for p in pids)
    vm = sum(status_kb(p, "VmRSS") for p in pids)
    return rss, vm, sockstat(), slab_bytes()


def readline_until(proc, prefix, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"process {proc.pid} ended before printing {prefix!r}: {proc.stderr.read()}")
        if line.startswith(prefix):
            return line.split()
        if line.startswith("FAIL"):
            raise RuntimeError(f"process {proc.pid}: {line.strip()}")
    raise RuntimeError(f"no {prefix!r} from process {proc.pid} in {timeout} s")


def pct(values, p):
    if not values:
        return float("nan")
    k = min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1))))
    return values[k]


def start_server(kind, port, ctl, workers, env):
    if kind == "luaws":
        proc = subprocess.Popen(["nice", LUA, "bench/c100k_server.lua", str(port), str(ctl), str(workers)],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        pids = []
        for _ in range(workers):
            pids.append(int(readline_until(proc, "LISTEN", 30)[2]))
        return proc, pids, [ctl + i for i in range(1, workers + 1)]
    if kind == "node":
        cmd = ["nice", "node", "--expose-gc", "bench/c100k_node.js", str(port), str(ctl)]
    else:
        cmd = ["nice", os.path.join(BUILD, "c100k_raw"), str(port), str(ctl)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    readline_until(proc, "listening", 30)
    return proc, [proc.pid], [ctl]


def run(kind, conns, workers, rounds, port, ctl, tmp):
    env = dict(os.environ)
    env["NODE_PATH"] = os.path.join(BUILD, "bench-node", "node_modules")
    env["LUA_PATH"] = "./?.lua;lua/?.lua;lua/?/init.lua;;"
    env["LUA_CPATH"] = "./?.so;;"
    server, pids, ctl_ports = start_server(kind, port, ctl, workers, env)
    clients = []
    try:
        time.sleep(0.5)
        rss0, vm0, ss0, slab0 = memory_after_gc(ctl_ports, pids, 0.2)
        nclients = max(1, -(-conns // PER_CLIENT))
        share = [conns // nclients + (1 if i < conns % nclients else 0) for i in range(nclients)]
        t_start = time.time()
        for i, n in enumerate(share):
            clients.append(subprocess.Popen(
                ["nice", os.path.join(BUILD, "c100k_client"), "--port", str(port), "-n", str(n),
                 "--src", f"127.0.0.{2 + i}", "--out", os.path.join(tmp, f"{kind}-{i}")],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        open_s = []
        for c in clients:
            open_s.append(float(readline_until(c, "OPEN", 600)[2]))
        connect_s = time.time() - t_start
        time.sleep(2)
        rss1, vm1, ss1, slab1 = memory_after_gc(ctl_ports, pids, 1)
        result = {
            "kind": kind, "conns": conns, "workers": len(pids), "clients": nclients,
            "connect_s": round(connect_s, 3), "connect_rate": round(conns / connect_s),
            "user_B_per_conn": round((rss1 - rss0) * 1024 / conns, 1),
            "vmrss_B_per_conn": round((vm1 - vm0) * 1024 / conns, 1),
            "sockstat_tcp_inuse_delta": ss1.get("inuse", 0) - ss0.get("inuse", 0),
            "sockstat_mem_pages_delta": ss1.get("mem", 0) - ss0.get("mem", 0),
        }
        if slab0 and slab1:
            kb = {k: slab1.get(k, 0) - slab0.get(k, 0) for k in SLABS}
            # both ends of every connection live on this machine
            result["kernel_slab_B_per_socket"] = round(sum(kb.values()) / (2 * conns))
            result["kernel_slab_detail_B_per_socket"] = {k: round(v / (2 * conns)) for k, v in kb.items()}
        result["kernel_buffers_B_per_socket"] = round(result["sockstat_mem_pages_delta"] * 4096 / (2 * conns))
        per_round = []
        for r in range(1, rounds + 1):
            cpu0 = cpu_ns(pids)
            t0 = time.monotonic_ns()
            sent = sum(int(b or 0) for b in http_get_many(ctl_ports, f"/pub?t0={t0}&r={r}"))
            got, last_us = 0, 0.0
            for c in clients:
                parts = readline_until(c, "ROUND", 120)
                got += int(parts[2])
                last_us = max(last_us, float(parts[4]))
            cpu = cpu_ns(pids) - cpu0
            lat = array("I")
            for i in range(nclients):
                with open(os.path.join(tmp, f"{kind}-{i}.{r}"), "rb") as f:
                    lat.frombytes(f.read())
            lat = sorted(lat)
            per_round.append({"round": r, "sent": sent, "delivered": got, "server_cpu_ms": round(cpu / 1e6, 1),
                              "wall_ms": round(last_us / 1000, 1),
                              "deliveries_per_cpu_s": round(got / (cpu / 1e9)) if cpu else None,
                              "p50_ms": round(pct(lat, 50) / 1000, 2), "p99_ms": round(pct(lat, 99) / 1000, 2)})
            log(kind, per_round[-1])
            time.sleep(0.5)
        result["rounds"] = per_round

        def med(key):
            v = sorted(x[key] for x in per_round if x[key] is not None)
            return v[len(v) // 2] if v else None
        for key in ("deliveries_per_cpu_s", "p50_ms", "p99_ms", "wall_ms", "server_cpu_ms"):
            result["median_" + key] = med(key)
        result["all_delivered"] = all(x["delivered"] == conns for x in per_round)
        return result
    finally:
        for c in clients:
            c.kill()
        for c in clients:
            c.wait()
        server.terminate()
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        time.sleep(1)


def markdown(results, notes, args):
    w = []
    big = [r for r in results if r["kind"] == "luaws" and r["workers"] > 1]
    cmp_ = {r["kind"]: r for r in results if r["workers"] == 1 or r["kind"] != "luaws"}
    w.append(f"Command: `nice python3 bench/c100k.py {' '.join(sys.argv[1:])}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
             f"nproc={os.cpu_count()}, {sh('uname -r')}; load average at the end: {open('/proc/loadavg').read().split()[0]}.")
    w.append("")
    w.append("System settings: " + "; ".join(notes) + ".")
    w.append("")
    for r in big:
        w.append(f"### {r['conns']:,} connections, lua-ws, {r['workers']} workers (ws.workers + reuseport), "
                 f"{r['clients']} load generators")
        w.append("")
        w.append("| figure | value |")
        w.append("|---|---:|")
        w.append(f"| connections held | {r['conns']:,} (all delivered every round: {r['all_delivered']}) |")
        w.append(f"| connect + upgrade, all of them | {r['connect_s']} s ({r['connect_rate']:,}/s) |")
        w.append(f"| server user space (RssAnon delta after a full GC) | {r['user_B_per_conn']} B/connection |")
        w.append(f"| server VmRSS delta | {r['vmrss_B_per_conn']} B/connection |")
        if "kernel_slab_B_per_socket" in r:
            d = r["kernel_slab_detail_B_per_socket"]
            w.append(f"| kernel, socket objects per socket (slab: {', '.join(f'{k} {v}' for k, v in d.items())}) | "
                     f"{r['kernel_slab_B_per_socket']} B |")
        w.append(f"| kernel, TCP buffers per socket (/proc/net/sockstat mem, idle) | {r['kernel_buffers_B_per_socket']} B |")
        w.append(f"| fan-out of one 64-byte message to all: server CPU | {r['median_server_cpu_ms']} ms "
                 f"({r['median_deliveries_per_cpu_s']:,} deliveries per CPU second) |")
        w.append(f"| time until the last client had it | {r['median_wall_ms']} ms |")
        w.append(f"| delivery latency p50 / p99 | {r['median_p50_ms']} / {r['median_p99_ms']} ms |")
        w.append("")
        w.append("Rounds: " + "; ".join(
            f"r{x['round']}: {x['delivered']:,} delivered, CPU {x['server_cpu_ms']} ms, p50 {x['p50_ms']} p99 {x['p99_ms']} ms"
            for x in r["rounds"]) + ".")
        w.append("")
    if cmp_:
        n = next(iter(cmp_.values()))["conns"]
        w.append(f"### The same fan-out, one server process, {n:,} connections each")
        w.append("")
        w.append("| server | deliveries per CPU second | vs raw C | lua-ws vs it | fan-out CPU | p50 / p99 latency | user-space B/conn | connect/s |")
        w.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        names = {"raw": "plain C fan-out over raw TCP (`bench/c100k_raw.c`)", "luaws": "lua-ws, one worker, `srv:publish`",
                 "node": "Node `ws`, loop over `client.send`"}
        raw = cmp_.get("raw")
        lua = cmp_.get("luaws")
        for kind in ("raw", "luaws", "node"):
            r = cmp_.get(kind)
            if not r:
                continue
            d = r["median_deliveries_per_cpu_s"]
            vs_raw = f"{d / raw['median_deliveries_per_cpu_s']:.2f}×" if raw and d else "–"
            vs_lua = f"{lua['median_deliveries_per_cpu_s'] / d:.2f}×" if lua and d else "–"
            w.append(f"| {names[kind]} | {d:,} | {vs_raw} | {vs_lua} | {r['median_server_cpu_ms']} ms | "
                     f"{r['median_p50_ms']} / {r['median_p99_ms']} ms | {r['user_B_per_conn']} | {r['connect_rate']:,} |")
        w.append("")
    return "\n".join(w)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conns", type=int, default=100000)
    ap.add_argument("--workers", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--compare", type=int, default=15000)
    ap.add_argument("--no-compare", action="store_true")
    ap.add_argument("--no-big", action="store_true")
    ap.add_argument("--set-sysctl", action="store_true")
    ap.add_argument("--port", type=int, default=28000)
    ap.add_argument("--markdown")
    ap.add_argument("--json")
    args = ap.parse_args()
    notes = check_sysctls(args.set_sysctl)
    hard = raise_nofile()
    notes.append(f"ulimit -n raised to the hard limit {hard} (per process)")
    subprocess.run(["make", "-s"], cwd=ROOT, check=True)
    subprocess.run(["cc", "-O2", "-o", os.path.join(BUILD, "c100k_client"), "bench/c100k_client.c"], cwd=ROOT, check=True)
    subprocess.run(["cc", "-O2", "-o", os.path.join(BUILD, "c100k_raw"), "bench/c100k_raw.c", "-lcrypto"], cwd=ROOT,
                   check=True)
    node_dir = os.path.join(BUILD, "bench-node")
    if not os.path.isdir(os.path.join(node_dir, "node_modules", "ws")):
        # as scripts/bench.sh installs it
        os.makedirs(node_dir, exist_ok=True)
        subprocess.run("timeout 180 npm install --no-audit --no-fund ws bufferutil utf-8-validate >/dev/null 2>&1",
                       shell=True, cwd=node_dir)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_compare:
            for kind in ("raw", "luaws", "node"):
                if kind == "node" and not os.path.isdir(os.path.join(node_dir, "node_modules", "ws")):
                    notes.append("Node ws not measured: npm install of ws failed")
                    continue
                try:
                    results.append(run(kind, args.compare, 1, args.rounds, args.port, args.port + 100, tmp))
                except Exception as e:  # noqa: BLE001 - report and go on
                    log(f"{kind}: {e}")
                    notes.append(f"{kind} at {args.compare} connections failed: {e}")
        if not args.no_big:
            try:
                results.append(run("luaws", args.conns, args.workers, args.rounds, args.port + 1, args.port + 200, tmp))
            except Exception as e:  # noqa: BLE001
                log(f"big run: {e}")
                notes.append(f"lua-ws at {args.conns} connections failed: {e}")
    print(json.dumps(results, indent=1))
    md = markdown(results, notes, args)
    print(md)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(md + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
