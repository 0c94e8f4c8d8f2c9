"""python -m manifests {summary,verify,diff,audit} ...: tools over a pipeline run's manifests."""
import argparse
import sys


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m manifests", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("summary", help="counts of accepted and rejected sources and clips, by reason").add_argument("out_dir")
    sub.add_parser("verify", help="every accepted row has its shard member (size, sha256) and back; "
                                  "exit 1 on any mismatch").add_argument("out_dir")
    au = sub.add_parser("audit", help="counts, funnel, reasons, languages, score distributions, slowest stages; "
                                      "--html writes a report with plots and contact sheets")
    au.add_argument("out_dir")
    au.add_argument("--html", help="write the HTML report here (default OUT/manifests/audit.html)", nargs="?",
                    const="", default=None)
    d = sub.add_parser("diff", help="clips added, dropped and decisions flipped between two runs")
    d.add_argument("out_a")
    d.add_argument("out_b")
    a = p.parse_args()
    if a.command == "summary":
        from manifests.summary import summary_counts, summary_text

        print(summary_text(a.out_dir, summary_counts(a.out_dir)))
    elif a.command == "verify":
        from manifests.verify import verify

        problems = verify(a.out_dir)
        for line in problems:
            print(line)
        print(f"{len(problems)} problem(s)" if problems else "manifests and shards agree")
        sys.exit(1 if problems else 0)
    elif a.command == "audit":
        import os

        from manifests.audit import load, text_report

        audit = load(a.out_dir)
        print(text_report(audit))
        if a.html is not None:
            from manifests.report import html_report

            path = a.html or os.path.join(a.out_dir, "manifests", "audit.html")
            with open(path, "w", encoding="utf-8") as f:
                f.write(html_report(audit, a.out_dir))
            print(f"\nHTML report: {path}")
    elif a.command == "diff":
        from manifests.diff import diff_runs, format_diff

        print(format_diff(diff_runs(a.out_a, a.out_b)))


if __name__ == "__main__":
    main()
