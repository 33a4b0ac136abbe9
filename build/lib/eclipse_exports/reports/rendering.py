"""HTML rendering: autoescaping Jinja2 templates from the package's ``templates/`` folder.

Used by the executive report (``reports/page.py``) and the export and report
emails (``delivery.py``). Every value is autoescaped; an undefined variable is
an error, never an empty string.
"""

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jinja2 import Environment, Template

TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "templates"


@cache
def _environment(trim_blocks: bool, keep_trailing_newline: bool) -> "Environment":
    # Jinja2 is imported on first use: only report and email runs render HTML, and every run loads this package.
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    return Environment(loader=FileSystemLoader(TEMPLATES_DIR), autoescape=True, undefined=StrictUndefined,
                       trim_blocks=trim_blocks, lstrip_blocks=trim_blocks, keep_trailing_newline=keep_trailing_newline)


def html_template(name: str, *, trim_blocks: bool = False, keep_trailing_newline: bool = False) -> "Template":
    """The template ``templates/{name}``; ``trim_blocks`` also strips the whitespace before block tags.

    Raises ``jinja2.TemplateNotFound`` when there is none.
    """
    return _environment(trim_blocks, keep_trailing_newline).get_template(name)
