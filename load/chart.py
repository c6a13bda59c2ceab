"""The table and the chart of load/compare.sh: this service against the Flask peer.

    python load/chart.py DIR

DIR is what load/compare.sh fills: meta.json (the settings) and json/roundN-SIDE.json,
one load/run.sh --json result per round and side (SIDE: stores-api or flask). Prints a
Markdown table (also written to DIR/compare.md) of each side's median over the rounds,
and draws DIR/compare.png. Needs matplotlib (load/compare.sh runs it in a venv).
"""
import glob
import json
import os
import re
import statistics
import sys

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402 (after the backend is chosen)

SIDES = ("stores-api", "flask")
NAMES = {"stores-api": "stores-api", "flask": "Flask"}
LEGEND = {"stores-api": "stores-api (Rust, actix-web)",
          "flask": "Flask-JWT-Extended (gunicorn, sync workers)"}
COLOURS = {"stores-api": "#c8553d", "flask": "#3a6ea5"}


def load(directory):
    with open(os.path.join(directory, "meta.json")) as f:
        meta = json.load(f)
    runs = {side: [] for side in SIDES}
    for path in sorted(glob.glob(os.path.join(directory, "json", "round*-*.json"))):
        match = re.fullmatch(r"round(\d+)-(.+)\.json", os.path.basename(path))
        if match and match.group(2) in runs:
            with open(path) as f:
                runs[match.group(2)].append(json.load(f))
    return meta, runs


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def row_median(runs, scenario, field):
    """The median over the runs of one field of the row named scenario."""
    return median([row.get(field) for run in runs for row in run["rows"]
                   if row["scenario"] == scenario])


def login_median(runs, scenario, field):
    return median([run["logins"].get(scenario, {}).get(field) for run in runs])


def errors(runs, scenario):
    """non-2xx and socket errors of the row over every run, summed."""
    return sum((row.get("non_2xx") or 0) + (row.get("socket_errors") or 0)
               for run in runs for row in run["rows"] if row["scenario"] == scenario)


def fmt_rate(value):
    if value is None:
        return "n/a"
    if value >= 10000:
        return f"{value / 1000:.1f}k"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def fmt_ms(value):
    if value is None:
        return "n/a"
    return f"{value:.0f} ms" if value >= 100 else f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"


def fmt_ratio(a, b):
    return f"{a / b:.1f}x" if a is not None and b else "n/a"


def table(meta, runs):
    """The Markdown text and the chart's bars: [(label, {side: (req/s, p99)})]."""
    lines, bars, notes = [], [], []
    head = " | ".join(f"{NAMES[s]} {h}" for s in SIDES for h in ("req/s", "p50", "p99"))
    lines.append(f"| scenario | {head} | req/s ratio (stores-api / Flask) |")
    lines.append("|---" * 8 + "|")

    def add(label, scenario, rate=None, short=None):
        values = {}
        cells = []
        for side in SIDES:
            rps = rate(side) if rate else row_median(runs[side], scenario, "req_per_s")
            p50 = row_median(runs[side], scenario, "p50_ms")
            p99 = row_median(runs[side], scenario, "p99_ms")
            values[side] = (rps, p99)
            if p99 is None and row_median(runs[side], scenario, "requests") == 0:
                # Not one answer within the run: every latency exceeded it.
                cells += [fmt_rate(rps)] + [f"none in {meta['duration_s']} s"] * 2
            else:
                cells += [fmt_rate(rps), fmt_ms(p50), fmt_ms(p99)]
            n = errors(runs[side], scenario)
            if n:
                notes.append(f"- {label}, {NAMES[side]}: {n} non-2xx or socket errors over "
                             f"{len(runs[side])} run(s)")
        lines.append(f"| {label} | " + " | ".join(cells) + " | "
                     + fmt_ratio(values["stores-api"][0], values["flask"][0]) + " |")
        bars.append((short or label, values))

    for scenario in meta["scenarios"]:
        if scenario == "login":
            add("login (200s/s)", "login", short="login",
                rate=lambda side: login_median(runs[side], "login", "ok_per_s"))
        elif scenario == "login-storm":
            add("login-storm: read at rest", "read-at-rest", short="read at rest\n(storm run)")
            add("login-storm: read in the storm", "read-in-storm", short="read during\nlogin storm")
        else:
            add(scenario, scenario)

    if "login" in meta["scenarios"] or "login-storm" in meta["scenarios"]:
        lines += ["", "| logins | " + " | ".join(
            f"{NAMES[s]} {h}" for s in SIDES for h in ("200s/s", "503s/s (shed)", "other")) + " |",
            "|---" * 7 + "|"]
        for scenario, label in (("login", f"login, {meta['login_connections']} connections"),
                                ("login-storm", f"storm, {meta['storm_connections']} connections")):
            if scenario not in meta["scenarios"]:
                continue
            cells = []
            for side in SIDES:
                other = median([(run["logins"].get(scenario, {}).get("rate_limited_429") or 0)
                                + (run["logins"].get(scenario, {}).get("other") or 0)
                                for run in runs[side]])
                cells += [fmt_rate(login_median(runs[side], scenario, "ok_per_s")),
                          fmt_rate(login_median(runs[side], scenario, "shed_503_per_s")),
                          "n/a" if other is None else f"{other:.0f}"]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")

    if "login-storm" in meta["scenarios"]:
        lines += ["", "| read p99 in the login storm | " + " | ".join(
            f"{NAMES[s]} {h}" for s in SIDES for h in ("at rest", "in the storm", "ratio")) + " |",
            "|---" * 7 + "|"]
        cells = []
        for side in SIDES:
            at_rest = median([(run.get("login_storm") or {}).get("read_p99_at_rest_ms")
                              for run in runs[side]])
            in_storm = median([(run.get("login_storm") or {}).get("read_p99_in_storm_ms")
                               for run in runs[side]])
            none = f"none in {meta['duration_s']} s"
            cells += [fmt_ms(at_rest) if at_rest is not None else none,
                      fmt_ms(in_storm) if in_storm is not None else none,
                      fmt_ratio(in_storm, at_rest)]
        lines.append("| login-storm | " + " | ".join(cells) + " |")

    if any(run.get("memory") for side in SIDES for run in runs[side]):
        lines += ["", "| memory | " + " | ".join(
            f"{NAMES[s]} {h}" for s in SIDES for h in ("RSS idle", "RSS peak")) + " |",
            "|---" * 5 + "|"]
        cells = []
        for side in SIDES:
            for field in ("rss_idle_mb", "rss_peak_mb"):
                value = median([sum(m[field] for m in run["memory"])
                                for run in runs[side] if run.get("memory")])
                cells.append("n/a" if value is None else f"{value:.1f} MB")
        lines.append("| after the 64-connection read | " + " | ".join(cells) + " |")

    if notes:
        lines += ["", "Errors (non-2xx answers, which for the logins include the 503s shed, "
                  "and socket errors):"] + notes
    return lines, bars


def title(meta):
    return (f"stores-api vs Flask-JWT-Extended: {meta['backend']}, {meta['cores']} cores, "
            f"{meta['rounds']} round(s) of {meta['duration_s']} s per scenario, {meta['date']}")


def describe(meta, runs):
    flask_runs, rust_runs = len(runs["flask"]), len(runs["stores-api"])
    return (f"Medians over {rust_runs} run(s) of stores-api and {flask_runs} of Flask; "
            f"{meta['connections']} connections ({meta['login_connections']} for login, "
            f"{meta['storm_connections']} logins in the storm), BCRYPT_COST={meta['bcrypt_cost']}, "
            f"Flask with {meta['flask_workers']} gunicorn worker(s).")


def chart(meta, bars, path):
    labels = [label for label, _ in bars]
    fig, axes = plt.subplots(1, 2, figsize=(15, 6.5))
    width = 0.38
    panels = ((0, "requests per second (log scale; login: 200s/s)", fmt_rate),
              (1, "p99 latency, ms (log scale)", lambda v: fmt_ms(v).replace(" ms", "")))
    for ax, (index, ylabel, fmt) in zip(axes, panels):
        for k, side in enumerate(SIDES):
            xs = [i + (k - 0.5) * width for i in range(len(bars))]
            values = [values[side][index] for _, values in bars]
            heights = [v if v else 0 for v in values]
            rects = ax.bar(xs, heights, width, label=LEGEND[side], color=COLOURS[side])
            for rect, value in zip(rects, values):
                x = rect.get_x() + rect.get_width() / 2
                if value:
                    ax.annotate(fmt(value), (x, value), xytext=(0, 2), textcoords="offset points",
                                ha="center", va="bottom", fontsize=7.5,
                                rotation=90 if len(bars) > 6 else 0)
                else:  # no bar: say why, at the foot of the panel
                    text = "0 answered" if index == 0 else f"none in {meta['duration_s']} s"
                    ax.annotate(text, (x, 0.02), xycoords=("data", "axes fraction"), ha="center",
                                va="bottom", fontsize=7.5, rotation=90, color=COLOURS[side])
        ax.set_yscale("log")
        ax.set_ylabel(ylabel)
        ax.set_xticks(range(len(bars)))
        ax.set_xticklabels(labels, fontsize=8.5, rotation=30, ha="right")
        ax.grid(axis="y", which="major", alpha=0.3)
        ax.margins(y=0.25)
        top = max([v for _, values in bars for side in SIDES
                   if (v := values[side][index])] or [1])
        ax.set_ylim(top=top * 6)
    axes[0].set_title("throughput (higher is better)")
    axes[1].set_title("p99 latency (lower is better)")
    axes[0].legend(loc="upper right", fontsize=8.5)
    fig.suptitle(title(meta), fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        sys.exit(0 if len(sys.argv) == 2 else 2)
    directory = sys.argv[1]
    meta, runs = load(directory)
    if not runs["stores-api"] or not runs["flask"]:
        sys.exit(f"chart: no results of both sides in {directory}/json")
    lines, bars = table(meta, runs)
    text = "\n".join([f"## {title(meta)}", "", describe(meta, runs), ""] + lines) + "\n"
    with open(os.path.join(directory, "compare.md"), "w") as f:
        f.write(text)
    print(text)
    chart(meta, bars, os.path.join(directory, "compare.png"))


if __name__ == "__main__":
    main()
