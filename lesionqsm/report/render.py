"""Jinja2 rendering of the report templates (``lesionqsm/report/templates/``)."""

import functools

import jinja2

__all__ = ['render', 'environment']


@functools.cache
def environment():
    """The templates' environment: HTML-escaped by default, undefined names are errors."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader('lesionqsm.report', 'templates'),
        autoescape=jinja2.select_autoescape(['html']),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True)


def render(name, **context):
    """Render template ``name`` with ``context``; returns the text."""
    return environment().get_template(name).render(**context)
