"""Turns Google Benchmark JSON output into the markdown report quoted in the README."""
import json
import platform
import subprocess
import sys


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def main(path, *more_paths):
    data = json.load(open(path))
    runs = {b["name"]: b for b in data["benchmarks"]}
    scale_files = []
    kustomize_data = None
    for more in more_paths:
        more_data = json.load(open(more))
        if "workloads" in more_data["context"]:  # scale_bench: failures are rows of its table
            scale_files.append(more_data)
            continue
        if "kustomize_roots" in more_data["context"]:  # kustomize_bench: the same
            kustomize_data = more_data
            continue
        for b in more_data["benchmarks"]:
            if "error_message" in b:
                sys.exit(f"bench_report.py: {b['name']} failed: {b['error_message']}")
            runs[b["name"]] = b

    def ms(name):
        b = runs[name]
        scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b["time_unit"]]
        return b["real_time"] * scale

    ctx = data["context"]
    print(f"Machine: {ctx.get('num_cpus')} CPUs, {cpu_model()}; {ctx.get('date')}; "
          f"build: {ctx.get('library_build_type', '?')} benchmark library\n")
    print("| benchmark | Ferry | baseline | baseline figure | Ferry vs baseline |")
    print("|---|---|---|---|---|")
    load = runs["BM_LoadTree/iterations:3"]
    raw = runs["BM_LoadTree_YamlCppOnly/iterations:3"]
    t_load, t_raw = ms("BM_LoadTree/iterations:3"), ms("BM_LoadTree_YamlCppOnly/iterations:3")
    print(f"| load + index 5,000 workloads (10,000 resources, "
          f"{load['bytes_per_second'] * t_load / 1e3 / 1e6:.1f} MB) | {t_load:.0f} ms, "
          f"{load['bytes_per_second'] / 1e6:.1f} MB/s, peak RSS {load['peak_rss_mb']:.0f} MB | "
          f"yaml-cpp parse only | {t_raw:.0f} ms, {raw['bytes_per_second'] / 1e6:.1f} MB/s | "
          f"{t_load / t_raw:.2f}x the time |")
    t_edit = ms("BM_SetImage_BigFile")
    t_edit_load = ms("BM_SetImage_BigFile_WithLoad")
    t_emit = ms("BM_ReEmit_BigFile")
    mb = runs["BM_SetImage_BigFile"]["file_mb"]
    print(f"| one image edit, 282 resources / {mb:.1f} MB file, index at hand | {t_edit:.2f} ms | "
          f"parse all + re-emit (yaml-cpp) | {t_emit:.0f} ms | {t_emit / t_edit:.0f}x faster |")
    print(f"| same, loading the file first | {t_edit_load:.0f} ms | parse all + re-emit "
          f"(yaml-cpp) | {t_emit:.0f} ms | {t_emit / t_edit_load:.1f}x faster |")
    for workloads in (1000, 10000):
        if f"BM_Ferry_Release/{workloads}/iterations:1/repeats:5_median" not in runs:
            continue  # filtered out of this run
        ferry = ms(f"BM_Ferry_Release/{workloads}/iterations:1/repeats:5_median")
        cli = ms(f"BM_GitCli_Release/{workloads}/iterations:1/repeats:5_median")
        print(f"| release one image used by 100 of {workloads:,} workloads, pushed (median of 5) "
              f"| {ferry:.0f} ms | git CLI: clone --depth 1, grep, sed, commit, push | "
              f"{cli:.0f} ms | {ferry / cli:.2f} of the time |")
    scan_report(runs, ms)
    sync_report(runs, ms)
    e2e_report(runs, ms)
    print("\nFlux v1 took 9.3 s for one image update in a 282-resource file; the target here "
          "is < 10 ms.")
    if scale_files:
        scale_report(scale_files)
    if kustomize_data:
        kustomize_report(kustomize_data)


def scan_report(runs, ms):
    """registry-scanner rows: 100 repositories x 100 tags in a real registry."""
    name = lambda base, n=1: f"{base}/iterations:{n}/real_time"
    cold = ms(name("BM_Ferry_ColdScan"))
    skopeo = ms(name("BM_Skopeo_Inspect"))
    scanned = runs[name("BM_Ferry_ColdScan")]["tags"]
    # skopeo's time per tag, for as many tags as the cold scan had
    skopeo_all = skopeo / runs[name("BM_Skopeo_Inspect")]["tags"] * scanned
    scan = runs[name("BM_Ferry_ColdScan")]
    reqs = scan["requests"]
    print(f"| cold scan, {scanned:,.0f} tags ({reqs:,.0f} requests, stored in the cache), "
          f"{scan['concurrency']:.0f} in flight | {cold / 1e3:.1f} s, {scan['tags_per_s']:.0f} tags/s "
          f"| the same GETs from a plain client with as many keep-alive connections, no parsing "
          f"or storing (run before and after Ferry's) | {scan['plain_tags_per_s']:.0f} tags/s | "
          f"{scan['pct_of_plain'] / 100:.0%} of the plain client's rate |")
    print(f"| same | {cold / 1e3:.1f} s | `skopeo inspect --no-tags` per tag (100 timed, "
          f"extrapolated to {scanned:,.0f}) | {skopeo_all / 1e3:.0f} s | "
          f"{skopeo_all / cold:.1f}x faster |")
    rescan = runs[name("BM_Ferry_UnchangedRescan", 3)]
    print(f"| re-scan of every (unchanged) repository | {ms(name('BM_Ferry_UnchangedRescan', 3)):.0f}"
          f" ms, {rescan['requests_per_repository']:.0f} request per repository | cold scan | "
          f"{cold / 1e3:.1f} s | {cold / ms(name('BM_Ferry_UnchangedRescan', 3)):.0f}x faster |")
    push = runs[name("BM_Ferry_PushToEvent")]
    print(f"| push -> new-tag event via registry notification webhook (20 pushes) | "
          f"mean {push['mean_ms']:.0f} ms, max {push['max_ms']:.0f} ms | Flux v1 polling | "
          f"5 min interval | - |")
    rss = runs[name("BM_Binary_Rss10kTags")]
    print(f"| ferry-registry-scanner memory with 10,000 tags scanned | "
          f"{rss['rss_mb']:.0f} MB RSS (peak {rss['peak_rss_mb']:.0f} MB) | target | 100 MB | "
          f"{rss['peak_rss_mb'] / 100:.0%} of the budget |")


def sync_report(runs, ms):
    """cluster-syncer rows: 1,000 workloads (2,000 objects) on the same API server."""
    name = lambda base: f"{base}/iterations:1/real_time"
    first, kfirst = ms(name("BM_Ferry_FirstSync")), ms(name("BM_Kubectl_FirstSync"))
    noop, knoop = ms(name("BM_Ferry_NoOpResync")), ms(name("BM_Kubectl_NoOpResync"))
    objects = runs[name("BM_Ferry_FirstSync")]["objects"]
    writes = runs[name("BM_Ferry_NoOpResync")]["writes"]
    print(f"| first sync, 1,000 workloads ({objects:,.0f} objects), server-side apply | "
          f"{first / 1e3:.1f} s | `kubectl apply --server-side -R -f DIR` | {kfirst / 1e3:.1f} s | "
          f"{kfirst / first:.1f}x faster |")
    print(f"| no-op re-sync of the same | {noop:.0f} ms, {writes:.0f} write requests | same "
          f"kubectl command | {knoop / 1e3:.1f} s | {knoop / noop:.0f}x faster |")


def e2e_report(runs, ms):
    hook = runs.get("BM_PushToRunning_Webhook/iterations:20/manual_time")
    poll = runs.get("BM_PushToRunning_Polling/iterations:5/manual_time")
    if hook is None or poll is None:
        return
    print(f"| push of a tag -> running spec in the Kubernetes API, webhooks, end to end (20 pushes) | "
          f"mean {hook['mean_ms']:.0f} ms, max {hook['max_ms']:.0f} ms | Ferry polling the registry "
          f"(10 s scans), same run (5 pushes) | mean {poll['mean_ms'] / 1e3:.1f} s, max "
          f"{poll['max_ms'] / 1e3:.1f} s | {poll['mean_ms'] / hook['mean_ms']:.0f}x faster; target "
          f"< 2 s; Flux v1: up to 5 min poll + 5 min sync |")


def failure(b):
    """Why a benchmark of a table that shows failures as rows has no figure; None when it has."""
    if b is None:
        return "not run"
    if "error_message" in b:
        return "FAILED: " + " ".join(b["error_message"].split())[:300]
    return None


def value(runs, bench, counter=None):
    """The benchmark's time in ms (or a counter); None when it failed or did not run."""
    b = runs.get(bench)
    if failure(b):
        return None
    if counter:
        return b[counter]
    return b["real_time"] * {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b["time_unit"]]


def scale_report(files):
    """scale_bench: N workloads through the four services, each figure next to its baseline
    from the same run (kubectl, the git CLI); with several sizes, how each figure grew."""
    sizes = []
    for data in sorted(files, key=lambda d: int(d["context"]["workloads"])):
        runs = {b["name"].split("/")[0].removeprefix("BM_Scale_"): b for b in data["benchmarks"]}
        sizes.append((int(data["context"]["workloads"]), runs))

    def fmt(v, unit):
        if unit == "MB":
            return f"{v:.0f} MB"
        if unit == "count":
            return f"{v:.0f}"
        return f"{v / 1e3:.1f} s" if v >= 10000 else f"{v:.0f} ms"

    faster = lambda ours, base: f"{base / ours:.1f}x faster"
    share = lambda ours, base: f"{ours / base:.2f} of the time"
    # figure, Ferry's (benchmark, counter, unit, extra counter shown), baseline, its name, ratio
    figures = [
        ("first sync, 2N + 10 objects", ("Ferry_FirstSync", None, "ms", "failed_syncs"),
         ("Kubectl_FirstSync", None), "`kubectl apply --server-side` of the same files", faster),
        ("no-op re-sync", ("Ferry_NoOpResync", None, "ms", "writes"),
         ("Kubectl_NoOpResync", None), "the same kubectl command again", faster),
        ("api ListWorkloads of everything, following next_page_token",
         ("Ferry_ListWorkloads", None, "ms", "pages"), None, "-", None),
        ("release of one image to N/10 workloads: request -> commit pushed (mean of 5)",
         ("Ferry_Release", "pushed_mean_ms", "ms", None), ("GitCli_Release", "mean_ms"),
         "git CLI: clone --depth 1, grep, sed, commit, push", share),
        ("the same release: request -> job done (applied, no rollout wait)",
         ("Ferry_Release", "done_mean_ms", "ms", None), ("GitCli_Release", "mean_ms"),
         "git CLI, as above (pushed only)", share),
        ("release of that image to 100 named workloads (all N/10 at N = 1,000): request -> "
         "commit pushed (mean of 5)", ("Ferry_ReleaseOf100", "pushed_mean_ms", "ms", None), None,
         "-", None),
        ("the same release: request -> job done",
         ("Ferry_ReleaseOf100", "done_mean_ms", "ms", None), None, "-", None),
        ("16 clients reading for FERRY_SCALE_LOAD_SECONDS (ListWorkloads' first page, "
         "ListImages of one workload, GetVersion): requests per second in all",
         ("Ferry_ReadLoad", "requests_per_s", "count", "errors"), None, "-", None),
        ("the same: p99 of ListImages of one workload",
         ("Ferry_ReadLoad", "list_images_p99_ms", "ms", None), None, "-", None),
        ("the same: p99 of ListWorkloads' first page",
         ("Ferry_ReadLoad", "list_workloads_p99_ms", "ms", None), None, "-", None),
        ("a release submitted under that load: request -> job done",
         ("Ferry_ReadLoad", "release_done_ms", "ms", None), None, "-", None),
    ]
    for service in ("git_writer", "cluster_syncer", "api", "registry_scanner"):
        figures.append((f"peak RSS (VmHWM) of {service.replace('_', '-')} after the run",
                        ("PeakRss", f"{service}_peak_mb", "MB", None), None, "-", None))

    print("\nScale (scale_bench): N Deployments + N Services in 10 namespaces, a release of "
          "the image N/10 of them use, through the four services and a real kube-apiserver; "
          "baselines from the same run.\n")
    head, rule = "| figure | baseline |", "|---|---|"
    for n, _ in sizes:
        head += f" Ferry, N = {n:,} | baseline | Ferry vs baseline |"
        rule += "---|---|---|"
    if len(sizes) > 1:
        head += f" Ferry's growth, {sizes[0][0]:,} -> {sizes[-1][0]:,} |"
        rule += "---|"
    print(head)
    print(rule)
    for figure, (bench, counter, unit, extra), baseline, base_name, ratio in figures:
        line = f"| {figure} | {base_name} |"
        ours_by_size = []
        for _, runs in sizes:
            ours = value(runs, bench, counter)
            ours_by_size.append(ours)
            cell = failure(runs.get(bench)) if ours is None else fmt(ours, unit)
            if ours is not None and extra:
                shown = runs[bench].get(extra, 0)
                if shown or extra != "failed_syncs":  # a retried failure is worth a mention
                    cell += f", {shown:.0f} {extra.replace('_', ' ')}"
                if shown and runs[bench].get("label"):
                    cell += f" ({runs[bench]['label']})"
            base = value(runs, *baseline) if baseline else None
            base_cell = "-" if not baseline else (
                failure(runs.get(baseline[0])) if base is None else fmt(base, unit))
            ratio_cell = ratio(ours, base) if ratio and ours and base else "-"
            line += f" {cell} | {base_cell} | {ratio_cell} |"
        if len(sizes) > 1:
            low, high = ours_by_size[0], ours_by_size[-1]
            line += f" {high / low:.1f}x |" if low and high else " - |"
        print(line)


def kustomize_report(data):
    """kustomize_bench: 100 kustomize roots synced by git-writer and cluster-syncer, next to
    `kubectl apply --server-side -k` per root in the same run."""
    runs = {b["name"].split("/")[0].removeprefix("BM_Kustomize_"): b for b in data["benchmarks"]}
    ms = lambda v: f"{v / 1e3:.1f} s" if v >= 10000 else f"{v:.0f} ms"

    def cell(bench, *counters):
        ours = value(runs, bench)
        if ours is None:
            return failure(runs.get(bench)), None
        shown = [f"{runs[bench][c]:.0f} {c}" for c in counters if c in runs[bench]]
        return ", ".join([ms(ours)] + shown), ours

    kubectl = runs.get("Kubectl_FirstSync", {}).get("label", "kubectl")
    print(f"\nKustomize (kustomize_bench): {data['context']['kustomize_roots']} roots (10 bases x "
          f"10 overlays, each overlay a namespace of its own), 1,000 Deployments, 1,100 objects "
          f"with the namespaces; git-writer builds with the kustomize on PATH, the baseline is "
          f"{kubectl}, in namespaces of its own in the same run.\n")
    print("| figure | Ferry | baseline | baseline figure | Ferry vs baseline |")
    print("|---|---|---|---|---|")
    rows = [
        ("first sync (Ferry: both services started, every root built, every object applied)",
         ("Ferry_FirstSync", "builds", "failed_syncs"), "Kubectl_FirstSync",
         "`kubectl apply --server-side -f namespaces.yaml`, then `-k` per root"),
        ("no-op re-sync of the same head", ("Ferry_NoOpResync", "builds", "writes"),
         "Kubectl_NoOpResync", "the same 101 kubectl commands again"),
        ("re-sync after a commit that changes one base",
         ("Ferry_ChangedBaseResync", "builds", "cached", "writes"), None, "-"),
    ]
    for figure, (bench, *counters), baseline, base_name in rows:
        ours_cell, ours = cell(bench, *counters)
        base = value(runs, baseline) if baseline else None
        base_cell = "-" if not baseline else (failure(runs.get(baseline)) if base is None
                                              else ms(base))
        ratio = f"{base / ours:.1f}x faster" if ours and base else "-"
        print(f"| {figure} | {ours_cell} | {base_name} | {base_cell} | {ratio} |")


if __name__ == "__main__":
    main(*sys.argv[1:])
