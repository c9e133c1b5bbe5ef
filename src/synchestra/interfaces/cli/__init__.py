"""The ``synchestra`` command line and its tables for people."""
