"""Distribution-equivalence reports (docs/battery.md, ``reports/``): Markdown, HTML, JSON, PNG
figures.

``write_report(verdicts, cases, out_dir, title=..., sampler_name=...)`` renders the verdicts of
``cspd_ref.verify.verify`` (run with ``keep_output=True`` for figures); ``cspd verify`` is the
command-line front end (``cspd_ref.cli.verify``).
"""

from cspd_ref.report.document import build_document
from cspd_ref.report.figures import FigureInfo, case_figures
from cspd_ref.report.render import ReportPaths, write_report

__all__ = ["FigureInfo", "ReportPaths", "build_document", "case_figures", "write_report"]
