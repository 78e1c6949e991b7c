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
controller manager and etcd until every Deployment's status has caught up with the write
(observedGeneration; the new ReplicaSet is made by then), all per Deployment, with the CPU
the three spend when nobody writes (measured first, over 5 s) subtracted, and the ratios to
ssa-json. Writes run one at a time on one keep-alive connection; the CPU figures do not
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


def pid_of(name, cluster_dir):
    """The pid of the process called `name` (as /proc shows it, at most 15 characters) that
    runs in `cluster_dir`: cluster.sh starts its processes there."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                comm = f.read().strip()
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        if comm == name and os.path.realpath(cwd) == os.path.realpath(cluster_dir):
            return int(entry)
    raise SystemExit(f"no {name} process of the cluster in {cluster_dir}")


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


def settled(deployment_json):
    d = json.loads(deployment_json)
    return d.get("status", {}).get("observedGeneration") == d["metadata"]["generation"]


def wait_settled(api, n, deadline_s=120):
    """Waits until the controller has observed every Deployment's last write: polls the last
    one written, four times a second (a GET costs the API server little), then checks them all
    once."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if settled(api.call("GET", path_of(n - 1))):
            items = json.loads(api.call("GET", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"
                                        "?labelSelector=team%3Dbench"))["items"]
            if len(items) == n and all(settled(json.dumps(d)) for d in items):
                return
        time.sleep(0.25)
    raise SystemExit("the controller manager did not catch up within 120 s")


def cluster_cpu_ms(pids):
    return {k: process_cpu_ms(p) for k, p in pids.items()}


def idle_rate(pids, seconds=5.0):
    """The cluster's CPU per second of wall time when nobody writes (leases, controllers'
    resyncs): subtracted from what the writes cost."""
    cpu0, start = cluster_cpu_ms(pids), time.monotonic()
    time.sleep(seconds)
    cpu1, elapsed = cluster_cpu_ms(pids), time.monotonic() - start
    return {k: (cpu1[k] - cpu0[k]) / elapsed for k in pids}


def measure(api, pids, idle, variant, n, tag):
    cpu0, start = cluster_cpu_ms(pids), time.monotonic()
    for i in range(n):
        write(api, variant, i, tag)
    wall = time.monotonic() - start
    during = process_cpu_ms(pids["apiserver"]) - cpu0["apiserver"] - idle["apiserver"] * wall
    wait_settled(api, n)
    elapsed, cpu1 = time.monotonic() - start, cluster_cpu_ms(pids)
    out = {k: (cpu1[k] - cpu0[k] - idle[k] * elapsed) / n for k in pids}
    out.update(wall=1000 * wall / n, during=during / n, total=sum(out[k] for k in pids))
    return out


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
        pids = {"apiserver": pid_of("kube-apiserver", cluster_dir),
                "controller-manager": pid_of("kube-controller", cluster_dir),
                "etcd": pid_of("etcd", cluster_dir)}
        n = args.deployments
        for i in range(n):
            write(api, "ssa-json", i, "v0")
        wait_settled(api, n)
        idle = idle_rate(pids)

        # ssa-no-change comes right after ssa-json and applies the same object again.
        variants = ["ssa-json", "ssa-no-change", "ssa-meta", "merge-patch"]
        results = {v: [] for v in variants}
        tag = 0
        for _ in range(args.rounds):
            for variant in variants:  # interleaved, so that a slow moment hits every variant
                if variant != "ssa-no-change":
                    tag += 1
                results[variant].append(measure(api, pids, idle, variant, n, f"v{tag}"))

        columns = ("wall", "during", "apiserver", "controller-manager", "etcd", "total")
        base = {k: statistics.median(r[k] for r in results["ssa-json"]) for k in columns}
        print(f"{n} Deployments (replicas 0), {args.rounds} rounds, medians per Deployment; "
              f"CPU of the API server alone while writing, then of the API server, controller "
              f"manager and etcd until the controller has caught up; their idle CPU "
              f"({sum(idle.values()):.1f} ms/s) subtracted\n")
        print("| write | wall ms | API server CPU ms while writing | until caught up: API server"
              " / controller manager / etcd CPU ms | cluster CPU ms |")
        print("|---|---|---|---|---|")
        for variant in variants:
            med = {k: statistics.median(r[k] for r in results[variant]) for k in base}
            print(f"| {variant} | {med['wall']:.2f} | {med['during']:.2f} "
                  f"({med['during'] / base['during']:.2f}x) | "
                  f"{med['apiserver']:.2f} / {med['controller-manager']:.2f} / {med['etcd']:.2f} | "
                  f"{med['total']:.2f} ({med['total'] / base['total']:.2f}x) |")
        succeeded = True
    finally:
        os.killpg(cluster.pid, signal.SIGTERM)
        try:
            cluster.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(cluster.pid, signal.SIGKILL)
            cluster.wait()
        if succeeded:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
