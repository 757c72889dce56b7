"""How long until every job is final after each fault: the scenarios of
tests/cutouts/test_job_faults.py (real worker, webhooks, beat and web processes; outages made by
forwarders the test owns) run at the production lease and sweep, on this checkout or on the code
of another commit (to measure before a change).

    .venv/bin/python bench/job_faults.py                       # this checkout, lease 60 s, sweep 15 s
    .venv/bin/python bench/job_faults.py --ref main --lease 300 --cap 100  # before: main's code and lease

It needs what the tests need: PostgreSQL and Redis (DATABASE_URL, REDIS_URL), the models
(BG_REMOVE_MODEL_HOME). With --ref, the commit's tree is unpacked in a temporary folder and this
checkout's scenario files are run against its code.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ["tests/cutouts/test_job_faults.py", "tests/faults.py", "tests/processes.py"]
# The checks on their own (no fault to recover from) are not timed.
SELECT = "not without_redis and not redis_hangs"


def tree_of(ref: str, into: Path) -> Path:
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, check=True, capture_output=True).stdout
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    for name in SCENARIOS:
        shutil.copy(ROOT / name, into / name)
    return into


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ref", help="run against this commit's code instead of the checkout's")
    parser.add_argument("--lease", default="60", help="BG_REMOVE_JOB_LEASE (production default: 60)")
    parser.add_argument("--sweep", default="15", help="BG_REMOVE_SWEEP_SECONDS (production default: 15)")
    parser.add_argument("--stale", default="30", help="BG_REMOVE_WORKER_STALE_SECONDS (production default: 30)")
    parser.add_argument("--cap", type=float, default=150, help="seconds after which a job not final is reported so")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="job-faults-") as tmp:
        tmp = Path(tmp)
        where = tree_of(args.ref, tmp / "tree") if args.ref else ROOT
        report, junit = tmp / "report.jsonl", tmp / "junit.xml"
        env = {**os.environ, "JOB_FAULTS_LEASE": args.lease, "JOB_FAULTS_SWEEP": args.sweep,
               "JOB_FAULTS_STALE": args.stale, "JOB_FAULTS_FINAL_WITHIN": str(args.cap),
               "JOB_FAULTS_REPORT": str(report), "PYTHONPATH": str(where)}
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", SCENARIOS[0], "-k", SELECT,
                        f"--junitxml={junit}"], cwd=where, env=env)
        timed = {}
        if report.exists():
            for line in report.read_text().splitlines():
                row = json.loads(line)
                timed[row["test"]] = row
        print(f"\n{args.ref or 'this checkout'}: lease {args.lease} s, sweep {args.sweep} s, "
              f"worker staleness {args.stale} s")
        print("| scenario (test) | until every job final (s) |\n|---|---|")
        for case in ET.parse(junit).getroot().iter("testcase"):
            name = case.get("name")
            if name in timed:
                print(f"| {timed[name]['scenario']} ({name}) | {timed[name]['seconds']} |")
            else:
                failure = case.find("failure")
                why = (failure.get("message") or "").splitlines()[0][:80] if failure is not None else "untimed"
                print(f"| {name} | not final: {why} |")


if __name__ == "__main__":
    main()
