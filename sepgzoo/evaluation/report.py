"""Reports of evaluation results: percent summaries, the plain-text table, the JSON `sepgzoo eval --json` prints."""

from typing import Any


def summarise(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per protocol: Rank-1/5/10/20, mAP, mINP in percent (what tables show)."""
    keys = {"rank1": "R1", "rank5": "R5", "rank10": "R10", "rank20": "R20", "mAP": "mAP", "mINP": "mINP"}
    return {name: {out: round(100 * r[key], 2) for out, key in keys.items()} for name, r in results.items()}


def json_summary(report: dict[str, Any], default_runs: list[str]) -> dict[str, Any]:
    """What `sepgzoo eval --json` prints: the first setting's percent metrics at the top level, every setting under
    `settings`, each with its protocol options."""
    settings = summarise(report["results"])
    first = next(iter(report["results"]))
    return {**settings[first], "protocol": first, "options": report["results"][first]["options"],
            "selection": report["selection"], "runs": report.get("runs", default_runs),
            "settings": {name: {**values, "options": report["results"][name]["options"]}
                         for name, values in settings.items()}}


def format_table(report: dict[str, Any]) -> str:
    """Plain-text table of a report, one row per protocol setting."""
    lines = [f"{'protocol':<22}{'R1':>7}{'R5':>7}{'R10':>7}{'R20':>7}{'mAP':>7}{'mINP':>7}  queries  trials"]
    for name, r in report["results"].items():
        row = "".join(f"{100 * r[k]:>7.2f}" for k in ("R1", "R5", "R10", "R20", "mAP", "mINP"))
        lines.append(f"{name:<22}{row}  {r['num_valid_queries']:>7}  {len(r['trials']):>6}")
    opts = next(iter(report["results"].values()))["options"]
    lines.append(f"(selection: {report['selection']}; flip TTA: {'on' if report['flip_tta'] else 'off'}; "
                 f"CMC: {opts.get('cmc')}; distance: {opts.get('distance')})")
    return "\n".join(lines)
