"""Each model at the default settings beside the same model at its tuned settings: which rankings change.

Reads one results database holding two setups of the same models: an untuned
one (``zoo rank MODELS --seeds 3``) and a tuned one (``zoo rank MODELS --seeds 3
--tuned``, whose setup says ``lr=tuned``), with the same other data and training
settings. Prints a Markdown table, one row per model, best tuned first:

    model | tuned lr | default: rank, test accuracy | tuned: rank, test accuracy | change | p

``change`` is the tuned mean minus the default mean (test accuracy, points),
``p`` the two-sided p-value of Welch's t-test over the seeds
(``scipy.stats.ttest_ind(equal_var=False)``; Welch 1947), and the caption gives
Kendall's tau between the two rankings (``scipy.stats.kendalltau``).

Usage::

    python benchmarks/tuned_vs_default.py --results results/tuned.sqlite [--metric test_accuracy]

Raises SystemExit(2) with one line when the database holds no such pair of setups.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", required=True, help="the results database (.sqlite)")
    parser.add_argument("--metric", default="test_accuracy", help="the metric compared [test_accuracy]")
    args = parser.parse_args(argv)

    from scipy import stats

    from zoo_core import leaderboard as lb
    from zoo_core.results import ResultsDB

    setups = lb.split_setups(r for r in ResultsDB(args.results).finished() if not r.is_ensemble)
    tuned = [s for s in setups if s.records[0].spec.tuned]
    if not tuned:
        print(f"error: {args.results} holds no tuned setup (rank with --tuned first)", file=sys.stderr)
        return 2
    tuned_setup = tuned[0]
    names = set(tuned_setup.records[0].spec.tuned)

    def untuned_twin(spec) -> str:  # the setup a tuned spec would have at the default settings
        import dataclasses

        default = lb.default_run()
        data, train = spec.data, spec.train
        for setting in names:
            section, _, name = setting.partition(".")
            base = getattr(getattr(default, section), name)
            if section == "data":
                data = dataclasses.replace(data, **{name: base})
            else:
                train = dataclasses.replace(train, **{name: base})
        return dataclasses.replace(spec, data=data, train=train, tuned=()).setup_key()

    twin = untuned_twin(tuned_setup.records[0].spec)
    default_setups = [s for s in setups if s.records[0].spec.setup_key() == twin]
    if not default_setups:
        print(f"error: {args.results} holds no untuned setup matching the tuned one's settings", file=sys.stderr)
        return 2
    ranked = {}
    for name, setup in (("default", default_setups[0]), ("tuned", tuned_setup)):
        groups = lb.sort_groups(lb.group_runs(setup.records), args.metric)
        ranked[name] = {g.label: (rank, g) for rank, g in enumerate(groups, start=1)}
    models = [m for m in ranked["tuned"] if m in ranked["default"]]
    rows, default_ranks, tuned_ranks = [], [], []
    for model in models:
        d_rank, d_group = ranked["default"][model]
        t_rank, t_group = ranked["tuned"][model]
        d_stat, t_stat = d_group.stat(args.metric), t_group.stat(args.metric)
        values = [getattr(getattr(t_group.spec, n.partition(".")[0]), n.partition(".")[2]) for n in sorted(names)]
        settings = ", ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in values)
        p = (stats.ttest_ind(t_stat.values, d_stat.values, equal_var=False).pvalue
             if len(t_stat.values) > 1 and len(d_stat.values) > 1 else float("nan"))
        parts = t_group.spec.model
        spelled = f"{parts.encoder}/{parts.cell}/{parts.aggregator}/{parts.head}"
        name = spelled if model == spelled else f"{spelled} ({model})"
        rows.append(f"| {name} | {settings} | {d_rank} | {d_stat.text()} | {t_rank} | {t_stat.text()} | "
                    f"{100 * (t_stat.mean - d_stat.mean):+.2f} | {p:.3f} |")
        default_ranks.append(d_rank)
        tuned_ranks.append(t_rank)
    agreement = "n/a (one model)"
    if len(models) > 1:
        tau = stats.kendalltau(default_ranks, tuned_ranks)
        agreement = f"{tau.statistic:.2f} (p {'< 0.001' if tau.pvalue < 0.001 else f'{tau.pvalue:.3f}'})"
    tuned_label = ", ".join(n.partition(".")[2] for n in sorted(names))
    print(f"_{args.metric.replace('_', ' ')}, mean ± std over seeds; default setup {default_setups[0].key}, "
          f"tuned setup {tuned_setup.key} ({tuned_label} tuned per model); Kendall's tau between the rankings "
          f"{agreement}; change in points; p: Welch's t-test, two-sided_\n")
    print(f"| model | tuned {tuned_label} | default rank | default | tuned rank | tuned | change | p |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
