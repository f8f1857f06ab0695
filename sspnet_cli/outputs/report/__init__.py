"""A self-contained review report for searchers: one static folder that opens from disk in any
browser, offline. See :func:`write_report`."""
from sspnet_cli.outputs.report.builder import DEFAULT_REPORT_MAX, DEFAULT_REPORT_THR, ReportSummary, default_opener, write_report
from sspnet_cli.outputs.report.folder import check_report_dir

__all__ = ["DEFAULT_REPORT_MAX", "DEFAULT_REPORT_THR", "ReportSummary", "check_report_dir", "default_opener", "write_report"]
