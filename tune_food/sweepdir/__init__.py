"""The sweep folder's format: the names of its files (``layout``) and ``sweep.json``
(``state``), below both the sweep that writes it and the readers (``results``,
``report``, ``predict``, ``app``), so no reader imports the sweep's machinery.
"""
