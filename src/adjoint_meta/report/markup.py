"""The one way the report's Python code writes HTML: markupsafe's ``Markup``, the type Jinja2's
autoescape uses.  ``html(template, *values)`` formats the values into markup written here and
escapes every value that is not itself ``Markup``, so a label, name or number taken from the
parameters or the results can never become a tag; the template then inserts the returned
fragments as they are and escapes everything else."""
from __future__ import annotations

from collections.abc import Iterable

from markupsafe import Markup

__all__ = ["Markup", "html", "join"]


def html(template: str, *args: object, **kwargs: object) -> Markup:
    """``template`` (markup written in this package) with ``str.format`` fields filled by the
    escaped ``args``/``kwargs``; format specs (``{:.3f}``) apply before escaping."""
    return Markup(template).format(*args, **kwargs)


def join(parts: Iterable[object], sep: str = "") -> Markup:
    """The parts one after the other, separated by the markup ``sep``; plain strings are escaped."""
    return Markup(sep).join(parts)
