"""What every exercise check shares: Verdict and Report.

The checks of each lesson have their own tests: tests/test_checks_lessonNN.py.
"""


# ------------------------------------------------------------ Verdict and Report

def test_verdicts_say_passed_hint_and_final():
    from socklab.checks.report import NOT_WRITTEN, Verdict
    assert Verdict.ok() == Verdict(True, "", False)
    assert Verdict.fail("why") == Verdict(False, "why", False)
    assert Verdict.fail("why", final=True).final
    assert Verdict.not_written() == Verdict(False, NOT_WRITTEN, True)
    assert Verdict.fail("why").final_if_failed() == Verdict(False, "why", True)
    assert Verdict.ok().final_if_failed() == Verdict.ok()


def test_a_verdict_is_not_a_truth_value_and_a_pass_has_no_hint():
    import pytest
    from socklab.checks.report import Verdict
    with pytest.raises(TypeError, match="verdict.passed or verdict.final"):
        bool(Verdict.fail("why"))
    with pytest.raises(ValueError):
        Verdict(True, "a hint for a pass")
    with pytest.raises(ValueError):
        Verdict(True, final=True)


def test_a_case_that_cannot_be_checked_here_is_a_skip_not_a_pass():
    """Review D23: a case this machine cannot check was shown as PASS."""
    import pytest
    from socklab.checks.report import Report, Verdict
    report = Report("Checking f():")
    report.add("one", Verdict.ok())
    report.add("over IPv6", Verdict.skip("this machine has no IPv6 loopback"))
    assert report.ok and report.failures == []
    assert repr(report) == ("Checking f():\n"
                            "  PASS  one\n"
                            "  SKIP  over IPv6\n"
                            "        this machine has no IPv6 loopback\n"
                            "All 1 checks passed.  1 could not be checked on this machine.")
    report.add("two", Verdict.fail("wrong"))
    assert not report.ok
    assert repr(report).endswith("1 of 2 checks failed.  1 could not be checked on this machine.")
    only_skipped = Report("Checking g():")
    only_skipped.add("over IPv6", Verdict.skip("no IPv6"))
    assert not only_skipped.ok  # nothing was checked: not a pass
    with pytest.raises(ValueError):
        Verdict(False, "", skipped=True)  # a skip says why


def test_report_add_records_and_returns_the_verdict():
    import pytest
    from socklab.checks.report import Report, Verdict
    report = Report("Checking f():")
    assert report.add("one", Verdict.ok()) == Verdict.ok()
    failed = report.add("two", Verdict.fail("first line\nsecond line", final=True))
    assert failed.final
    assert report.failures == [("two", "first line\nsecond line")]
    assert not report.ok
    assert repr(report) == ("Checking f():\n"
                            "  PASS  one\n"
                            "  FAIL  two\n"
                            "        first line\n"
                            "        second line\n"
                            "1 of 2 checks failed.")
    with pytest.raises(TypeError):
        report.add("three", True)  # the old add(passed, description, hint)
