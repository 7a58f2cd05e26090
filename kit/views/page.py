"""One self-contained page per interactive view, shown the same way in a notebook and in
report.html.

A bokeh model becomes a standalone HTML page with BokehJS inlined (`bokeh.resources.INLINE`): no
CDN, no request to any host, so it works offline and keeps working when the run folder is copied.
That page is shown in an `<iframe srcdoc=...>`, both as a notebook output (`_repr_html_`) and in
report.html, so one code path serves both places and needs no Jupyter extension: JupyterLab's own
`bokeh.io.show` path would need `jupyter_bokeh`, and the iframe keeps BokehJS out of the host page.
"""
from __future__ import annotations

import html
from pathlib import Path


class Page:
    """A bokeh model as a self-contained page. Display it in a notebook, or embed `iframe()` in
    HTML.

    >>> page = Page(model, height=900, title="flight recorder")
    >>> page                     # last expression of a notebook cell: shows the view
    >>> page.save("view.html")   # a standalone file
    """

    def __init__(self, model, height: int, title: str = "kit"):
        self.model, self.height, self.title = model, height, title
        self._html: str | None = None

    @property
    def html(self) -> str:
        """The standalone page (built once): BokehJS, the data and the callbacks, all inline."""
        if self._html is None:
            from bokeh.embed import file_html
            from bokeh.resources import INLINE

            self._html = file_html(self.model, INLINE, title=self.title)
        return self._html

    def iframe(self) -> str:
        """The page inside an iframe, for embedding in another HTML page."""
        return (
            f'<iframe srcdoc="{html.escape(self.html, quote=True)}" '
            f'title="{html.escape(self.title)}" '
            f'style="width:100%;height:{self.height}px;border:0"></iframe>'
        )

    def _repr_html_(self) -> str:
        return self.iframe()

    def save(self, path: str | Path) -> Path:
        from ..store.files import atomic_write_bytes

        atomic_write_bytes(path, self.html.encode())
        return Path(path)
