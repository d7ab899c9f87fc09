"""``python -m facesearch.cli``: the same app as the ``facesearch`` console script."""

from facesearch.cli.main import app

app()
