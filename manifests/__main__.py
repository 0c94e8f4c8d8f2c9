"""python -m manifests summary OUT"""
import argparse

from manifests.summary import summary_counts, summary_text


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m manifests", description="Tools over a pipeline run's manifests.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("summary", help="counts of accepted and rejected sources and clips, by reason")
    s.add_argument("out_dir")
    a = p.parse_args()
    if a.command == "summary":
        print(summary_text(a.out_dir, summary_counts(a.out_dir)))


if __name__ == "__main__":
    main()
