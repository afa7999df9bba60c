"""The upload page: one chest radiograph in the browser, its report back (``python -m app.upload``, ``make app``)."""
