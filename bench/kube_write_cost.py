#!/usr/bin/env python3
"""What one changed Deployment costs the Kubernetes API, whatever way it is written.

A release of N workloads ends with N Deployments written to the cluster. This measures the CPU
the API server, the controller manager and etcd spend per Deployment whose image changes,
for the ways a client could write it, side by side in one run against the tests' cluster
(tests/kube/cluster.sh, started here on loopback and stopped at the end):

  ssa-json      server-side apply of the whole object, answer as JSON (what cluster-syncer does)
  ssa-no-change the same apply again with nothing changed (what cluster-syncer skips)
  ssa-meta      the same apply, answer as protobuf PartialObjectMetadata (the smallest answer)
  merge-patch   a strategic merge patch of the image alone (not server-side apply)

For each: the API server's CPU while the writes run, then the CPU of the API server, the
controller manager and etcd from the first write until every Deployment's status has caught
up with it (observedGeneration; the new ReplicaSet is made by then) and their CPU rate is
back near idle, all per Deployment, with the CPU the three spend when nobody writes
(measured first, over 10 s, once the cluster is quiet) subtracted, and the ratios to
ssa-json. The order of the variants turns each round. Writes run one at a time on one keep-alive connection; the CPU figures do not
depend on that, the wall times do.

Usage: python3 bench/kube_write_cost.py [--deployments N] [--rounds R]
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CLUSTER = os.path.join(HERE, "..", "tests", "kube", "cluster.sh")
NAMESPACE = "default"


def process_cpu_ms(pid):
    """User + system CPU of one process, in ms."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000.0 / os.sysconf("SC_CLK_TCK")


def cluster_pids(cluster_dir):
    """The pids that cluster.sh writes to DIR/pids once the API is ready ("name pid" lines)."""
    names = {"etcd": "etcd", "kube-apiserver": "apiserver",
             "kube-controller-manager": "controller-manager"}
    pids = {}
    with open(os.path.join(cluster_dir, "pids")) as f:
        for line in f:
            name, _, pid = line.strip().partition(" ")
            if name in names and pid.isdigit():
                pids[names[name]] = int(pid)
    if len(pids) != len(names):
        raise SystemExit(f"{cluster_dir}/pids does not name the cluster's three processes")
    return pids


class Api:
    def __init__(self, cluster_dir):
        server = open(os.path.join(cluster_dir, "server")).read().strip()
        self.token = open(os.path.join(cluster_dir, "token")).read().strip()
        host, port = server.removeprefix("https://").rsplit(":", 1)
        if host != "127.0.0.1":
            raise SystemExit(f"the cluster is not on loopback: {server}")
        context = ssl.create_default_context(cafile=os.path.join(cluster_dir, "ca.crt"))
        self.conn = http.client.HTTPSConnection(host, int(port), context=context, timeout=60)

    def call(self, method, path, body=None, content_type=None, accept="application/json"):
        headers = {"Authorization": f"Bearer {self.token}", "Accept": accept}
        if content_type:
            headers["Content-Type"] = content_type
        self.conn.request(method, path, body, headers)
        answer = self.conn.getresponse()
        data = answer.read()
        if answer.status >= 300:
            raise SystemExit(f"{method} {path}: HTTP {answer.status}: {data[:300]!r}")
        return data


def deployment(i, tag):
    name = f"cost-{i}"
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": name, "team": "bench"}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{
                    "name": "app", "image": f"127.0.0.1:5000/bench/app:{tag}",
                    "ports": [{"containerPort": 8080}],
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}}}


def path_of(i):
    return f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/cost-{i}"


def write(api, variant, i, tag):
    if variant == "merge-patch":
        patch = {"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": f"127.0.0.1:5000/bench/app:{tag}"}]}}}}
        return api.call("PATCH", path_of(i) + "?fieldManager=ferry", json.dumps(patch),
                        "application/strategic-merge-patch+json")
    accept = "application/json"
    if variant == "ssa-meta":
        accept = "application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
    return api.call("PATCH", path_of(i) + "?fieldManager=ferry&force=true",
                    json.dumps(deployment(i, tag)), "application/apply-patch+yaml", accept)


def settled(deployment):
    return deployment.get("status", {}).get("observedGeneration") == \
        deployment["metadata"]["generation"]


def wait_settled(api, n, deadline_s=120):
    """Waits until the controller has observed every Deployment's last write: polls the last
    one written, four times a second (a GET costs the API server little), then checks them all
    once."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if settled(json.loads(api.call("GET", path_of(n - 1)))):
            items = json.loads(api.call("GET", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"
                                        "?labelSelector=team%3Dbench"))["items"]
            if len(items) == n and all(settled(d) for d in items):
                return
        time.sleep(0.25)
    raise SystemExit(f"the controller manager did not catch up within {deadline_s} s")


def cluster_cpu_ms(pids):
    return {k: process_cpu_ms(p) for k, p in pids.items()}


def cpu_rate(pids, seconds):
    """The cluster's CPU per second of wall time over the next `seconds`, per process."""
    cpu0, start = cluster_cpu_ms(pids), time.monotonic()
    time.sleep(seconds)
    cpu1, elapsed = cluster_cpu_ms(pids), time.monotonic() - start
    return {k: (cpu1[k] - cpu0[k]) / elapsed for k in pids}


def wait_quiet(pids, idle=None, limit_s=60):
    """Waits until the cluster's CPU rate over 1 s is back near `idle` (at most 1.5 times it,
    plus 5 ms/s), or, without `idle`, until two such seconds in a row differ by under 20%:
    the controller manager's reaction to a write goes on after the statuses have caught up."""
    end = time.monotonic() + limit_s
    last = None
    while time.monotonic() < end:
        rate = sum(cpu_rate(pids, 1.0).values())
        if idle is not None and rate <= 1.5 * sum(idle.values()) + 5:
            return
        if idle is None and last is not None and abs(rate - last) <= 0.2 * max(last, 1):
            return
        last = rate
    # Never quiet within the limit: measured as it is (the figures then include more).


def measure(api, pids, idle, variant, n, tag):
    cpu0, start = cluster_cpu_ms(pids), time.monotonic()
    for i in range(n):
        write(api, variant, i, tag)
    wall = time.monotonic() - start
    during = process_cpu_ms(pids["apiserver"]) - cpu0["apiserver"] - idle["apiserver"] * wall
    wait_settled(api, n)
    wait_quiet(pids, idle)
    elapsed, cpu1 = time.monotonic() - start, cluster_cpu_ms(pids)
    out = {k: (cpu1[k] - cpu0[k] - idle[k] * elapsed) / n for k in pids}
    out.update(wall=1000 * wall / n, during=during / n, total=sum(out[k] for k in pids))
    return out


def ratio(value, base):
    return f"{value / base:.2f}x" if base > 0 else "n/a"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not 1 <= args.deployments <= 2000 or not 1 <= args.rounds <= 50:
        raise SystemExit("--deployments 1..2000, --rounds 1..50")

    workdir = tempfile.mkdtemp(prefix="ferry-kube-cost.")
    succeeded = False  # the folder stays, with the cluster's logs, when the run fails
    cluster_dir = os.path.join(workdir, "cluster")
    log = open(os.path.join(workdir, "log"), "w+")
    cluster = subprocess.Popen(["bash", CLUSTER, cluster_dir], stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        for _ in range(1200):  # the first start on a machine builds the binaries
            log.seek(0)
            if "ferry-kube ready" in log.read():
                break
            if cluster.poll() is not None:
                raise SystemExit(f"the cluster did not start; see {workdir}/log")
            time.sleep(0.5)
        else:
            raise SystemExit(f"the cluster was not ready in 10 min; see {workdir}/log")
        api = Api(cluster_dir)
        pids = cluster_pids(cluster_dir)
        n = args.deployments
        for i in range(n):
            write(api, "ssa-json", i, "v0")
        wait_settled(api, n)
        wait_quiet(pids)
        idle = cpu_rate(pids, 10.0)

        # ssa-no-change comes right after ssa-json and applies the same object again. The
        # order turns each round, so that no variant always follows the same one.
        variants = ["ssa-json", "ssa-no-change", "ssa-meta", "merge-patch"]
        blocks = [["ssa-json", "ssa-no-change"], ["ssa-meta"], ["merge-patch"]]
        results = {v: [] for v in variants}
        tag = 0
        for r in range(args.rounds):
            for variant in sum(blocks[r % 3:] + blocks[:r % 3], []):
                if variant != "ssa-no-change":
                    tag += 1
                results[variant].append(measure(api, pids, idle, variant, n, f"v{tag}"))
        idle_after = cpu_rate(pids, 10.0)

        columns = ("wall", "during", "apiserver", "controller-manager", "etcd", "total")
        base = {k: statistics.median(r[k] for r in results["ssa-json"]) for k in columns}
        print(f"{n} Deployments (replicas 0), {args.rounds} rounds, medians per Deployment; "
              f"CPU of the API server alone while writing, then of the API server, controller "
              f"manager and etcd from the first write until the cluster is quiet again; their idle CPU "
              f"({sum(idle.values()):.1f} ms/s; {sum(idle_after.values()):.1f} after the "
              f"rounds) subtracted; medians taken per column\n")
        print("| write | wall ms | API server CPU ms while writing | until quiet: API server"
              " / controller manager / etcd CPU ms | cluster CPU ms |")
        print("|---|---|---|---|---|")
        for variant in variants:
            med = {k: statistics.median(r[k] for r in results[variant]) for k in base}
            print(f"| {variant} | {med['wall']:.2f} | {med['during']:.2f} "
                  f"({ratio(med['during'], base['during'])}) | "
                  f"{med['apiserver']:.2f} / {med['controller-manager']:.2f} / {med['etcd']:.2f} | "
                  f"{med['total']:.2f} ({ratio(med['total'], base['total'])}) |")
        succeeded = True
    finally:
        try:
            os.killpg(cluster.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass  # cluster.sh has already stopped what it started
        try:
            cluster.wait(timeout=30)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(cluster.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            cluster.wait()
        if succeeded:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"kube_write_cost: the cluster's logs are in {workdir}", file=sys.stderr)

if __name__ == "__main__":
    sys.exit(main())
