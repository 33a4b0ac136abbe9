"""Eclipse Exports: on-demand and scheduled exports of Eclipse brand-protection data.

The package is layered one way: the Dagster layer (``assets/``, ``sensors/``,
``resources/``, ``definitions.py``) sits on plain-Python domain modules (request
model, source queries, writers, storage, job queue), which sit on libraries.
Domain modules never import Dagster.
"""
