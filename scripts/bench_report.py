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


def main(path, git_path):
    data = json.load(open(path))
    runs = {b["name"]: b for b in data["benchmarks"]}
    git = json.load(open(git_path))
    for b in git["benchmarks"]:
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
    ferry = ms("BM_Ferry_Release/iterations:1/repeats:5_median")
    cli = ms("BM_GitCli_Release/iterations:1/repeats:5_median")
    print(f"| release one image used by 100 of 1,000 workloads, pushed (median of 5) | "
          f"{ferry:.0f} ms | git CLI: clone --depth 1, grep, sed, commit, push | {cli:.0f} ms | "
          f"{ferry / cli:.2f} of the time |")
    print("\nFlux v1 took 9.3 s for one image update in a 282-resource file; the target here "
          "is < 10 ms.")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
