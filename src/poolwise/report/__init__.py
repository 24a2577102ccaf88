"""Tables (Markdown/CSV) and plots (PNG), always rebuilt from the results store."""

from .compare import compare_frame, recommend, summarize, write_compare_files, write_compare_report
from .files import atomic_write_bytes, atomic_write_text
from .knn import knn_frame, knn_summary, write_knn_report
from .probes import markdown_table, write_probe_report
from .vision import vision_frame, vision_summary, write_vision_report

__all__ = [
    "atomic_write_bytes", "atomic_write_text", "compare_frame", "recommend", "summarize",
    "write_compare_files", "write_compare_report", "knn_frame", "knn_summary", "markdown_table",
    "write_knn_report", "write_probe_report", "vision_frame", "vision_summary", "write_vision_report",
]
