"""Reports of evaluation results: percent summaries, the plain-text table, the JSON `sepgzoo eval --json` prints."""

from typing import Any

RERANKED = " re-ranked"  # the label of every re-ranked row, in JSON keys and printed tables


def labelled_rows(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every protocol's results, each followed by its re-ranked results (when evaluated) under `<name> re-ranked`:
    re-ranked numbers are always labelled and beside the plain ones, never instead of them."""
    rows = {}
    for name, result in results.items():
        rows[name] = result
        if "reranked" in result:
            rows[name + RERANKED] = result["reranked"]
    return rows


def summarise(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per protocol (and `<protocol> re-ranked`): Rank-1/5/10/20, mAP, mINP in percent (what tables show)."""
    keys = {"rank1": "R1", "rank5": "R5", "rank10": "R10", "rank20": "R20", "mAP": "mAP", "mINP": "mINP"}
    return {name: {out: round(100 * r[key], 2) for out, key in keys.items()}
            for name, r in labelled_rows(results).items()}


def json_summary(report: dict[str, Any], default_runs: list[str]) -> dict[str, Any]:
    """What `sepgzoo eval --json` prints: the first setting's percent metrics at the top level, every setting under
    `settings`, each with its protocol options."""
    settings = summarise(report["results"])
    first = next(iter(report["results"]))
    return {**settings[first], "protocol": first, "options": report["results"][first]["options"],
            "selection": report["selection"], "runs": report.get("runs", default_runs),
            "settings": {name: {**values, "options": report["results"][name.removesuffix(RERANKED)]["options"]}
                         for name, values in settings.items()}}


def format_table(report: dict[str, Any]) -> str:
    """Plain-text table of a report, one row per protocol setting."""
    rows = labelled_rows(report["results"])
    width = max(22, *(len(name) + 2 for name in rows))
    lines = [f"{'protocol':<{width}}{'R1':>7}{'R5':>7}{'R10':>7}{'R20':>7}{'mAP':>7}{'mINP':>7}  queries  trials"]
    for name, r in rows.items():
        row = "".join(f"{100 * r[k]:>7.2f}" for k in ("R1", "R5", "R10", "R20", "mAP", "mINP"))
        lines.append(f"{name:<{width}}{row}  {r['num_valid_queries']:>7}  {len(r['trials']):>6}")
    opts = next(iter(report["results"].values()))["options"]
    lines.append(f"(selection: {report['selection']}; flip TTA: {'on' if report['flip_tta'] else 'off'}; "
                 f"CMC: {opts.get('cmc')}; distance: {opts.get('distance')})")
    if opts.get("rerank"):
        r = opts["rerank"]
        lines.append(f"(re-ranked rows: {r['method']}, k1={r['k1']}, k2={r['k2']}, lambda={r['lambda_value']})")
    return "\n".join(lines)
