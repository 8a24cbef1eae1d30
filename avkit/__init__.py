"""avkit: the build, audit, packaging and test tooling of the Kerio antivirus plugins.

One command-line tool (`python -m avkit <command>`), called by the nox sessions.
"""
