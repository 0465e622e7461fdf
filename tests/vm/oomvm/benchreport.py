"""The benchmark's outputs (tests/vm/bench-stall): results.md, results.csv,
results.json and, through benchplot.py, the PNG plots, from a list of
stall.Outcome. Pure apart from write_all()."""

import csv
import dataclasses
import io
import json
import pathlib
import statistics
import subprocess
import sys

from . import stall

GUARD_LABELS = {
    "none": "bare kernel", "earlyoom": "earlyoom", "nohang": "nohang", "systemd-oomd": "systemd-oomd",
    "mglru": "MGLRU min_ttl_ms", "oom_ext": "oom_ext", "oom_ext-fallback": "oom_ext fallback",
    "oom_ext-nopsi": "oom_ext, stall protection off",
}
GUARD_DOCS = {
    "none": "`oom_ext=0`, every peer masked",
    "earlyoom": "Debian's package, its default `EARLYOOM_ARGS=\"-r 3600\"`",
    "nohang": "Debian's package, `nohang.service` with its packaged `/etc/nohang/nohang.conf`",
    "systemd-oomd": "Debian's package with Fedora's `systemd-oomd-defaults` settings: `ManagedOOMSwap=kill` on "
                    "`-.slice`, `ManagedOOMMemoryPressure=kill` at 50 % on the workload's slice, "
                    "`DefaultMemoryPressureDurationSec=20s`; dbus running",
    "mglru": "`/sys/kernel/mm/lru_gen/enabled=y`, `min_ttl_ms=1000`",
    "oom_ext": "the project's defaults, kernel mode (module loaded)",
    "oom_ext-fallback": "the project's defaults, module refused (`module_blacklist=oom_ext`): fallback mode",
    "oom_ext-nopsi": "`oom_ext.psi=0`",
}
PLOT_WORKLOADS_SKIP = ("idle",)


def label(guard):
    return GUARD_LABELS.get(guard, guard)


def _s(ms, digits=1):
    return "–" if ms is None else f"{ms / 1000:.{digits}f}"


def _med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _num(facts, key):
    try:
        return float(facts[key])
    except (KeyError, ValueError, TypeError):
        return None


def idle_cost(o):
    """(wake-ups per second, CPU ms per 60 s, RSS kB) of an idle run, None where not measured."""
    secs = _num(o.facts, "idle_seconds")
    wake, cpu = _num(o.facts, "idle_wakeups"), _num(o.facts, "idle_cpu_ms")
    return (wake / secs if wake is not None and secs else None,
            cpu * 60 / secs if cpu is not None and secs else None,
            _num(o.facts, "idle_rss_kb"))


def status(o):
    """finished | rebooted | hung (with its bound) | …: how the run ended."""
    if o.rebooted:
        return "rebooted"
    if o.finished and stall.cut_off(o.facts):
        return "workload cut off at its time limit"
    if o.finished:
        return "finished"
    if o.run_outcome == "hung":
        return f"hung ≥ {stall.HANG_S} s"
    if o.run_outcome == "finished":          # the guest came back but the workload hit its bound
        return "workload over its bound"
    return o.run_outcome


def pressed(o):
    """Did the workload press on memory at all? A starved host can keep the hogs from filling RAM in
    time; then a short freeze says nothing about the guard (stall.MIN_MEMORY_STALL_MS)."""
    if o.workload == "idle" or o.kills or o.rebooted:
        return True
    return o.psi_some_ms is not None and o.psi_some_ms >= stall.MIN_MEMORY_STALL_MS


def summarize(outcomes, workloads, guards):
    """One row per workload, kernel and guard (in the given orders)."""
    rows = []
    kernels = sorted({o.kernel for o in outcomes})
    for w in workloads:
        for k in kernels:
            for g in guards:
                sel = [o for o in outcomes if o.workload == w and o.guard == g and o.kernel == k]
                if not sel:
                    continue
                gaps = [o.worst_gap_ms for o in sel if o.worst_gap_ms is not None]
                costs = [idle_cost(o) for o in sel]
                job = [o.job_survived for o in sel if o.job_survived is not None]
                kills = [x for o in sel for x in o.kills]
                rows.append(dict(
                    workload=w, kernel=k, guard=g, n=len(sel),
                    status=", ".join(f"{n}× {s}" if n > 1 else s for s, n in _count(status(o) for o in sel)),
                    unfinished=sum(not (o.finished or o.rebooted) for o in sel),
                    unpressed=sum(not pressed(o) for o in sel),
                    min=min(gaps) if gaps else None, median=_med(gaps), max=max(gaps) if gaps else None,
                    p99=_med(o.p99_gap_ms for o in sel),
                    answer=_med(o.answer_s for o in sel),
                    kills=len(kills), intended=sum(x.hog for x in kills),
                    innocent=sum(not x.own for x in kills),
                    innocent_names=sorted({x.comm for x in kills if not x.own}),
                    victims=sorted({x.comm for x in kills}),
                    by=sorted({x.by for x in kills}),
                    job_survived=f"{sum(job)}/{len(job)}" if job else None,
                    rebooted=sum(o.rebooted for o in sel),
                    report_named=sum(bool(o.report_named) for o in sel),
                    bystander_dead=sum(not o.bystander_alive for o in sel if w != "idle"),
                    noise=max((o.idle_gap_ms for o in sel if o.idle_gap_ms is not None), default=None),
                    psi=_med(o.psi_some_ms for o in sel),
                    wake=_med(c[0] for c in costs), cpu=_med(c[1] for c in costs), rss=_med(c[2] for c in costs),
                    threads=_med(_num(o.facts, "idle_threads") for o in sel),
                    exe=sorted({o.facts.get("idle_exe", "") for o in sel} - {""}),
                    params=sorted({o.facts.get("params_file", "").strip() for o in sel} - {""}),
                    oom_ext_size=next((o.facts["oom_ext_size"] for o in sel if o.facts.get("oom_ext_size")), None)))
    return rows


def _count(items):
    out = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return list(out.items())


def pivot(rows, workloads, guards, kernel):
    """Median worst freeze (s) per workload (rows) and guard (columns) for one kernel, best in bold;
    a mark where the run did not finish, where an innocent died, where the near miss's job died."""
    header = "| workload | " + " | ".join(label(g) for g in guards) + " |"
    lines = [header, "|---" * (len(guards) + 1) + "|"]
    for w in workloads:
        if w == "idle":
            continue
        by = {r["guard"]: r for r in rows if r["workload"] == w and r["kernel"] == kernel}
        if not by:
            continue
        medians = [r["median"] for r in by.values()
                   if r["median"] is not None and not r["unfinished"] and not r["unpressed"]]
        best = min(medians) if medians else None
        cells = []
        for g in guards:
            r = by.get(g)
            if r is None:
                cells.append("")
                continue
            cell = _s(r["median"])
            if best is not None and r["median"] == best and not r["unfinished"] and not r["unpressed"]:
                cell = f"**{cell}**"
            marks = []
            if r["unfinished"]:
                marks.append(f"{r['unfinished']} not finished")
            if r["unpressed"]:
                marks.append(f"{r['unpressed']} without memory pressure: not measured")
            if r["innocent"]:
                marks.append(f"{r['innocent']} innocent killed")
            if r["job_survived"] is not None:
                marks.append(f"job lived {r['job_survived']}")
            if r["rebooted"]:
                marks.append(f"rebooted {r['rebooted']}/{r['n']}")
            cells.append(cell + (f" ({'; '.join(marks)})" if marks else ""))
        lines.append(f"| {w} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(rows, meta, workloads, guards):
    kernels = sorted({r["kernel"] for r in rows})
    out = ["# Benchmark against the peers", "",
           "Written by `tests/vm/bench-stall` (`make bench`); do not edit by hand. How to read it, and the "
           "command of the full run: [stall-benchmark.md](../stall-benchmark.md).", ""]
    for k, v in meta.items():
        out.append(f"- {k}: {v}")
    out += params_lines(rows)
    out += ["", "Guards: " + "; ".join(f"{label(g)}: {GUARD_DOCS.get(g, g)}" for g in guards) + ".", "",
            "Workloads: " + "; ".join(f"{w}: {stall.WORKLOADS[w].doc}" for w in workloads) + ".", ""]
    # An idle-only run has no freeze to tabulate.
    loaded = [r for r in rows if r["workload"] != "idle"]
    for k in sorted({r["kernel"] for r in loaded}):
        out += [f"## Median worst freeze, s (kernel `{k}`)", "",
                "The longest gap of a heartbeat that starts a program every 100 ms; bold: the shortest of the "
                "row among the runs that finished and pressed on memory (PSI memory `some` ≥ 1 s, or a kill).", "", pivot(rows, workloads, guards, k), ""]
    plots = [w for w in workloads if w not in PLOT_WORKLOADS_SKIP and any(r["workload"] == w for r in rows)]
    if plots:
        out += ["## Plots", "", "![worst freeze min/median/max per guard](freeze.png)", ""]
        out += [f"- [{w}: heartbeat of every guard](timeline-{w}.png)" for w in plots]
        out.append("")
    if loaded:
        out += ["## Every workload, guard and kernel", "",
                "worst freeze = longest heartbeat gap (guest clock), min / median / max over the runs; p99 = median "
                "of the runs' 99th percentile gap; answers = median s from the workload's start until the last "
                "freeze ≥ 1 s ended (with a reboot: until the next boot's first word); kills (intended / innocent): "
                "intended = a process the workload means to die (none in the near miss), innocent = not the "
                "workload's; noise = worst gap in the 4 s before the workload (the host's own).", "",
                "| workload | kernel | guard | runs | ended | worst min | median | max | p99 | answers | kills | "
                "intended | innocent | victims (by) | job lived | report named boot | noise | memory stall |",
                "|" + "---|" * 18]
        for r in loaded:
            innocent = str(r["innocent"]) + (f" ({', '.join(r['innocent_names'])})" if r["innocent_names"] else "")
            answer = "–" if r["answer"] is None else f"{r['answer']:.0f}"
            victims = ", ".join(r["victims"]) or "–"
            if r["by"]:
                victims += " (" + ", ".join(r["by"]) + ")"
            named = f"{r['report_named']}/{r['rebooted']}" if r["rebooted"] else "–"
            out.append(
                f"| {r['workload']} | {r['kernel']} | {label(r['guard'])} | {r['n']} | {r['status']} | {_s(r['min'])} | "
                f"{_s(r['median'])} | {_s(r['max'])} | {_s(r['p99'])} | {answer} | {r['kills']} | {r['intended']} | "
                f"{innocent} | {victims} | {r['job_survived'] or '–'} | {named} | {_s(r['noise'])} | {_s(r['psi'])} |")
    idle = [r for r in rows if r["workload"] == "idle"]
    if idle:
        out += ["", "## Idle cost over 60 s (calm machine, no workload)", "",
                "wake-ups = voluntary + involuntary context switches of the guard's processes (all their "
                "threads) per second; "
                "CPU = their user + system time per 60 s; RSS = their resident memory (oom_ext in fallback mode: with "
                "the emergency buffer it locks itself, `bufsize` MiB; in kernel mode the module holds it).", "",
                "| kernel | guard | runs | wake-ups/s | CPU ms per 60 s | RSS kB | threads | program (bytes) |",
                "|---|---|---|---|---|---|---|---|"]
        for r in idle:
            out.append(f"| {r['kernel']} | {label(r['guard'])} | {r['n']} | {_f(r['wake'], 2)} | {_f(r['cpu'], 0)} | "
                       f"{_f(r['rss'], 0)} | {_f(r['threads'], 0)} | {', '.join(f'`{e}`' for e in r['exe']) or 'no process'} |")
        size = next((r["oom_ext_size"] for r in idle if r["oom_ext_size"]), None)
        if size:
            out += ["", f"oom-ext binary installed in the guest: {int(size):,} bytes."]
    out.append("")
    return "\n".join(out)


def params_lines(rows):
    """The parameters oom_ext ran with, as the guests reported them (a default may change between runs)."""
    seen = {}
    for r in rows:
        if not r["guard"].startswith("oom_ext"):    # the others run with oom_ext=0
            continue
        for p in r.get("params", []):
            seen.setdefault(p, set()).add(label(r["guard"]))
    if not seen:
        return []
    out = ["- oom_ext's parameters in the guest (`/run/oom-ext/params`):"]
    for p, guards in seen.items():
        out.append(f"  - {', '.join(sorted(guards))}: `{p}`")
    return out


def _f(v, digits):
    return "–" if v is None else f"{v:.{digits}f}"


CSV_FIELDS = ["workload", "guard", "kernel", "status", "finished", "memory_pressure", "worst_gap_s", "p99_gap_s", "answer_s",
              "host_gap_s", "noise_s", "kills", "intended_kills", "innocent_kills", "victims", "killed_by",
              "job_survived", "rebooted", "report_named", "bystander_alive", "idle_wakeups_per_s",
              "idle_cpu_ms_per_60s", "idle_rss_kb", "oom_ext_params", "detail"]


def run_record(o):
    wake, cpu, rss = idle_cost(o)
    return dict(
        workload=o.workload, guard=o.guard, kernel=o.kernel, status=status(o), finished=o.finished,
        memory_pressure=pressed(o),
        worst_gap_s=_sec(o.worst_gap_ms), p99_gap_s=_sec(o.p99_gap_ms), answer_s=o.answer_s,
        host_gap_s=_sec(o.host_gap_ms), noise_s=_sec(o.idle_gap_ms), kills=len(o.kills),
        intended_kills=sum(k.hog for k in o.kills), innocent_kills=len(o.innocent),
        victims=" ".join(k.comm for k in o.kills), killed_by=" ".join(sorted({k.by for k in o.kills})),
        job_survived=o.job_survived, rebooted=o.rebooted, report_named=o.report_named,
        bystander_alive=o.bystander_alive, idle_wakeups_per_s=wake, idle_cpu_ms_per_60s=cpu, idle_rss_kb=rss,
        oom_ext_params=o.facts.get("params_file", "").strip() or None, detail=o.detail)


def _sec(ms):
    return None if ms is None else round(ms / 1000, 3)


def to_csv(outcomes):
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for o in outcomes:
        w.writerow({k: "" if v is None else v for k, v in run_record(o).items()})
    return buf.getvalue()


def to_json(outcomes, rows, meta, guards):
    runs = []
    for o in outcomes:
        d = run_record(o)
        d["timeline"] = o.timeline
        d["kill_list"] = [dataclasses.asdict(k) for k in o.kills]
        runs.append(d)
    return json.dumps({"meta": meta, "guards": guards, "labels": {g: label(g) for g in guards},
                       "runs": runs, "summary": rows}, indent=1) + "\n"


def load_meta(outdir):
    try:
        return json.loads((outdir / "results.json").read_text())["meta"]
    except (OSError, ValueError, KeyError):
        return {}


PLOTTER = pathlib.Path(__file__).resolve().with_name("benchplot.py")


def plot_python():
    """An interpreter with matplotlib (Debian's python3-matplotlib is /usr/bin/python3's), or None."""
    for exe in dict.fromkeys((sys.executable, "/usr/bin/python3")):
        r = subprocess.run([exe, "-c", "import matplotlib"], capture_output=True)
        if r.returncode == 0:
            return exe
    return None


def plot(kind, src, dest):
    """Run benchplot.py KIND SRC DEST; returns None or why no plot was made."""
    exe = plot_python()
    if exe is None:
        return "no python3 with matplotlib (apt-get install python3-matplotlib): no plots"
    r = subprocess.run([exe, str(PLOTTER), kind, str(src), str(dest)], capture_output=True, text=True)
    return None if r.returncode == 0 else f"benchplot.py {kind} failed: {r.stderr.strip()[-500:]}"


def write_all(outdir, outcomes, workloads, guards, meta):
    outdir.mkdir(parents=True, exist_ok=True)
    order = {g: i for i, g in enumerate(guards)}
    outcomes = sorted(outcomes, key=lambda o: (list(workloads).index(o.workload) if o.workload in workloads
                                               else 99, o.kernel, order.get(o.guard, 99)))
    rows = summarize(outcomes, workloads, guards)
    (outdir / "results.json").write_text(to_json(outcomes, rows, meta, guards))
    (outdir / "results.csv").write_text(to_csv(outcomes))
    problem = plot("all", outdir / "results.json", outdir)
    text = markdown(rows, meta, workloads, guards)
    if problem:
        text += f"\n(plots not written: {problem})\n"
        print(f"[bench] {problem}", file=sys.stderr)
    (outdir / "results.md").write_text(text)
    return rows
