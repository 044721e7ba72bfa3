"""report/processors.py: folding threads and processes adds the figures up exactly, and changes nothing else."""

from __future__ import annotations

import copy

from lu_attach.report import report_from_records, to_json
from lu_attach.report.processors import ALL_THREADS, merge_processes, merge_threads

from .records import MS, calls, header, node


def tree_report():
    """Two processes; the first has two threads with an overlapping call path."""
    records = []
    for pid, scale in ((101, 1), (102, 2)):
        records.append(header(pid))
        for thread, tid in (("MainThread", 1), ("pool_0", 2)) if pid == 101 else (("MainThread", 1),):
            rec = calls([node("serve", 10 * scale, 50 * scale), node("serve/price", 4 * scale, 8 * scale)], thread, tid)
            rec["pid"] = pid
            records.append(rec)
    return report_from_records(records)


def roots(report, pid, thread):
    (found,) = [t for t in report.processes[pid].threads.values() if t.thread == thread]
    return found.roots


def test_merge_threads_sums_every_thread_of_a_process_into_one_tree():
    report = tree_report()
    before = copy.deepcopy(to_json(report))
    folded = merge_threads(report)
    serve = roots(folded, 101, ALL_THREADS)["serve"]
    assert (serve.hits, serve.total_ns) == (20, 100 * MS)
    assert (serve.children["price"].hits, serve.children["price"].total_ns) == (8, 16 * MS)
    assert [t.thread for t in folded.processes[102].threads.values()] == [ALL_THREADS]
    assert to_json(report) == before  # the input is left as it was


def test_merge_processes_sums_each_thread_name_across_processes():
    folded = merge_processes(tree_report())
    assert list(folded.processes) == [0]
    assert folded.processes[0].merged_from == [101, 102]
    main = roots(folded, 0, "MainThread")["serve"]
    assert (main.hits, main.total_ns) == (10 + 20, (50 + 100) * MS)
    assert roots(folded, 0, "pool_0")["serve"].hits == 10
    shown = to_json(folded)["processes"][0]
    assert shown["pid"] == 0 and shown["merged_from"] == [101, 102]
    assert folded.threads()[0].label.startswith("2 processes (101, 102) / ")


def test_both_folds_give_one_tree_for_the_whole_tree_of_processes():
    folded = merge_processes(merge_threads(tree_report()))
    (thread,) = folded.threads()
    assert thread.roots["serve"].hits == 10 + 10 + 20


def test_a_report_of_one_process_is_left_as_it_is():
    report = report_from_records([header(), calls([node("f", 1, 1)])])
    assert merge_processes(report) is report
