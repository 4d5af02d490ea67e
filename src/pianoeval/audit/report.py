"""The audit's reviewer-facing outputs: a Markdown report, its figures and the plot CSVs.

Everything here is derived from the JSON report (``stages.audit.run_audit``), so the Markdown
can be regenerated from ``data/processed/audit/report.json`` alone.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from pianoeval.plots import bar_chart_per_dimension, plt, save

PROBES = ("ridge_cv", "ridge_fixed", "mlp", "attention")
PROBE_LABELS = {"ridge_cv": "ridge (inner-CV alpha)", "ridge_fixed": "ridge (alpha = 1)",
                "mlp": "MLP (batched, 256)", "attention": "attention pooling"}


def _f(x, nd: int = 3) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "–"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return f"{float(x):.{nd}f}"


def _table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(c if isinstance(c, str) else _f(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _ci(r: dict, a: str = "auc", lo: str = "auc_ci_low", hi: str = "auc_ci_high") -> str:
    if r.get(a) is None:
        return "–"
    if r.get(lo) is None:
        return f"{r[a]:.3f}"
    return f"{r[a]:.3f} [{r[lo]:.3f}, {r[hi]:.3f}]"


# --------------------------------------------------------------------------- figures
def plot_correlation(corr: dict, path: str) -> None:
    """Pearson matrix in hierarchical-clustering order."""
    order = corr["cluster_order"]
    names = [corr["names"][i] for i in order]
    R = np.asarray(corr["pearson"])[np.ix_(order, order)]
    fig, ax = plt.subplots(figsize=(8.5, 7.5))
    im = ax.imshow(R, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{R[i, j]:.1f}".replace("0.", ".").replace("1.0", "1"), ha="center", va="center",
                    fontsize=5, color="white" if abs(R[i, j]) > 0.6 else "black")
    fig.colorbar(im, ax=ax, shrink=0.8, label="Pearson r")
    ax.set_title("Mean ratings: Pearson r, average-linkage order (1 - r)")
    save(fig, path)


def plot_scree(fac: dict, path: str) -> None:
    ev = np.asarray(fac["eigenvalues"])
    k = np.arange(1, ev.size + 1)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(k, ev, "o-", label="labels (correlation matrix)")
    ax.plot(k, fac["pa_threshold"], "k--", label=f"random, {fac['pa_percentile']:g}th percentile "
                                                  f"({fac['pa_n_iter']} matrices)")
    ax.plot(k, fac["pa_mean"], ":", color="grey", label="random, mean")
    n = fac["n_significant"]
    if n:
        ax.axvspan(0.5, n + 0.5, color="tab:green", alpha=0.1, label=f"{n} significant")
    ax.set_yscale("log")
    ax.set_xticks(k)
    ax.set_xlabel("component")
    ax.set_ylabel("eigenvalue")
    ax.set_title("Scree plot with parallel analysis")
    ax.legend(fontsize=8)
    save(fig, path)


def plot_cca(cca: dict, path: str) -> None:
    rho = np.asarray(cca["canonical_corr"])
    k = np.arange(1, rho.size + 1)
    held = np.array([np.nan if v is None else v for v in cca["heldout_mean"]])
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(k, rho, "o-", label="in sample")
    ax.plot(k, held, "s-", label="held out (mean over folds)")
    ax.plot(k, cca["null_threshold"], "k--", label=f"random blocks, {cca['null_percentile']:g}th pct")
    ax.axhline(cca["threshold"], color="grey", lw=0.8, ls=":")
    ax.set_xticks(k)
    ax.set_xlabel("canonical pair")
    ax.set_ylabel("canonical correlation")
    ax.set_title(f"CCA: PCA-{cca['n_pca_used']} of the embeddings vs the 19 labels")
    ax.legend(fontsize=8)
    save(fig, path)


def plot_downstream(table: pd.DataFrame, path: str) -> None:
    if table.empty:  # no variant could be evaluated (tiny runs): an empty figure says so
        fig, ax = plt.subplots(figsize=(7, 2))
        ax.text(0.5, 0.5, "no variant with both classes", ha="center", va="center")
        ax.set_axis_off()
        save(fig, path)
        return
    variants = list(dict.fromkeys(table["variant"]))
    sets = list(dict.fromkeys(table["feature_set"]))
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(sets) * len(variants) + 1.5))
    h = 0.8 / len(variants)
    y = np.arange(len(sets))
    for i, v in enumerate(variants):
        t = table[table["variant"] == v].set_index("feature_set").reindex(sets)
        auc = t["auc"].to_numpy(float)
        err = np.vstack([auc - t["auc_ci_low"].to_numpy(float), t["auc_ci_high"].to_numpy(float) - auc])
        ax.barh(y + i * h - 0.4 + h / 2, np.nan_to_num(auc), height=h, xerr=np.nan_to_num(err), capsize=2, label=v)
    ax.axvline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_yticks(y, sets)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("cross-validated AUC (95% permutation interval)")
    ax.set_title("STOP prediction from reduced dimension sets")
    ax.legend(fontsize=8, loc="lower right")
    save(fig, path)


# --------------------------------------------------------------------------- tables / CSVs
def r2_long(report: dict) -> pd.DataFrame:
    """dimension, probe, r2 on the default split, plus the noise ceiling as a probe row."""
    split = report["data"]["default_split"]
    rows = []
    for probe in PROBES:
        res = report["probes"][probe][split]
        rows += [{"dimension": d, "probe": probe, "r2": v} for d, v in res["r2"].items()]
    rows += [{"dimension": d, "probe": "noise_ceiling", "r2": v} for d, v in report["noise_ceiling"].items()]
    return pd.DataFrame(rows)


DOWNSTREAM_COLUMNS = ("n_features", "auc", "auc_ci_low", "auc_ci_high", "auc_p_perm", "auc_p_perm_holm", "delta_auc",
                      "delta_ci_low", "delta_ci_high", "delta_p", "delta_p_holm", "p_tost", "p_tost_holm")


def downstream_long(report: dict) -> pd.DataFrame:
    rows = []
    for v, res in report["downstream"]["variants"].items():
        for name, r in res.get("sets", {}).items():
            rows.append({"variant": v, "feature_set": name, "label": f"{v}/{name}",
                         **{k: r.get(k) for k in DOWNSTREAM_COLUMNS}})
    return pd.DataFrame(rows, columns=["variant", "feature_set", "label", *DOWNSTREAM_COLUMNS])


def write_plot_data(report: dict, plots_dir: str) -> dict[str, pd.DataFrame]:
    os.makedirs(plots_dir, exist_ok=True)
    fac, cca = report["factors"], report["cca"]
    tables = {
        "audit_r2_per_dim": r2_long(report),
        "audit_scree": pd.DataFrame({"component": np.arange(1, len(fac["eigenvalues"]) + 1),
                                     "eigenvalue": fac["eigenvalues"], "pa_threshold": fac["pa_threshold"],
                                     "pa_mean": fac["pa_mean"]}),
        "audit_cca": pd.DataFrame({"component": np.arange(1, len(cca["canonical_corr"]) + 1),
                                   "in_sample": cca["canonical_corr"], "heldout": cca["heldout_mean"],
                                   "null_threshold": cca["null_threshold"]}),
        "audit_downstream": downstream_long(report),
    }
    for name, df in tables.items():
        df.to_csv(Path(plots_dir) / f"{name}.csv", index=False, float_format="%.6f")
    return tables


def write_figures(report: dict, tables: dict, fig_dir: str) -> dict[str, str]:
    os.makedirs(fig_dir, exist_ok=True)
    paths = {k: str(Path(fig_dir) / f"audit_{k}.png") for k in ("correlation", "scree", "r2", "cca", "downstream")}
    plot_correlation(report["correlation"], paths["correlation"])
    plot_scree(report["factors"], paths["scree"])
    r2 = tables["audit_r2_per_dim"]
    bar_chart_per_dimension(r2[r2["probe"] != "noise_ceiling"], paths["r2"],
                            title=f"Out-of-fold R² per dimension ({report['data']['default_split']} split) "
                                  "and noise ceiling", value="r2", group="probe",
                            reference=report["noise_ceiling"])
    plot_cca(report["cca"], paths["cca"])
    plot_downstream(tables["audit_downstream"], paths["downstream"])
    return paths


# --------------------------------------------------------------------------- markdown
def markdown(report: dict, fig_rel: dict[str, str]) -> str:
    d, h = report["data"], report["headline"]
    split = d["default_split"]
    corr, fac, dist, rel = report["correlation"], report["factors"], report["distributions"], report["reliability"]
    probes, ceil = report["probes"], report["noise_ceiling"]
    out = [
        "# PercePiano dimension audit",
        "",
        "How redundant, how noisy and how audible are the 19 PercePiano dimensions, and does a reduced "
        "set predict STOP moments as well? Generated by the `audit` DVC stage "
        "(`python -m pianoeval.stages.audit`); every table below is in `data/processed/audit/report.json`, "
        "the headline numbers in `metrics/audit.json`. How to read it: `docs/audit.md`.",
        "",
        f"Data: {d['n_segments']} labeled segments ({d['n_unlabeled_excluded']} unlabeled rows of labels.csv "
        f"excluded), {d['extractor']} embeddings (pooled {d['embedding_dim']}-d; attention over frames "
        f"averaged in windows of {d['attention_frame_hop']} at {d['frame_rate']:g} Hz), folds from "
        f"splits.json (default split: `{split}`).",
        "",
        "## Headline",
        "",
        _table(["question", "answer"], [
            ["pairs with abs(r) > 0.7 / 0.5 < abs(r) ≤ 0.7 (of 171)",
             f"{corr['n_pairs_high']} / {corr['n_pairs_moderate']}"],
            ["significant factors (parallel analysis)", str(fac["n_significant"])],
            ["components for 90% / 95% variance", f"{fac['n_components_90']} / {fac['n_components_95']}"],
            ["noise ceiling, mean over dimensions (ICC(1,k))", _f(h["reliability.noise_ceiling_mean"])],
            *[[f"ridge (inner-CV alpha) R², mean, `{s}` split", _f(probes["ridge_cv"][s]["r2_mean"])]
              for s in probes["ridge_cv"]],
            [f"MLP / attention probe R², mean, `{split}` split",
             f"{_f(probes['mlp'][split]['r2_mean'])} / {_f(probes['attention'][split]['r2_mean'])}"],
            ["structured residual components", str(report["residuals"]["n_structured"])],
            ["canonical correlations > 0.3: in sample / held out",
             f"{report['cca']['n_above_threshold']} / {report['cca']['n_heldout_above_threshold']}"],
            ["STOP AUC, all 19 scores (variant `all`, graded teachers)",
             _ci(report["downstream"]["variants"].get("all", {}).get("sets", {}).get("all19", {}))],
        ]),
        "",
        "## 1. Correlation and redundancy",
        "",
        f"![correlation heatmap]({fig_rel['correlation']})",
        "",
        f"{corr['n_pairs_high']} of 171 pairs have abs(r) > {corr['thresholds']['high']}, "
        f"{corr['n_pairs_moderate']} more have {corr['thresholds']['moderate']} < abs(r) ≤ "
        f"{corr['thresholds']['high']}; mean abs(r) = {_f(corr['headline']['mean_abs_r'])}. "
        f"Cluster order: {', '.join(corr['cluster_names'])}.",
        "",
        _table(["pair", "Pearson", "Spearman"],
               [[f"{p['a']} – {p['b']}", p["pearson"], p["spearman"]] for p in corr["top_pairs"]]),
        "",
        "Variance inflation factor (statsmodels; > 10 = the dimension is largely a linear "
        "combination of the others" + (f"; capped at {corr['vif_cap']:g}: {', '.join(corr['vif_capped'])}"
                                        if corr["vif_capped"] else "") + "):",
        "",
        _table(["dimension", "VIF"], [[k, v] for k, v in sorted(corr["vif"].items(), key=lambda kv: -kv[1])]),
        "",
        "## 2. Factor structure",
        "",
        f"![scree plot]({fig_rel['scree']})",
        "",
        f"PCA of the standardised labels: {fac['n_significant']} components exceed the "
        f"{fac['pa_percentile']:g}th percentile of {fac['pa_n_iter']} random matrices of the same shape "
        f"(they explain {100 * fac['cumulative_variance'][max(fac['n_significant'] - 1, 0)]:.1f}% of the variance); "
        f"{fac['n_components_90']} components reach 90%, {fac['n_components_95']} reach 95%.",
        "",
        _table(["factor", "eigenvalue", f"loadings with abs(l) > {fac['loading_threshold']}"],
               [[str(f["factor"]), f["eigenvalue"], ", ".join(f"{x['dim']} {x['loading']:+.2f}" for x in f["dims"])]
                for f in fac["factors"]]),
        "",
        "Varimax-rotated (easier to name):",
        "",
        _table(["factor", "variance", "loadings"],
               [[str(f["factor"]), f["variance"], ", ".join(f"{x['dim']} {x['loading']:+.2f}" for x in f["dims"])]
                for f in fac["rotated_factors"]]),
        "",
        "## 3. Distributions",
        "",
        f"Floor = share of segments with mean rating < {dist['rules']['floor']}, ceiling > "
        f"{dist['rules']['ceiling']}; flagged when > {dist['rules']['flag_fraction_gt']}. "
        "Entropy: Gaussian-KDE differential entropy on [0, 1] in nats (uniform = 0).",
        "",
        _table(["dimension", "mean", "variance", "skew", "floor", "ceiling", "entropy", "flag"],
               [[k, v["mean"], v["variance"], v["skewness"], v["floor_fraction"], v["ceiling_fraction"], v["entropy"],
                 ", ".join(f for f, on in (("floor", v["floor_flag"]), ("ceiling", v["ceiling_flag"])) if on) or "–"]
                for k, v in dist["per_dim"].items()]),
        "",
        "## 4. Rater reliability and noise ceiling",
        "",
        _reliability_text(rel),
        "",
        _table(["dimension", "ICC(1,1)", "ICC(1,k)", "split-half (SB)", "raters k", "noise ceiling"],
               [[k, v["icc1_1"], v["icc1_k"], v["split_half_sb"], v["k_mean"], v["noise_ceiling"]]
                for k, v in rel["per_dim"].items()]),
        "",
        "## 5. Audibility probes",
        "",
        f"![R² per dimension]({fig_rel['r2']})",
        "",
        f"Out-of-fold R² pooled over the `{split}` folds, next to the noise ceiling (the best R² a "
        "predictor of the mean rating can reach). `R²/ceiling` uses the inner-CV ridge.",
        "",
        _table(["dimension", *[PROBE_LABELS[p] for p in PROBES], "noise ceiling", "R²/ceiling"],
               [[k, *[probes[p][split]["r2"][k] for p in PROBES], ceil[k],
                 None if probes["ridge_cv"][split]["r2"][k] is None or not ceil[k]
                 else probes["ridge_cv"][split]["r2"][k] / ceil[k]] for k in ceil]),
        "",
        "Mean R² per split (ridge and factor probes on all three splits, the neural probes on the default "
        "split only); `per fold` = R² within each test fold, averaged over dimensions. Every inner split "
        "(ridge alpha, early stopping) holds out whole groups of the outer split's kind (pianists, "
        "overlapping cuts of one player, pieces). The `piece` split holds out whole pieces: R² about the "
        "pooled mean turns negative when a piece's ratings sit off the training pieces' mean (ratings "
        "are passage-relative).",
        "",
        _table(["probe", "split", "mean R²", "per fold"],
               [[PROBE_LABELS.get(p, p), s, r["r2_mean"], ", ".join(_f(x, 2) for x in r["fold_r2_mean"])]
                for p in (*PROBES, "factor") for s, r in probes[p].items()]),
        "",
        f"Factor-level probing (ridge onto the scores of {fac['n_significant']} label factors, standardised "
        "and PCA-fitted inside each training fold): "
        + "; ".join(f"`{s}` mean factor R² {_f(r['factor_r2_mean'])} vs mean dimension R² {_f(r['dim_r2_mean'])} "
                    f"(factor above dimension in {r['n_folds_factor_above_dim']} of {len(r['folds'])} folds)"
                    for s, r in probes["factor"].items()) + ". "
        + _factor_reading(probes["factor"]),
        "",
        "## 6. Residual structure",
        "",
        _residual_text(report["residuals"]),
        "",
        "## 7. CCA between the embeddings and the labels",
        "",
        f"![canonical correlations]({fig_rel['cca']})",
        "",
        _cca_text(report["cca"]),
        "",
        "## 8. Downstream: STOP prediction with reduced dimension sets",
        "",
        f"![STOP AUC by feature set]({fig_rel['downstream']})",
        "",
        _downstream_text(report["downstream"]),
        "",
        "## 9. Competition validation",
        "",
        _competition_text(report["competition"]),
        "",
    ]
    return "\n".join(out)


def _factor_reading(fac_probes: dict) -> str:
    """Only a claim the fold-wise numbers carry: factor R² above dimension R² in every fold of every split."""
    every = all(r["n_folds_factor_above_dim"] == len(r["folds"]) for r in fac_probes.values())
    if every:
        return ("Factor R² is above dimension R² in every fold of every split: the audible part of the labels "
                "concentrates in the shared factors (the factor scores average out part of the rater noise of "
                "single dimensions, which also raises their R²).")
    return ("Factor R² is not above dimension R² in every fold of every split, so this does not show that the "
            "audible part concentrates in the shared factors.")


def _reliability_text(rel: dict) -> str:
    a, c = rel["annotations"], rel["counts"]
    m = a["mapping_check"]
    return (
        f"From `{Path(a['file']).name}` ({a['n_rows']} rows): {a['n_rows_no_rating']} rows without any rating and "
        f"{a['n_rows_unlabeled_segment']} rows of unlabeled segments dropped; {a['n_copy_rows_dropped']} rows were "
        f"copies of another row's (user, dataID) submission and were dropped; {a['n_repeat_submissions']} repeated "
        f"submissions of a segment by the same user (rule: `{a['repeats_rule']}`). Ignored columns: "
        f"{', '.join(a['ignored_columns']) or 'none'}. {a['n_ratings_used']} ratings by {c['n_raters']} raters "
        f"on {c['n_segments']} segments remain ({c['mean_rows_per_segment']:.1f} per segment). Values outside 1-7 "
        f"are not ratings on the scale and were excluded (set to missing before averaging): "
        f"{a['values_outside_1_7_excluded']['n']} ("
        + ", ".join(f"{n} × {v}" for v, n in a["values_outside_1_7_excluded"]["by_value"].items())
        + f"); {a['n_rows_empty_after_exclusion']} rows had no rating left and were dropped.\n\n"
        f"Column mapping check: every Question column correlates best with its own label dimension "
        f"(per-segment means of (rating - 1)/6 vs `mean_<dim>`): min diagonal r = {m['min_diagonal_r']:.3f}, "
        f"max off-diagonal r = {m['max_offdiagonal_r']:.3f} ({'passed' if m['passed'] else 'FAILED'}). "
        f"The labels are not plain rescaled means (mean abs difference {m['mean_abs_difference']:.3f}), "
        "but they rank segments the same way.\n\n"
        f"Model: {rel['model']}.")


def _residual_text(rs: dict) -> str:
    comps = "; ".join(f"component {c['component']} (eigenvalue {c['eigenvalue']:.2f}): "
                      + ", ".join(f"{x['dim']} {x['loading']:+.2f}" for x in c["dims"]) for c in rs["components"])
    worst = sorted(rs["unexplained"].items(), key=lambda kv: -(kv[1] or 0))[:5]
    return (f"PCA of the out-of-fold residuals of the inner-CV ridge ({rs['pa_n_iter']} random matrices as the "
            f"noise baseline): {rs['n_structured']} structured residual component(s)"
            + (f" -- {comps}" if comps else "") + f". Mean abs correlation of the residuals "
            f"{rs['mean_abs_residual_corr']:.3f} (labels: {rs['mean_abs_label_corr']:.3f}). "
            f"Mean unexplained fraction {rs['headline']['mean_unexplained_fraction']:.3f}; least explained: "
            + ", ".join(f"{k} {v:.2f}" for k, v in worst) + ". Reading: shared residual components mean the "
            "errors move together across dimensions; that can be audible structure the embedding misses, but "
            "also rater halo (a rater's overall impression of a performance shifts all 19 ratings of it; the "
            "mean ratings keep part of that noise) -- this section cannot tell the two apart.\n\n"
            + _table(["dimension", "unexplained"], [[k, v] for k, v in rs["unexplained"].items()]))


def _cca_text(cc: dict) -> str:
    n = len(cc["canonical_corr"])
    rows = [[str(i + 1), cc["canonical_corr"][i], cc["heldout_mean"][i], cc["null_threshold"][i]] for i in range(n)]
    return (f"{cc['n_above_threshold']} canonical correlations exceed {cc['threshold']} in sample, "
            f"{cc['n_heldout_above_threshold']} on held-out folds; {cc['n_above_null']} leading ones exceed the "
            f"random-block {cc['null_percentile']:g}th percentile. Shared variance: mean rho² = "
            f"{cc['mean_sq_canonical_corr']:.3f}; redundancy of the labels given the embedding PCs (Stewart-Love) "
            f"= {cc['redundancy_y_given_x']:.3f}.\n\n"
            + _table(["pair", "in sample", "held out", "null 95th pct"], rows))


def _p(x) -> str:
    return "–" if x is None else (f"{x:.3f}" if x >= 0.001 else f"{x:.1e}")


def _downstream_text(dn: dict) -> str:
    fs = dn.get("feature_sets")
    ran = [res for res in dn["variants"].values() if res.get("status") == "ok"]
    if not ran or fs is None:
        return "No variant could be evaluated: " + "; ".join(f"`{v}` {r['status']}" for v, r in dn["variants"].items())
    margin = ran[0]["margin"]
    parts = [f"Cross-validated AUC (folds grouped by student) with the masterclass stage's classifier "
             f"(standardised L2 logistic regression) on the graded teachers' videos (the "
             f"`{dn['negative_control_teacher']}` teacher's {dn['n_control_segments_excluded']} segments, the negative "
             f"control, are left out). p = within-video permutation test of the AUC; the bracket is the 95% "
             f"permutation (shift-model) interval. ΔAUC against `all19` is tested by swapping the two sets' scores "
             f"per video (paired permutation, two-sided p); \"as well as all19\" needs the TOST equivalence p "
             f"(margin ±{margin}) below 0.05. Holm-corrected p-values over the audit's whole family are in "
             f"brackets. Sets: `pca_k` = the scores on the first {fs['pca_k']['k']} label principal axes; "
             f"`categories` = the 8 category means; `top5` = {', '.join(dn['top'])}; `bottom5` = "
             f"{', '.join(dn['bottom'])} (ranked by {dn['audibility_probe']} R²); `attention` = frames pooled by the "
             f"attention probe's fold models ({dn['attention_pooling']['leakage_guard']}). On the simulated default "
             f"the teachers stop on crowd-rating categories weighted in params.yaml "
             f"(`masterclass_simulate.teachers`): which reduced set works best mirrors those weights, not real "
             f"teachers."]
    for v, res in dn["variants"].items():
        if res.get("status") != "ok":
            parts.append(f"\nVariant `{v}`: {res['status']}.")
            continue
        parts.append(f"\nVariant `{v}`: {res['n']} segments ({res['n_stop']} STOP) in {res['n_videos']} videos, "
                     f"{res['n_folds']} folds.\n")
        parts.append(_table(
            ["feature set", "features", "AUC [95% interval]", "p (Holm)", "ΔAUC vs all19 [95% interval]",
             "p Δ (Holm)", "TOST p (Holm)"],
            [[name, r["n_features"], _ci(r), f"{_p(r['auc_p_perm'])} ({_p(r.get('auc_p_perm_holm'))})",
              _ci(r, "delta_auc", "delta_ci_low", "delta_ci_high") if name != res["reference"] else "–",
              f"{_p(r['delta_p'])} ({_p(r.get('delta_p_holm'))})" if name != res["reference"] else "–",
              f"{_p(r['p_tost'])} ({_p(r.get('p_tost_holm'))})" if name != res["reference"] else "–"]
             for name, r in res["sets"].items()]))
    return "\n".join(parts)


def _competition_text(comp: dict) -> str:
    if comp["status"] != "ok":
        return f"`{comp['status']}` -- set `audit.competition` in params.yaml to a table with `placement` and " \
               "the 19 predicted dimensions (docs/audit.md)."
    if comp.get("kind") == "t2":
        return _t2_text(comp)
    rows = [[k, v["rho"], v["p"]] for k, v in comp["per_dim"].items()]
    rows.append(["mean quality", comp["mean_quality"]["rho"], comp["mean_quality"]["p"]])
    return (f"{comp['n']} performances from `{comp.get('table')}`; placement 1 = best, so agreement shows "
            "as negative rho.\n\n" + _table(["predicted", "Spearman rho", "p"], rows))


def _t2_text(comp: dict) -> str:
    seg, py = comp["segment"], comp["performer_year"]

    def row(name, r, holm=False):
        out = [name, r["rho"], f"[{_f(r['ci_low'])}, {_f(r['ci_high'])}]", r["p_perm"]]
        return out + ([r.get("p_holm")] if holm else [])

    head = (f"T2 table `{comp.get('table')}`: {seg['n']} segments of {py['n']} performer-years "
            f"(placement codes per performer-year: {comp['placement_counts_performer_years']}); "
            f"{comp['excluded']['percepiano_overlap']} segments left out because their pianists are in PercePiano. "
            f"Overall = {comp['overall_definition']}. Placement 1 = best, so agreement shows as NEGATIVE rho. "
            f"95% CI: {comp['n_boot']} bootstrap resamples of performer-years; p: {comp['n_perm']} permutations of "
            f"placements across performer-years (two-sided).\n\n")
    rows = [row(f"overall ({lvl})", r["overall"]) for lvl, r in (("segment", seg), ("performer-year", py))]
    rows += [row(f"baseline {b} ({lvl})", v) for lvl, r in (("segment", seg), ("performer-year", py))
             for b, v in r["baselines"].items()]
    w = comp.get("within_piece")
    if w:
        rows.append(row(f"overall within piece ({w['n']} segments, {w['n_pieces']} pieces with >= 2 performer-years)", w))
    dims = [[k, v["rho"], f"[{_f(v['ci_low'])}, {_f(v['ci_high'])}]", v["p_perm"], v["p_holm"]]
            for k, v in py["per_dim"].items()]
    return (head + _table(["predictor", "Spearman rho", "95% CI", "p"], rows)
            + "\n\nPer dimension, performer-year level (Holm over the 19):\n\n"
            + _table(["dimension", "rho", "95% CI", "p", "p Holm"], dims))


def write_outputs(report: dict, *, markdown_path: str, figures: str, plots_dir: str) -> None:
    """Plot CSVs, PNG figures and the Markdown report."""
    tables = write_plot_data(report, plots_dir)
    paths = write_figures(report, tables, figures)
    md_dir = Path(markdown_path).parent
    md_dir.mkdir(parents=True, exist_ok=True)
    rel = {k: os.path.relpath(v, md_dir) for k, v in paths.items()}
    Path(markdown_path).write_text(markdown(report, rel))
